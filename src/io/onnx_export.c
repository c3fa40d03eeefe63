// A model graph (graph.h) -> an ONNX ModelProto (onnx.h), one graph node at a time.
//
// The nodes that the outputs (logits, the box head's sigmoid) depend on are visited in id order
// (a topological order: builders add a node after its inputs); labels and losses are left out.
// Every value is NCHW, as ONNX wants: our NHWC storage is a memory layout, not a shape. A value
// is 4-d (N, C, H, W) until a linear layer or flatten makes it 2-d (N, F), which is what Gemm
// takes and what the outputs are; an op that needs 4-d (conv, pool, concat, broadcast against
// a feature map) gets a 2-d value unsqueezed back to (N, F, 1, 1).
//
// Field numbers are those of onnx/onnx.proto (ONNX 1.16).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/onnx.h"

enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_DOC = 6, MODEL_GRAPH = 7,
       MODEL_OPSET_IMPORT = 8, MODEL_METADATA = 14 };
enum { OPSET_DOMAIN = 1, OPSET_VERSION = 2 };
enum { ENTRY_KEY = 1, ENTRY_VALUE = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5 };
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { ATTR_TYPE_FLOAT = 1, ATTR_TYPE_INT = 2, ATTR_TYPE_STRING = 3, ATTR_TYPE_INTS = 7 };
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9 };
enum { DTYPE_FLOAT = 1, DTYPE_INT64 = 7 };
enum { VALUE_NAME = 1, VALUE_TYPE = 2 };
enum { TYPE_TENSOR = 1, TENSOR_TYPE_ELEM = 1, TENSOR_TYPE_SHAPE = 2, SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2 };

#define IR_VERSION 8 // ONNX 1.10..1.12 (opsets 15..17); readers of IR 8 take opsets 13 and 14 too
#define MAX_MESSAGE ((size_t)2147483647 - (64u << 20)) // protobuf's 2 GiB, less room for the graph

typedef struct {
    char **names;
    int n, cap;
} rcv_namelist;

typedef struct {
    rcv_graph *g;
    rcv_pb nodes;      // GraphProto.node fields, in order
    rcv_pb inits;      // GraphProto.initializer fields
    const char **val;  // per graph node: its ONNX value (NULL: not exported)
    int *rank;         // per graph node: 4 (N, C, H, W) or 2 (N, F)
    rcv_namelist values; // every value name used so far (SSA: each once)
    rcv_namelist nodes_named; // node names (their own namespace)
    int n_onnx;        // ONNX nodes written
    const char *axes23; // the int64 [2, 3] initializer of Unsqueeze, made once
} exporter;

static int used(const rcv_namelist *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->names[i], s)) return 1;
    return 0;
}

// A name not in l yet: base, else base_2, base_3, ... (kept in l, freed at the end).
static const char *fresh_in(rcv_namelist *l, const char *base) {
    char buf[RCV_NAME + 32];
    snprintf(buf, sizeof buf, "%s", base);
    for (int k = 2; used(l, buf); k++) snprintf(buf, sizeof buf, "%s_%d", base, k);
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->names = rcv_xrealloc(l->names, (size_t)l->cap * sizeof *l->names);
    }
    return l->names[l->n++] = rcv_xstrdup(buf);
}

static const char *fresh(exporter *e, const char *base) { return fresh_in(&e->values, base); }

// base + suffix in buf, not registered: an initializer's base name (init_* make it unique).
typedef struct { char s[RCV_NAME + 32]; } namebuf;
static namebuf join(const char *base, const char *suffix) {
    namebuf b;
    snprintf(b.s, sizeof b.s, "%s%s", base, suffix);
    return b;
}

static const char *derived(exporter *e, const char *base, const char *suffix) {
    char buf[RCV_NAME + 32];
    snprintf(buf, sizeof buf, "%s%s", base, suffix);
    return fresh(e, buf);
}

// --- initializers ---

