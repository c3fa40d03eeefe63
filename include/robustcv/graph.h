// The model graph: a static DAG of nodes built once by C builder functions
// (see ops.h), planned once per (graph, batch size, backend), then run forward
// and backward any number of times with no allocation.
//
// Layout (contract): every activation is a 4-d tensor reported as (N, C, H, W)
// like PyTorch and stored NHWC (channels last). A linear layer's (N, F) output
// is (N, F, 1, 1), for which NHWC and NCHW coincide. Parameters keep
// PyTorch's shapes and order (conv OIHW, linear (out, in)) and torchvision's
// names; they live in one contiguous buffer, their gradients in another of the
// same layout (one optimizer loop, one allreduce).
//
// Autodiff: backward(loss) visits nodes in reverse order. A node's backward
// kernel reads node->grad and writes its inputs' grads, overwriting when it is
// the first consumer to write (node->in_beta[i] == 0) and accumulating
// otherwise; parameter gradients always accumulate, so two backward calls
// between zero_grad calls sum (recipes use that). Gradients exist for every
// node that depends on a parameter or on an input marked with
// rcv_graph_require_grad (attacks ask for the image, Grad-CAM for a feature map).
// Only those marked nodes' gradients stay readable after backward: the others
// share memory once consumed (set keep_grads before plan to keep them all).
#ifndef RCV_GRAPH_H
#define RCV_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "robustcv/rng.h"

#define RCV_MAX_PARAMS 4  // parameters per node (bn: weight, bias; conv: weight, bias)
#define RCV_MAX_BUFS 3    // buffers per node (bn: running_mean, running_var, num_batches_tracked)
#define RCV_NAME 96

typedef struct { int n, c, h, w; } rcv_shape;
static inline size_t rcv_numel(rcv_shape s) { return (size_t)s.n * s.c * s.h * s.w; }

typedef enum {
    RCV_OP_INPUT,        // image or any float input fed by the caller
    RCV_OP_LABELS,       // int32 class labels (N); out == NULL, idata holds them
    RCV_OP_CONV2D,
    RCV_OP_BATCHNORM2D,
    RCV_OP_RELU,
    RCV_OP_SIGMOID,
    RCV_OP_MAXPOOL2D,
    RCV_OP_AVGPOOL2D,
    RCV_OP_GLOBAL_AVGPOOL, // (N,C,H,W) -> (N,C,1,1)
    RCV_OP_LINEAR,         // (N,F,1,1) -> (N,O,1,1)
    RCV_OP_ADD,            // a + b, b broadcast over (H,W) or (C,H,W) when smaller
    RCV_OP_MUL,            // a * b, same broadcast rule
    RCV_OP_SCALE_ADD,      // alpha * a + beta * b (same shapes); ResNet-D's geometric sums
    RCV_OP_CONCAT,         // along channels
    RCV_OP_DROPOUT,
    RCV_OP_FLATTEN,        // (N,C,H,W) -> (N,C*H*W,1,1) in PyTorch's C,H,W order
    RCV_OP_UPSAMPLE_NEAREST,
    RCV_OP_UPSAMPLE_BILINEAR,
    RCV_OP_NORMALIZE,      // (x - mean[c]) / std[c]: keeps attacks in [0,1] pixel space
    RCV_OP_CROSS_ENTROPY,  // (logits, labels) -> scalar mean loss; label smoothing
    RCV_OP_KL_DIV,         // (p_logits, q_logits) -> scalar: mean_n KL(softmax p || softmax q)
    RCV_OP_SMOOTH_L1,      // (pred, target) -> scalar mean; beta
    RCV_OP_MSE,            // (pred, target) -> scalar mean
    RCV_OP_ADAPTIVE_AVGPOOL, // (N,C,H,W) -> (N,C,oh,ow), PyTorch's AdaptiveAvgPool2d windows
    RCV_OP_COUNT
} rcv_op;

const char *rcv_op_name(rcv_op op);

