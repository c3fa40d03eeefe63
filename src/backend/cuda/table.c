// cuda backend kernel table: op -> kernels. Each rcv_cuda_<op> is defined in the file
// of src/backend/cuda/ named after its op family; declared weak so a missing one
// reads as 'not implemented' (tests/test_cuda_ops.c checks that none is).
#include "backend/backend.h"

extern const rcv_kernels rcv_cuda_conv2d __attribute__((weak));
extern const rcv_kernels rcv_cuda_batchnorm2d __attribute__((weak));
extern const rcv_kernels rcv_cuda_relu __attribute__((weak));
extern const rcv_kernels rcv_cuda_sigmoid __attribute__((weak));
extern const rcv_kernels rcv_cuda_maxpool2d __attribute__((weak));
extern const rcv_kernels rcv_cuda_avgpool2d __attribute__((weak));
extern const rcv_kernels rcv_cuda_global_avgpool __attribute__((weak));
extern const rcv_kernels rcv_cuda_adaptive_avgpool __attribute__((weak));
extern const rcv_kernels rcv_cuda_linear __attribute__((weak));
extern const rcv_kernels rcv_cuda_add __attribute__((weak));
extern const rcv_kernels rcv_cuda_mul __attribute__((weak));
extern const rcv_kernels rcv_cuda_scale_add __attribute__((weak));
extern const rcv_kernels rcv_cuda_concat __attribute__((weak));
extern const rcv_kernels rcv_cuda_dropout __attribute__((weak));
extern const rcv_kernels rcv_cuda_flatten __attribute__((weak));
extern const rcv_kernels rcv_cuda_upsample_nearest __attribute__((weak));
extern const rcv_kernels rcv_cuda_upsample_bilinear __attribute__((weak));
extern const rcv_kernels rcv_cuda_normalize __attribute__((weak));
extern const rcv_kernels rcv_cuda_cross_entropy __attribute__((weak));
extern const rcv_kernels rcv_cuda_kl_div __attribute__((weak));
extern const rcv_kernels rcv_cuda_smooth_l1 __attribute__((weak));
extern const rcv_kernels rcv_cuda_mse __attribute__((weak));

const rcv_kernels *rcv_backend_cuda_kernels(rcv_op op) {
    switch (op) {
    case RCV_OP_CONV2D: return &rcv_cuda_conv2d;
    case RCV_OP_BATCHNORM2D: return &rcv_cuda_batchnorm2d;
    case RCV_OP_RELU: return &rcv_cuda_relu;
    case RCV_OP_SIGMOID: return &rcv_cuda_sigmoid;
    case RCV_OP_MAXPOOL2D: return &rcv_cuda_maxpool2d;
    case RCV_OP_AVGPOOL2D: return &rcv_cuda_avgpool2d;
    case RCV_OP_GLOBAL_AVGPOOL: return &rcv_cuda_global_avgpool;
    case RCV_OP_ADAPTIVE_AVGPOOL: return &rcv_cuda_adaptive_avgpool;
    case RCV_OP_LINEAR: return &rcv_cuda_linear;
    case RCV_OP_ADD: return &rcv_cuda_add;
    case RCV_OP_MUL: return &rcv_cuda_mul;
    case RCV_OP_SCALE_ADD: return &rcv_cuda_scale_add;
    case RCV_OP_CONCAT: return &rcv_cuda_concat;
    case RCV_OP_DROPOUT: return &rcv_cuda_dropout;
    case RCV_OP_FLATTEN: return &rcv_cuda_flatten;
    case RCV_OP_UPSAMPLE_NEAREST: return &rcv_cuda_upsample_nearest;
    case RCV_OP_UPSAMPLE_BILINEAR: return &rcv_cuda_upsample_bilinear;
    case RCV_OP_NORMALIZE: return &rcv_cuda_normalize;
    case RCV_OP_CROSS_ENTROPY: return &rcv_cuda_cross_entropy;
    case RCV_OP_KL_DIV: return &rcv_cuda_kl_div;
    case RCV_OP_SMOOTH_L1: return &rcv_cuda_smooth_l1;
    case RCV_OP_MSE: return &rcv_cuda_mse;
    default: return 0;
    }
}