static void tensor_head(rcv_pb *t, const char *name, int dtype, const int64_t *dims, int ndim) {
    for (int i = 0; i < ndim; i++) rcv_pb_int(t, TENSOR_DIMS, dims[i]);
    rcv_pb_int(t, TENSOR_DATA_TYPE, dtype);
    rcv_pb_str(t, TENSOR_NAME, name);
}

// raw_data is little-endian, which is how this (x86/arm) machine holds floats and int64s.
static void init_raw(exporter *e, const char *name, int dtype, const int64_t *dims, int ndim, const void *data,
                     size_t bytes) {
    rcv_pb t = {0};
    tensor_head(&t, name, dtype, dims, ndim);
    rcv_pb_bytes(&t, TENSOR_RAW_DATA, data, bytes);
    rcv_pb_msg(&e->inits, GRAPH_INITIALIZER, &t);
    rcv_pb_free(&t);
}

static const char *init_f32(exporter *e, const char *base, const int64_t *dims, int ndim, const float *v) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    const char *name = fresh(e, base);
    init_raw(e, name, DTYPE_FLOAT, dims, ndim, v, n * sizeof(float));
    return name;
}

static const char *init_i64(exporter *e, const char *base, const int64_t *v, int n) {
    int64_t dims[1] = {n};
    const char *name = fresh(e, base);
    init_raw(e, name, DTYPE_INT64, dims, 1, v, (size_t)n * sizeof(int64_t));
    return name;
}

// A parameter or buffer under its torchvision name, with its PyTorch shape.
static const char *init_param(exporter *e, int p) {
    const rcv_param *pi = &e->g->param_info[p];
    if (used(&e->values, pi->name)) return pi->name; // shared (no zoo model does; harmless if one did)
    return init_f32(e, pi->name, pi->shape, pi->ndim, rcv_param_data(e->g, p));
}

// --- nodes ---

typedef struct {
    rcv_pb pb; // one NodeProto's fields
} node_pb;

static void attr_begin(rcv_pb *a, const char *name, int type) {
    rcv_pb_str(a, ATTR_NAME, name);
    rcv_pb_int(a, ATTR_TYPE, type);
}

static void attr_end(node_pb *n, rcv_pb *a) {
    rcv_pb_msg(&n->pb, NODE_ATTRIBUTE, a);
    rcv_pb_free(a);
}

static void attr_int(node_pb *n, const char *name, int64_t v) {
    rcv_pb a = {0};
    attr_begin(&a, name, ATTR_TYPE_INT);
    rcv_pb_int(&a, ATTR_I, v);
    attr_end(n, &a);
}

static void attr_float(node_pb *n, const char *name, float v) {
    rcv_pb a = {0};
    attr_begin(&a, name, ATTR_TYPE_FLOAT);
    rcv_pb_f32(&a, ATTR_F, v);
    attr_end(n, &a);
}

static void attr_str(node_pb *n, const char *name, const char *v) {
    rcv_pb a = {0};
    attr_begin(&a, name, ATTR_TYPE_STRING);
    rcv_pb_str(&a, ATTR_S, v);
    attr_end(n, &a);
}

// Repeated int64 attributes as plain (unpacked) fields: what onnx's own helper writes.
static void attr_ints(node_pb *n, const char *name, const int64_t *v, int k) {
    rcv_pb a = {0};
    attr_begin(&a, name, ATTR_TYPE_INTS);
    for (int i = 0; i < k; i++) rcv_pb_int(&a, ATTR_INTS, v[i]);
    attr_end(n, &a);
}

// Starts a NodeProto: op_type, a unique node name, inputs ("" = an omitted optional input),
// one output. Attributes follow, then node_end.
static node_pb node_begin(exporter *e, const char *op, const char *name, const char *const *in, int n_in,
                          const char *out) {
    node_pb n = {{0}};
    for (int i = 0; i < n_in; i++) rcv_pb_str(&n.pb, NODE_INPUT, in[i]);
    rcv_pb_str(&n.pb, NODE_OUTPUT, out);
    rcv_pb_str(&n.pb, NODE_NAME, fresh_in(&e->nodes_named, name));
    rcv_pb_str(&n.pb, NODE_OP_TYPE, op);
    return n;
}