typedef enum { RCV_BACKEND_REF = 0, RCV_BACKEND_CPU = 1, RCV_BACKEND_CUDA = 2 } rcv_backend;

// Compute precision of the heavy ops (set before plan: rcv_graph_set_precision). Storage
// stays fp32 everywhere (activations, fp32 master weights, gradients, optimizer state);
// tf32/bf16/fp16 only change how conv and linear multiply, accumulating in fp32 - PyTorch's
// autocast split. cpu: bf16 convolutions (AVX512-BF16/AMX); cuda: all four (tensor cores).
typedef enum { RCV_PREC_FP32 = 0, RCV_PREC_TF32 = 1, RCV_PREC_BF16 = 2, RCV_PREC_FP16 = 3 } rcv_precision;
const char *rcv_precision_name(rcv_precision p);              // "fp32", "tf32", "bf16", "fp16"
int rcv_precision_parse(const char *name, rcv_precision *p);  // -1 with a message naming the valid ones

// Op attributes. Only the member for the node's op is meaningful.
typedef struct {
    int kh, kw, sh, sw, ph, pw, dh, dw, groups, has_bias;
} rcv_conv_attr;
typedef struct {
    float eps, momentum; // PyTorch: running = (1 - momentum) * running + momentum * batch (unbiased var)
} rcv_bn_attr;
typedef struct {
    int kh, kw, sh, sw, ph, pw;
    int ceil_mode;
    int count_include_pad; // avg pool only (PyTorch default 1)
} rcv_pool_attr;
typedef struct {
    float p;
} rcv_dropout_attr;
typedef struct {
    int scale;          // integer scale factor (output = input * scale)
    int align_corners;  // bilinear only
} rcv_upsample_attr;
typedef struct {
    float label_smoothing; // cross entropy
    float beta;            // smooth-L1
    float alpha, beta2;    // scale_add: alpha * a + beta2 * b
} rcv_loss_attr;
typedef struct {
    float mean[4], std[4]; // per channel (C <= 4)
} rcv_norm_attr;

typedef union {
    rcv_conv_attr conv;
    rcv_bn_attr bn;
    rcv_pool_attr pool;
    rcv_dropout_attr dropout;
    rcv_upsample_attr up;
    rcv_loss_attr loss;
    rcv_norm_attr norm;
} rcv_attr;

// A parameter or buffer: name (torchvision's), PyTorch shape, place in its storage.
typedef enum { RCV_PARAM = 0, RCV_BUFFER = 1, RCV_BUFFER_I64 = 2 } rcv_param_kind;
typedef struct {
    char name[RCV_NAME];
    rcv_param_kind kind;
    int ndim;
    int64_t shape[4];
    size_t numel;
    size_t offset;    // into graph->params (PARAM), graph->buffers (BUFFER) or graph->ibuffers (I64)
    int node;         // owning node
    int frozen;       // excluded from optimizer updates (transfer learning)
    float lr_mult;    // per-group learning-rate multiplier (1 by default)
} rcv_param;

typedef struct rcv_graph rcv_graph;
typedef struct rcv_node rcv_node;

struct rcv_node {
    rcv_op op;
    char name[RCV_NAME];     // module path, e.g. "layer1.0.conv1"
    int *in;                 // input node ids (n_in of them)
    int n_in;
    rcv_shape shape;         // output shape; shape.n is the planned batch size
    rcv_attr attr;
    int param[RCV_MAX_PARAMS]; // indices into graph->param_info, -1 if absent
    int buf[RCV_MAX_BUFS];     // indices into graph->param_info, -1 if absent

