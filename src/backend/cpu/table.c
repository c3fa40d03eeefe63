// cpu backend kernel table: op -> kernels. Each rcv_cpu_<op> is defined in the file
// of src/backend/cpu/ named after its op family; declared weak so a missing one
// reads as 'not implemented' (tests/test_ops.c checks that none is).
#include "robustcv/graph.h"

extern const rcv_kernels rcv_cpu_conv2d __attribute__((weak));
extern const rcv_kernels rcv_cpu_batchnorm2d __attribute__((weak));
extern const rcv_kernels rcv_cpu_relu __attribute__((weak));
extern const rcv_kernels rcv_cpu_sigmoid __attribute__((weak));
extern const rcv_kernels rcv_cpu_maxpool2d __attribute__((weak));
extern const rcv_kernels rcv_cpu_avgpool2d __attribute__((weak));
extern const rcv_kernels rcv_cpu_global_avgpool __attribute__((weak));
extern const rcv_kernels rcv_cpu_linear __attribute__((weak));
extern const rcv_kernels rcv_cpu_add __attribute__((weak));
extern const rcv_kernels rcv_cpu_mul __attribute__((weak));
extern const rcv_kernels rcv_cpu_scale_add __attribute__((weak));
extern const rcv_kernels rcv_cpu_concat __attribute__((weak));
extern const rcv_kernels rcv_cpu_dropout __attribute__((weak));
extern const rcv_kernels rcv_cpu_flatten __attribute__((weak));
extern const rcv_kernels rcv_cpu_upsample_nearest __attribute__((weak));
extern const rcv_kernels rcv_cpu_upsample_bilinear __attribute__((weak));
extern const rcv_kernels rcv_cpu_normalize __attribute__((weak));
extern const rcv_kernels rcv_cpu_cross_entropy __attribute__((weak));
extern const rcv_kernels rcv_cpu_kl_div __attribute__((weak));
extern const rcv_kernels rcv_cpu_smooth_l1 __attribute__((weak));
extern const rcv_kernels rcv_cpu_mse __attribute__((weak));
extern const rcv_kernels rcv_cpu_adaptive_avgpool __attribute__((weak));

const rcv_kernels *rcv_backend_cpu_kernels(rcv_op op) {
    switch (op) {
    case RCV_OP_CONV2D: return &rcv_cpu_conv2d;
    case RCV_OP_BATCHNORM2D: return &rcv_cpu_batchnorm2d;
    case RCV_OP_RELU: return &rcv_cpu_relu;
    case RCV_OP_SIGMOID: return &rcv_cpu_sigmoid;
    case RCV_OP_MAXPOOL2D: return &rcv_cpu_maxpool2d;
    case RCV_OP_AVGPOOL2D: return &rcv_cpu_avgpool2d;
    case RCV_OP_GLOBAL_AVGPOOL: return &rcv_cpu_global_avgpool;
    case RCV_OP_LINEAR: return &rcv_cpu_linear;
    case RCV_OP_ADD: return &rcv_cpu_add;
    case RCV_OP_MUL: return &rcv_cpu_mul;
    case RCV_OP_SCALE_ADD: return &rcv_cpu_scale_add;
    case RCV_OP_CONCAT: return &rcv_cpu_concat;
    case RCV_OP_DROPOUT: return &rcv_cpu_dropout;
    case RCV_OP_FLATTEN: return &rcv_cpu_flatten;
    case RCV_OP_UPSAMPLE_NEAREST: return &rcv_cpu_upsample_nearest;
    case RCV_OP_UPSAMPLE_BILINEAR: return &rcv_cpu_upsample_bilinear;
    case RCV_OP_NORMALIZE: return &rcv_cpu_normalize;
    case RCV_OP_CROSS_ENTROPY: return &rcv_cpu_cross_entropy;
    case RCV_OP_KL_DIV: return &rcv_cpu_kl_div;
    case RCV_OP_SMOOTH_L1: return &rcv_cpu_smooth_l1;
    case RCV_OP_MSE: return &rcv_cpu_mse;
    case RCV_OP_ADAPTIVE_AVGPOOL: return &rcv_cpu_adaptive_avgpool;
    default: return 0;
    }
}