static void node_end(exporter *e, node_pb *n) {
    rcv_pb_msg(&e->nodes, GRAPH_NODE, &n->pb);
    rcv_pb_free(&n->pb);
    e->n_onnx++;
}

// A node with no attributes.
static void simple(exporter *e, const char *op, const char *name, const char *const *in, int n_in, const char *out) {
    node_pb n = node_begin(e, op, name, in, n_in, out);
    node_end(e, &n);
}

// Graph node i's input k as a 4-d value (a 2-d (N, F) one unsqueezed to (N, F, 1, 1)).
static const char *in4(exporter *e, const rcv_node *nd, int k) {
    int j = nd->in[k];
    if (e->rank[j] == 4) return e->val[j];
    if (!e->axes23) e->axes23 = init_i64(e, "unsqueeze_axes_2_3", (const int64_t[]){2, 3}, 2);
    const char *out = derived(e, e->val[j], "/4d");
    simple(e, "Unsqueeze", out, (const char *const[]){e->val[j], e->axes23}, 2, out);
    return out;
}

// --- ops ---

// PyTorch's ceil_mode also drops a last window that starts in the right padding; ONNX's does not.
static int pool_ceil_ok(const rcv_graph *g, const rcv_node *nd) {
    const rcv_pool_attr *a = &nd->attr.pool;
    rcv_shape s = g->nodes[nd->in[0]].shape;
    int ho = (s.h + 2 * a->ph - a->kh + a->sh - 1) / a->sh + 1, wo = (s.w + 2 * a->pw - a->kw + a->sw - 1) / a->sw + 1;
    return !a->ceil_mode || (ho == nd->shape.h && wo == nd->shape.w);
}

static int pool(exporter *e, const rcv_node *nd, const char *out) {
    const rcv_pool_attr *a = &nd->attr.pool;
    if (!pool_ceil_ok(e->g, nd))
        return rcv_fail("%s '%s': ceil_mode drops a last window here (PyTorch's rule), which ONNX's pooling does "
                        "not; no export", rcv_op_name(nd->op), nd->name);
    int avg = nd->op == RCV_OP_AVGPOOL2D;
    const char *x = in4(e, nd, 0);
    node_pb n = node_begin(e, avg ? "AveragePool" : "MaxPool", nd->name, &x, 1, out);
    attr_ints(&n, "kernel_shape", (const int64_t[]){a->kh, a->kw}, 2);
    attr_ints(&n, "strides", (const int64_t[]){a->sh, a->sw}, 2);
    attr_ints(&n, "pads", (const int64_t[]){a->ph, a->pw, a->ph, a->pw}, 4);
    if (a->ceil_mode) attr_int(&n, "ceil_mode", 1);
    if (avg) attr_int(&n, "count_include_pad", a->count_include_pad);
    node_end(e, &n);
    return 0;
}