    // Planned storage (NHWC). out is NULL for LABELS. grad is NULL where no gradient flows.
    // On a device plan (cuda) these point to GPU memory: use rcv_graph_upload/download.
    float *out;
    float *grad;
    int32_t *idata;          // LABELS: (N) class indices
    float *saved;            // per-op saved state for backward (bn mean/invstd, dropout mask, ...)
    size_t saved_len;        // floats
    uint8_t *in_beta;        // per input: 0 = this node's backward writes the input grad first
    uint8_t needs_grad;      // gradient flows into this node's output
    uint8_t fused_relu;      // BN followed by its only consumer, a RELU: BN's kernel applies the ReLU
    uint8_t skip;            // that RELU: out and grad alias the BN's, its kernels do not run
    uint8_t blocked;         // 0 (NHWC), or the block b (8 or 16): out and grad in oneDNN's nChw<b>c,
                             // (N, C/b, H, W, b), the NHWC layout of shape rcv_lshape(n) =
                             // (N*C/b, b, H, W). cpu fp32 only; the planner sets it on chains
                             // between convolutions (plan_layouts), b from the CPU's ISA
    uint8_t frozen_stats;    // BATCHNORM2D: always use (and never update) the running statistics,
                             // whatever g->training says: batchnorm in a frozen part (transfer learning)
    uint8_t folded;          // rcv_graph_infer skips it: the node before applies it (below)
    int fold;                // The only consumer of this node, when rcv_graph_infer may apply it within
                             // this node's kernel: a CONV2D's batchnorm, an ADD's ReLU; else -1. The
                             // planner proposes, the kernel's prepare accepts by setting the consumer's
                             // `folded`. This node's own out is then not written by rcv_graph_infer.

    void *kstate;            // backend-private state (oneDNN primitives, ...)
};

// What a kernel does with blocked (nChw8c / nChw16c) tensors, rcv_kernels.layout:
typedef enum {
    RCV_LAYOUT_NHWC = 0, // reads and writes NHWC only
    RCV_LAYOUT_TIED,     // output and every input share one layout, either (elementwise ops,
                         // batchnorm, pooling that runs on the (N*C/16, 16, H, W) view)
    RCV_LAYOUT_FREE,     // reads its input and writes its output in either layout, independently
    RCV_LAYOUT_READS,    // reads its input in either layout, writes NHWC (global average pool:
                         // its (N, C, 1, 1) output is the same bytes in both)
} rcv_layout_kind;

// Kernels of one op on one backend. A backward kernel handles inputs in index
// order and honours in_beta[i] for each (a node may read one input twice). prepare runs once at plan time (after out,
// grad and saved are allocated); forward and backward run with no allocation.
typedef struct {
    int (*prepare)(rcv_graph *g, rcv_node *n);   // may be NULL; returns 0 or -1 with message
    void (*forward)(rcv_graph *g, rcv_node *n);
    void (*backward)(rcv_graph *g, rcv_node *n); // NULL for ops with no gradient (labels)
    void (*release)(rcv_node *n);                // frees kstate; may be NULL
    size_t (*saved_size)(const rcv_graph *g, const rcv_node *n); // floats of n->saved; may be NULL
    // Which layouts the kernels handle (see rcv_node.blocked); NULL = NHWC only. Asked at plan
    // time before saved_size and prepare, with the precision set.
    rcv_layout_kind (*layout)(const rcv_graph *g, const rcv_node *n);
    // Eval-mode forward for rcv_graph_infer (no backward follows, so nothing is saved for one);
    // NULL = forward.
    void (*infer)(rcv_graph *g, rcv_node *n);
} rcv_kernels;

// 0 when backend b can run here; -1 with a message otherwise (cuda: "no CUDA device/driver:
// <reason>" on a machine without a GPU or driver, or in a build without the cuda backend).
int rcv_backend_check(rcv_backend b);

// Per-backend kernel tables, indexed by rcv_op; an entry with forward == NULL
// means "not implemented on this backend".
const rcv_kernels *rcv_backend_ref_kernels(rcv_op op);
const rcv_kernels *rcv_backend_cpu_kernels(rcv_op op);

struct rcv_graph {
    rcv_node *nodes;
    int n_nodes, cap_nodes;