// AdaptiveAvgPool2d: PyTorch's window of output i is [floor(i * in / out), ceil((i + 1) * in / out)).
// Equal windows (in divisible by out) are an AveragePool; any other split (VGG's 7x7 from a
// smaller map) is linear in x, so (N, C, H*W) @ P (H*W, oh*ow) with P holding the window weights.
static void adaptive_avgpool(exporter *e, const rcv_node *nd, const char *out) {
    rcv_shape s = e->g->nodes[nd->in[0]].shape;
    int oh = nd->shape.h, ow = nd->shape.w;
    const char *x = in4(e, nd, 0);
    if (s.h % oh == 0 && s.w % ow == 0) {
        node_pb n = node_begin(e, "AveragePool", nd->name, &x, 1, out);
        attr_ints(&n, "kernel_shape", (const int64_t[]){s.h / oh, s.w / ow}, 2);
        attr_ints(&n, "strides", (const int64_t[]){s.h / oh, s.w / ow}, 2);
        node_end(e, &n);
        return;
    }
    size_t hw = (size_t)s.h * s.w, ohw = (size_t)oh * ow;
    float *p = rcv_xcalloc(hw * ohw, sizeof(float)); // (H*W, oh*ow)
    for (int i = 0; i < oh; i++) {
        int h0 = i * s.h / oh, h1 = ((i + 1) * s.h + oh - 1) / oh;
        for (int j = 0; j < ow; j++) {
            int w0 = j * s.w / ow, w1 = ((j + 1) * s.w + ow - 1) / ow;
            float inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++) p[((size_t)h * s.w + w) * ohw + (size_t)i * ow + j] = inv;
        }
    }
    const char *pm = init_f32(e, join(nd->name, ".window_weights").s, (const int64_t[]){(int64_t)hw, (int64_t)ohw},
                              2, p);
    free(p);
    const char *flat_shape = init_i64(e, join(nd->name, ".shape_in").s, (const int64_t[]){0, 0, (int64_t)hw}, 3);
    const char *out_shape = init_i64(e, join(nd->name, ".shape_out").s, (const int64_t[]){0, 0, oh, ow}, 4);
    const char *flat = derived(e, nd->name, "/flat"), *mm = derived(e, nd->name, "/matmul");
    simple(e, "Reshape", flat, (const char *const[]){x, flat_shape}, 2, flat);
    simple(e, "MatMul", mm, (const char *const[]){flat, pm}, 2, mm);
    simple(e, "Reshape", nd->name, (const char *const[]){mm, out_shape}, 2, out);
}

// (x - mean[c]) / std[c] over (N, C, H, W): Sub and Div by (1, C, 1, 1) constants.
static void normalize(exporter *e, const rcv_node *nd, const char *out) {
    int c = nd->shape.c;
    int64_t dims[4] = {1, c, 1, 1};
    const char *mean = init_f32(e, join(nd->name, ".mean").s, dims, 4, nd->attr.norm.mean);
    const char *std = init_f32(e, join(nd->name, ".std").s, dims, 4, nd->attr.norm.std);
    const char *x = in4(e, nd, 0), *centred = derived(e, nd->name, "/sub");
    simple(e, "Sub", centred, (const char *const[]){x, mean}, 2, centred);
    simple(e, "Div", nd->name, (const char *const[]){centred, std}, 2, out);
}

static void conv(exporter *e, const rcv_node *nd, const char *out) {
    const rcv_conv_attr *a = &nd->attr.conv;
    const char *in[3] = {in4(e, nd, 0), init_param(e, nd->param[0]), NULL};
    int n_in = 2;
    if (a->has_bias && nd->param[1] >= 0) in[n_in++] = init_param(e, nd->param[1]);
    node_pb n = node_begin(e, "Conv", nd->name, in, n_in, out);
    attr_ints(&n, "kernel_shape", (const int64_t[]){a->kh, a->kw}, 2);
    attr_ints(&n, "strides", (const int64_t[]){a->sh, a->sw}, 2);
    attr_ints(&n, "pads", (const int64_t[]){a->ph, a->pw, a->ph, a->pw}, 4);
    attr_ints(&n, "dilations", (const int64_t[]){a->dh, a->dw}, 2);
    attr_int(&n, "group", a->groups);
    node_end(e, &n);
}

// Eval mode: the running statistics (the checkpoint's), as PyTorch's export writes it.
static void batchnorm(exporter *e, const rcv_node *nd, const char *out) {
    const char *in[5] = {in4(e, nd, 0), init_param(e, nd->param[0]), init_param(e, nd->param[1]),
                         init_param(e, nd->buf[0]), init_param(e, nd->buf[1])};
    node_pb n = node_begin(e, "BatchNormalization", nd->name, in, 5, out);
    attr_float(&n, "epsilon", nd->attr.bn.eps);
    node_end(e, &n);
}