    rcv_param *param_info;   // parameters and buffers, in registration order (= state_dict order)
    int n_params, cap_params;
    size_t n_param_floats, n_buffer_floats, n_ibuffers;
    float *params;           // all RCV_PARAM values, contiguous
    float *grads;            // same layout as params
    float *buffers;          // RCV_BUFFER values (running stats)
    int64_t *ibuffers;       // RCV_BUFFER_I64 values (num_batches_tracked)

    // plan
    rcv_backend backend;
    int batch;               // planned batch size, 0 = not planned
    int training;            // batchnorm batch statistics, dropout active
    int inferred;            // the last pass was rcv_graph_infer: backward runs rcv_graph_forward first
    uint64_t params_gen;     // bumped by rcv_graph_params_changed; caches derived from params compare it
    int input_grad_only;     // backward skips parameter gradients (conv/linear weight and bias,
                             // batchnorm weight and bias) and the nodes that give nothing else:
                             // attacks want d/dx only, as torch.autograd.grad(loss, x) does.
                             // rcv_graph_set_input_grad_only; 0 (training) by default
    uint8_t *want_grad;      // per node: caller reads its gradient (bit 1: inputs, feature maps)
                             // or its output (bit 2); rcv_graph_require_grad / _require_out
    int keep_grads;          // every node's gradient kept after backward and no fusion (tests)
    size_t grad_floats;      // planned gradient memory (floats)
    float *scratch;          // shared scratch for kernels (size scratch_len floats)
    size_t scratch_len;
    void *arena;             // all planned activations/grads/saved live here
    void *backend_ctx;       // e.g. the oneDNN engine and stream

    // Device plans (cuda): while planned there, parameters, gradients and buffers live on the
    // GPU (these mirrors, same layout as the host arrays) and the GPU copy is the one that
    // counts. rcv_graph_params_to_host/_to_device move them explicitly; planning uploads and
    // unplanning (re-plan, free) downloads them. NULL on ref/cpu plans.
    float *dparams, *dgrads, *dbuffers;
    int64_t *dibuffers;
    int device;              // cuda device ordinal (default 0), set before plan
    rcv_precision precision; // conv/linear compute precision (default fp32); rcv_graph_set_precision, before plan

    rcv_rng rng;             // dropout and any stochastic op
    int threads;

    double *prof;            // rcv_graph_profile: per node, seconds in forward [2i] and backward [2i+1]
    long prof_steps;         // forward calls while profiling
    int prof_cpu;            // 1: prof counts process CPU time (rcv_graph_profile(g, 2)), not wall time

    // Data-parallel training (include/robustcv/dist.h); all NULL / 0 in a single process.
    // Called after each node's backward kernel: starts gradient-bucket allreduces.
    void (*on_backward_node)(void *ctx, rcv_graph *g, int node);
    void *hook_ctx;
    // Set: synchronised batchnorm. In-place sum over ranks of n doubles; batchnorm kernels
    // in training mode reduce their per-channel sums through it.
    void (*bn_allreduce)(rcv_graph *g, double *x, size_t n);
    // This process holds shard `shard` of `n_shards` equal slices of the global batch;
    // stochastic ops draw that slice of the global batch's stream (rcv_graph_shard_rng).
    int shard, n_shards;
};

// The random stream for a draw of `numel` values over this process's slice of the batch:
// the global batch draws n_shards * numel values from g->rng, this shard takes values
// [shard * numel, (shard + 1) * numel). When numel % 4 == 0 (Philox blocks of 4) the
// masks equal those of one process with the whole batch, whatever the rank count.
static inline rcv_rng rcv_graph_shard_rng(rcv_graph *g, size_t numel) {
    uint64_t blocks = (numel + 3) / 4;
    rcv_rng r = g->rng;
    r.counter += (uint64_t)g->shard * blocks;
    g->rng.counter += (uint64_t)(g->n_shards > 1 ? g->n_shards : 1) * blocks;
    return r;
}

// --- building ---
rcv_graph *rcv_graph_new(void);
void rcv_graph_free(rcv_graph *g);
// Adds a node and returns its id; used by op builders in ops.h.
int rcv_graph_add_node(rcv_graph *g, rcv_op op, const char *name, const int *in, int n_in);
// Registers a parameter (or buffer) of node `node`; returns its index in param_info.
// Storage is assigned when the parameter set is sealed (first plan or init).
int rcv_graph_add_param(rcv_graph *g, int node, const char *name, rcv_param_kind kind, int ndim,
                        const int64_t *shape);
// Allocates parameter storage (idempotent). Called by plan and by model builders before init.
void rcv_graph_seal_params(rcv_graph *g);
static inline float *rcv_param_data(rcv_graph *g, int p) {
    return g->param_info[p].kind == RCV_PARAM ? g->params + g->param_info[p].offset
                                             : g->buffers + g->param_info[p].offset;
}
static inline float *rcv_param_grad(rcv_graph *g, int p) { return g->grads + g->param_info[p].offset; }
int rcv_graph_find_param(const rcv_graph *g, const char *name); // -1 if absent
int rcv_graph_find_node(const rcv_graph *g, const char *name);  // -1 if absent

// --- planning and running ---
// Marks a node whose gradient the caller wants (an INPUT for attacks, a feature map for Grad-CAM).
// Must precede rcv_graph_plan.
void rcv_graph_require_grad(rcv_graph *g, int node);
// Marks an inner node whose output the caller reads after forward (CAM's feature map): the
// planner keeps it in NHWC and does not fuse it away. Outputs without consumers always are.
// (A node marked for its gradient is kept likewise.)
void rcv_graph_require_out(rcv_graph *g, int node);
// Allocates every buffer for `batch` and prepares the backend kernels. Re-planning
// with another batch size or backend frees and redoes it. Parameters are kept.
int rcv_graph_plan(rcv_graph *g, int batch, rcv_backend backend);
void rcv_graph_set_training(rcv_graph *g, int training);
// on = 1: the following backward passes leave parameter gradients untouched and compute only the
// gradients of nodes (inputs, feature maps); those come out bit-identical to a full backward.
// Callers that want d/dx only (attacks) set it around their backward and restore it. No re-plan.
void rcv_graph_set_input_grad_only(rcv_graph *g, int on);
// Chooses the compute precision for the next plan on `backend`. cuda takes all four; cpu
// takes bf16 where the CPU has native bf16 (AVX512-BF16 or AMX); anything else falls back
// to fp32 with a message on stderr (once per process for each backend and precision). Returns
// the precision that will be used.
rcv_precision rcv_graph_set_precision(rcv_graph *g, rcv_backend backend, rcv_precision p);
void rcv_graph_forward(rcv_graph *g);
// Forward for callers that read outputs and run no backward on it (predict, evaluation, serve):
// in eval mode the cpu backend folds each batchnorm into the convolution before it (running
// statistics applied to the conv's output in the same kernel, ReLU fused; the parameters are
// read as they are at each call, so nothing goes stale) and keeps no state for backward. Its
// outputs are rcv_graph_forward's within float rounding. Readable afterwards: the outputs of
// nodes without consumers and those marked with rcv_graph_require_out / _require_grad; a
// folded conv's own output is not written. A backward after it runs rcv_graph_forward first.
// In training mode it is rcv_graph_forward.
void rcv_graph_infer(rcv_graph *g);
// Says that g->params changed. rcv_graph_infer keeps each convolution's weights in oneDNN's layout
// between calls (at batch 1 reordering them was a fifth of the pass) and redoes them after this.
// The library calls it wherever it writes parameters (optimizer steps, checkpoint and --init
// loads, model init, EMA/SWA swaps, device downloads) and on every switch out of training mode;
// code that writes g->params itself and then runs rcv_graph_infer without a training-mode pass
// between must call it. (Batchnorm parameters and statistics are read at every call.)
void rcv_graph_params_changed(rcv_graph *g);
// Zeroes parameter gradients.
void rcv_graph_zero_grad(rcv_graph *g);
// Backward from scalar node `loss` with d(loss) = scale. Accumulates into parameter grads.
void rcv_graph_backward(rcv_graph *g, int loss, float scale);
// Backward from any node with a caller-given output gradient `seed` (numel of the node's
// output, NHWC): Grad-CAM's one-hot logits, a loss computed outside the graph on the logits
// (recipes), a targeted attack's direction. seed may be the node's own grad buffer, filled
// in place. On a device plan seed is host memory, unless it is n->grad itself (already on
// the GPU, filled with rcv_graph_upload). -1 with a message if no gradient flows into the node.
int rcv_graph_backward_from(rcv_graph *g, int node, const float *seed);
// int64 buffers (num_batches_tracked) live apart from float ones.
static inline int64_t *rcv_param_i64(rcv_graph *g, int p) { return g->ibuffers + g->param_info[p].offset; }