// (N, F) @ W^T + b; a 4-d (N, F, 1, 1) input is flattened first.
static void linear(exporter *e, const rcv_node *nd, const char *out) {
    int j = nd->in[0];
    const char *x = e->val[j];
    if (e->rank[j] == 4) {
        const char *flat = derived(e, nd->name, "/flatten");
        node_pb n = node_begin(e, "Flatten", flat, &x, 1, flat);
        attr_int(&n, "axis", 1);
        node_end(e, &n);
        x = flat;
    }
    const char *in[3] = {x, init_param(e, nd->param[0]), NULL};
    int n_in = 2;
    if (nd->attr.conv.has_bias && nd->param[1] >= 0) in[n_in++] = init_param(e, nd->param[1]);
    node_pb n = node_begin(e, "Gemm", nd->name, in, n_in, out);
    attr_int(&n, "transB", 1);
    node_end(e, &n);
}

// a + b, a * b with b broadcast from (N, C, 1, 1) or (N, 1, H, W): NCHW broadcasting as is.
// Mixed ranks meet in 4-d.
static void binary(exporter *e, const rcv_node *nd, const char *op, const char *out) {
    int same = e->rank[nd->in[0]] == e->rank[nd->in[1]];
    const char *a = same ? e->val[nd->in[0]] : in4(e, nd, 0), *b = same ? e->val[nd->in[1]] : in4(e, nd, 1);
    simple(e, op, nd->name, (const char *const[]){a, b}, 2, out);
}

// alpha * a + beta * b (ResNet-D's geometric sums): a Mul by a scalar for a factor other than 1.
static void scale_add(exporter *e, const rcv_node *nd, const char *out) {
    int same = e->rank[nd->in[0]] == e->rank[nd->in[1]];
    const char *v[2];
    float f[2] = {nd->attr.loss.alpha, nd->attr.loss.beta2};
    for (int k = 0; k < 2; k++) {
        v[k] = same ? e->val[nd->in[k]] : in4(e, nd, k);
        if (f[k] == 1.0f) continue;
        const char *c = init_f32(e, join(nd->name, k ? ".beta" : ".alpha").s, NULL, 0, &f[k]);
        const char *scaled = derived(e, nd->name, k ? "/mul_b" : "/mul_a");
        simple(e, "Mul", scaled, (const char *const[]){v[k], c}, 2, scaled);
        v[k] = scaled;
    }
    simple(e, "Add", nd->name, v, 2, out);
}

static void concat(exporter *e, const rcv_node *nd, const char *out) {
    const char **in = rcv_xmalloc((size_t)nd->n_in * sizeof *in);
    for (int k = 0; k < nd->n_in; k++) in[k] = in4(e, nd, k);
    node_pb n = node_begin(e, "Concat", nd->name, in, nd->n_in, out);
    attr_int(&n, "axis", 1);
    node_end(e, &n);
    free(in);
}

// Integer-factor upsampling as Resize with scales (1, 1, s, s). PyTorch's nearest takes source
// floor(dst / s) (asymmetric, floor); its bilinear without align_corners is pytorch_half_pixel.
static void upsample(exporter *e, const rcv_node *nd, const char *out) {
    float sc = (float)nd->attr.up.scale, scales[4] = {1, 1, sc, sc};
    const char *s = init_f32(e, join(nd->name, ".scales").s, (const int64_t[]){4}, 1, scales);
    const char *in[3] = {in4(e, nd, 0), "", s};
    node_pb n = node_begin(e, "Resize", nd->name, in, 3, out);
    if (nd->op == RCV_OP_UPSAMPLE_NEAREST) {
        attr_str(&n, "mode", "nearest");
        attr_str(&n, "coordinate_transformation_mode", "asymmetric");
        attr_str(&n, "nearest_mode", "floor");
    } else {
        attr_str(&n, "mode", "linear");
        attr_str(&n, "coordinate_transformation_mode",
                 nd->attr.up.align_corners ? "align_corners" : "pytorch_half_pixel");
    }
    node_end(e, &n);
}

static int rank_of(const exporter *e, const rcv_node *nd) {
    switch (nd->op) {
    case RCV_OP_LINEAR:
    case RCV_OP_FLATTEN: return 2;
    case RCV_OP_RELU:
    case RCV_OP_SIGMOID:
    case RCV_OP_DROPOUT: return e->rank[nd->in[0]];
    case RCV_OP_ADD:
    case RCV_OP_MUL:
    case RCV_OP_SCALE_ADD: return e->rank[nd->in[0]] == 2 && e->rank[nd->in[1]] == 2 ? 2 : 4;
    default: return 4;
    }
}

// Graph node i, whose ONNX output is named `out`.
static int export_node(exporter *e, const rcv_node *nd, const char *out) {
    switch (nd->op) {
    case RCV_OP_NORMALIZE: normalize(e, nd, out); return 0;
    case RCV_OP_CONV2D: conv(e, nd, out); return 0;
    case RCV_OP_BATCHNORM2D: batchnorm(e, nd, out); return 0;
    case RCV_OP_RELU: simple(e, "Relu", nd->name, (const char *const[]){e->val[nd->in[0]]}, 1, out); return 0;
    case RCV_OP_SIGMOID: simple(e, "Sigmoid", nd->name, (const char *const[]){e->val[nd->in[0]]}, 1, out); return 0;
    case RCV_OP_MAXPOOL2D:
    case RCV_OP_AVGPOOL2D: return pool(e, nd, out);
    case RCV_OP_GLOBAL_AVGPOOL:
        simple(e, "GlobalAveragePool", nd->name, (const char *const[]){in4(e, nd, 0)}, 1, out);
        return 0;
    case RCV_OP_ADAPTIVE_AVGPOOL: adaptive_avgpool(e, nd, out); return 0;
    case RCV_OP_LINEAR: linear(e, nd, out); return 0;
    case RCV_OP_ADD: binary(e, nd, "Add", out); return 0;
    case RCV_OP_MUL: binary(e, nd, "Mul", out); return 0;
    case RCV_OP_SCALE_ADD: scale_add(e, nd, out); return 0;
    case RCV_OP_CONCAT: concat(e, nd, out); return 0;
    case RCV_OP_FLATTEN: {
        const char *x = e->val[nd->in[0]];
        node_pb n = node_begin(e, "Flatten", nd->name, &x, 1, out);
        attr_int(&n, "axis", 1);
        node_end(e, &n);
        return 0;
    }
    case RCV_OP_UPSAMPLE_NEAREST:
    case RCV_OP_UPSAMPLE_BILINEAR: upsample(e, nd, out); return 0;
    default:
        return rcv_fail("node '%s': op %s has no ONNX export (inference graphs only: no labels or losses)", nd->name,
                        rcv_op_name(nd->op));
    }
}

// ValueInfoProto: a float tensor (N, dims...) with N symbolic.
static void value_info(rcv_pb *graph, int field, const char *name, const int *dims, int nd) {
    rcv_pb shape = {0}, tt = {0}, type = {0}, vi = {0};
    rcv_pb d = {0};
    rcv_pb_str(&d, DIM_PARAM, "N");
    rcv_pb_msg(&shape, SHAPE_DIM, &d);
    for (int i = 0; i < nd; i++) {
        rcv_pb_free(&d);
        rcv_pb_int(&d, DIM_VALUE, dims[i]);
        rcv_pb_msg(&shape, SHAPE_DIM, &d);
    }
    rcv_pb_int(&tt, TENSOR_TYPE_ELEM, DTYPE_FLOAT);
    rcv_pb_msg(&tt, TENSOR_TYPE_SHAPE, &shape);
    rcv_pb_msg(&type, TYPE_TENSOR, &tt);
    rcv_pb_str(&vi, VALUE_NAME, name);
    rcv_pb_msg(&vi, VALUE_TYPE, &type);
    rcv_pb_msg(graph, field, &vi);
    rcv_pb_free(&d), rcv_pb_free(&shape), rcv_pb_free(&tt), rcv_pb_free(&type), rcv_pb_free(&vi);
}