static inline rcv_node *rcv_node_at(rcv_graph *g, int id) { return &g->nodes[id]; }
static inline float *rcv_in(rcv_graph *g, rcv_node *n, int i) { return g->nodes[n->in[i]].out; }
static inline float *rcv_in_grad(rcv_graph *g, rcv_node *n, int i) { return g->nodes[n->in[i]].grad; }
static inline rcv_shape rcv_in_shape(rcv_graph *g, rcv_node *n, int i) { return g->nodes[n->in[i]].shape; }
// The shape whose NHWC layout is the node's memory: its own, or (N*C/b, b, H, W) when blocked by b.
static inline rcv_shape rcv_lshape(const rcv_node *n) {
    rcv_shape s = n->shape;
    if (n->blocked) s.n *= s.c / n->blocked, s.c = n->blocked;
    return s;
}
static inline rcv_shape rcv_in_lshape(rcv_graph *g, rcv_node *n, int i) { return rcv_lshape(&g->nodes[n->in[i]]); }

// --- host <-> device (every backend; plain memcpy on ref/cpu plans) ---
// 1 when the plan's storage (node out/grad/saved/idata, dparams, ...) is GPU memory.
int rcv_graph_on_device(const rcv_graph *g);
// Copies `bytes` from host memory into planned storage (a node's out, grad or idata, or a
// pointer inside them), and back. Download waits for the GPU's queued work first.
void rcv_graph_upload(rcv_graph *g, void *planned, const void *host, size_t bytes);
void rcv_graph_download(rcv_graph *g, void *host, const void *planned, size_t bytes);
// Parameters + float and int64 buffers: host arrays -> GPU mirrors and back; gradients alike.
// No-ops on host plans. Call _to_device after writing g->params on the host while planned on
// cuda (loading weights), _to_host before reading them (checkpoints do it themselves).
void rcv_graph_params_to_device(rcv_graph *g);
void rcv_graph_params_to_host(rcv_graph *g);
void rcv_graph_grads_to_host(rcv_graph *g);
void rcv_graph_grads_to_device(rcv_graph *g);
// Waits for queued device work (timing); no-op on host plans.
void rcv_graph_sync(rcv_graph *g);

// Scratch memory shared by kernels (valid only during one kernel call).
float *rcv_graph_scratch(rcv_graph *g, size_t floats);

// Per-op timing (`train --profile`): on = 1 starts (and resets) accumulating each node's
// forward and backward wall time, on = 2 the process's CPU time (all threads: with one thread
// the signal a shared machine does not distort); the print groups it by op and by node, largest first.
void rcv_graph_profile(rcv_graph *g, int on);
void rcv_graph_profile_print(const rcv_graph *g, FILE *f, int top_nodes);

size_t rcv_graph_param_count(const rcv_graph *g); // learnable scalars (torchvision's count)
void rcv_graph_print(const rcv_graph *g);

#endif