static void metadata(rcv_pb *model, const char *k, const char *v) {
    rcv_pb entry = {0};
    rcv_pb_str(&entry, ENTRY_KEY, k);
    rcv_pb_str(&entry, ENTRY_VALUE, v);
    rcv_pb_msg(model, MODEL_METADATA, &entry);
    rcv_pb_free(&entry);
}

static void exporter_free(exporter *e) {
    rcv_pb_free(&e->nodes);
    rcv_pb_free(&e->inits);
    for (int i = 0; i < e->values.n; i++) free(e->values.names[i]);
    for (int i = 0; i < e->nodes_named.n; i++) free(e->nodes_named.names[i]);
    free(e->values.names);
    free(e->nodes_named.names);
    free((void *)e->val);
    free(e->rank);
}

int rcv_onnx_encode(const rcv_model *m, int opset, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    if (opset < RCV_ONNX_OPSET_MIN || opset > RCV_ONNX_OPSET_MAX)
        return rcv_fail("ONNX opset %d, expected %d..%d", opset, RCV_ONNX_OPSET_MIN, RCV_ONNX_OPSET_MAX);
    rcv_graph *g = m->g;
    if (!g || m->input < 0 || m->logits < 0) return rcv_fail("ONNX export: model '%s' is not built", m->name);
    if ((g->n_param_floats + g->n_buffer_floats) * sizeof(float) > MAX_MESSAGE)
        return rcv_fail("ONNX export: model '%s' has %.2f GB of weights; a protobuf message holds at most 2 GB "
                        "(external data files are not written)", m->name,
                        (double)(g->n_param_floats + g->n_buffer_floats) * 4e-9);
    int outs[2] = {m->logits, m->box}, n_outs = m->box >= 0 ? 2 : 1;
    const char *out_names[2] = {"logits", "boxes"};

    // The nodes the outputs depend on (ids only grow along edges).
    uint8_t *need = rcv_xcalloc((size_t)g->n_nodes, 1);
    for (int k = 0; k < n_outs; k++) need[outs[k]] = 1;
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (need[i])
            for (int k = 0; k < g->nodes[i].n_in; k++) need[g->nodes[i].in[k]] = 1;

    exporter e = {.g = g};
    e.val = rcv_xcalloc((size_t)g->n_nodes, sizeof *e.val);
    e.rank = rcv_xcalloc((size_t)g->n_nodes, sizeof *e.rank);
    for (int k = 0; k < n_outs; k++) fresh(&e, out_names[k]); // reserved for the graph outputs
    int rc = 0;
    for (int i = 0; i < g->n_nodes && !rc; i++) {
        if (!need[i]) continue;
        const rcv_node *nd = &g->nodes[i];
        if (nd->op == RCV_OP_INPUT) {
            if (i != m->input) {
                rc = rcv_fail("ONNX export: the outputs depend on input node '%s'; only the image input is "
                              "exported", nd->name);
                break;
            }
            e.val[i] = fresh(&e, "input");
            e.rank[i] = 4;
            continue;
        }
        e.rank[i] = rank_of(&e, nd);
        if (nd->op == RCV_OP_DROPOUT) { // eval mode: the identity, no node
            e.val[i] = e.val[nd->in[0]];
            continue;
        }
        const char *out = NULL;
        for (int k = 0; k < n_outs; k++)
            if (i == outs[k] && e.rank[i] == 2) out = out_names[k];
        e.val[i] = out ? out : fresh(&e, nd->name);
        rc = export_node(&e, nd, e.val[i]);
    }
    // An output that is still 4-d (N, K, 1, 1) is flattened to (N, K) under its name.
    for (int k = 0; k < n_outs && !rc; k++) {
        int i = outs[k];
        if (e.rank[i] == 2 && g->nodes[i].op != RCV_OP_DROPOUT) continue;
        const char *x = e.val[i];
        node_pb n = node_begin(&e, "Flatten", out_names[k], &x, 1, out_names[k]);
        attr_int(&n, "axis", 1);
        node_end(&e, &n);
    }
    free(need);
    if (rc) {
        exporter_free(&e);
        return rcv_fail_ctx("ONNX export of '%s': ", m->name);
    }

    // GraphProto: the nodes, its name, the initializers (already encoded as fields), input, outputs.
    rcv_pb graph = e.nodes, model = {0}, opset_id = {0};
    e.nodes = (rcv_pb){0};
    rcv_pb_str(&graph, GRAPH_NAME, m->name);
    if (graph.len + e.inits.len > MAX_MESSAGE) {
        rcv_pb_free(&graph);
        exporter_free(&e);
        return rcv_fail("ONNX export: model '%s' encodes to over 2 GB; a protobuf message holds at most 2 GB",
                        m->name);
    }
    graph.p = rcv_xrealloc(graph.p, graph.len + e.inits.len + 1);
    graph.cap = graph.len + e.inits.len + 1;
    if (e.inits.len) memcpy(graph.p + graph.len, e.inits.p, e.inits.len);
    graph.len += e.inits.len;
    rcv_pb_free(&e.inits);
    int in_dims[3] = {m->cfg.in_c, m->cfg.in_h, m->cfg.in_w};
    value_info(&graph, GRAPH_INPUT, "input", in_dims, 3);
    for (int k = 0; k < n_outs; k++) {
        int od[1] = {g->nodes[outs[k]].shape.c};
        value_info(&graph, GRAPH_OUTPUT, out_names[k], od, 1);
    }

    // ModelProto.
    rcv_pb_int(&model, MODEL_IR_VERSION, IR_VERSION);
    rcv_pb_str(&model, MODEL_PRODUCER_NAME, "robustcv");
    rcv_pb_str(&model, MODEL_PRODUCER_VERSION, "0.1");
    char doc[512];
    snprintf(doc, sizeof doc,
             "%s: input (N, %d, %d, %d) float pixels in [0, 1], normalized inside (mean, std per channel); "
             "output logits (N, %d)%s",
             m->name, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w, m->cfg.n_classes, m->box >= 0 ? ", boxes (N, 4)" : "");
    rcv_pb_str(&model, MODEL_DOC, doc);
    rcv_pb_str(&opset_id, OPSET_DOMAIN, "");
    rcv_pb_int(&opset_id, OPSET_VERSION, opset);
    rcv_pb_msg(&model, MODEL_OPSET_IMPORT, &opset_id);
    rcv_pb_free(&opset_id);
    metadata(&model, "robustcv.model", m->name);
    char buf[160];
    int n = 0;
    for (int c = 0; c < m->cfg.in_c; c++) n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%.9g", c ? "," : "", m->cfg.mean[c]);
    metadata(&model, "robustcv.mean", buf);
    n = 0;
    for (int c = 0; c < m->cfg.in_c; c++) n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%.9g", c ? "," : "", m->cfg.std[c]);
    metadata(&model, "robustcv.std", buf);
    rcv_pb_msg(&model, MODEL_GRAPH, &graph);
    rcv_pb_free(&graph);
    exporter_free(&e);
    *data = model.p;
    *len = model.len;
    return 0;
}

int rcv_onnx_export(const rcv_model *m, int opset, const char *path) {
    uint8_t *data;
    size_t len;
    if (rcv_onnx_encode(m, opset, &data, &len)) return -1;
    int rc = rcv_file_write_atomic(path, data, len);
    free(data);
    return rc;
}
