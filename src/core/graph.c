// Graph building, planning (one arena per batch size), forward, and
// reverse-mode autodiff. See graph.h for the contracts.
#include "robustcv/graph.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "robustcv/error.h"

static const char *op_names[RCV_OP_COUNT] = {
    [RCV_OP_INPUT] = "input",
    [RCV_OP_LABELS] = "labels",
    [RCV_OP_CONV2D] = "conv2d",
    [RCV_OP_BATCHNORM2D] = "batchnorm2d",
    [RCV_OP_RELU] = "relu",
    [RCV_OP_SIGMOID] = "sigmoid",
    [RCV_OP_MAXPOOL2D] = "maxpool2d",
    [RCV_OP_AVGPOOL2D] = "avgpool2d",
    [RCV_OP_GLOBAL_AVGPOOL] = "global_avgpool",
    [RCV_OP_LINEAR] = "linear",
    [RCV_OP_ADD] = "add",
    [RCV_OP_MUL] = "mul",
    [RCV_OP_SCALE_ADD] = "scale_add",
    [RCV_OP_CONCAT] = "concat",
    [RCV_OP_DROPOUT] = "dropout",
    [RCV_OP_FLATTEN] = "flatten",
    [RCV_OP_UPSAMPLE_NEAREST] = "upsample_nearest",
    [RCV_OP_UPSAMPLE_BILINEAR] = "upsample_bilinear",
    [RCV_OP_NORMALIZE] = "normalize",
    [RCV_OP_CROSS_ENTROPY] = "cross_entropy",
    [RCV_OP_KL_DIV] = "kl_div",
    [RCV_OP_SMOOTH_L1] = "smooth_l1",
    [RCV_OP_MSE] = "mse",
    [RCV_OP_ADAPTIVE_AVGPOOL] = "adaptive_avgpool",
};

const char *rcv_op_name(rcv_op op) { return (op >= 0 && op < RCV_OP_COUNT) ? op_names[op] : "?"; }

rcv_graph *rcv_graph_new(void) {
    rcv_graph *g = rcv_xcalloc(1, sizeof *g);
    g->threads = 0;
    rcv_rng_init(&g->rng, 0);
    return g;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

// Device mirrors of params/grads/buffers for a device plan; uploads the host values.
static int device_params_new(rcv_graph *g) {
    rcv_backend b = g->backend;
    void *ctx = g->backend_ctx;
    size_t np = g->n_param_floats ? g->n_param_floats : 16, nb = g->n_buffer_floats ? g->n_buffer_floats : 16;
    size_t ni = g->n_ibuffers ? g->n_ibuffers : 1;
    if (!(g->dparams = rcv_backend_alloc(b, ctx, np * sizeof(float))) ||
        !(g->dgrads = rcv_backend_alloc(b, ctx, np * sizeof(float))) ||
        !(g->dbuffers = rcv_backend_alloc(b, ctx, nb * sizeof(float))) ||
        !(g->dibuffers = rcv_backend_alloc(b, ctx, ni * sizeof(int64_t))))
        return -1;
    rcv_graph_params_to_device(g);
    rcv_graph_grads_to_device(g);
    return 0;
}

static void device_params_free(rcv_graph *g) {
    if (!g->dparams) return;
    // The device copy is the current one: bring it home before dropping it.
    rcv_graph_params_to_host(g);
    rcv_graph_grads_to_host(g);
    rcv_backend_free(g->backend, g->backend_ctx, g->dparams);
    rcv_backend_free(g->backend, g->backend_ctx, g->dgrads);
    rcv_backend_free(g->backend, g->backend_ctx, g->dbuffers);
    rcv_backend_free(g->backend, g->backend_ctx, g->dibuffers);
    g->dparams = g->dgrads = g->dbuffers = NULL;
    g->dibuffers = NULL;
}

static void unplan(rcv_graph *g) {
    if (g->dparams && g->dbuffers && g->dibuffers && g->dgrads) device_params_free(g);
    else {
        // A plan that failed half way: free whatever was allocated.
        if (g->dparams) rcv_backend_free(g->backend, g->backend_ctx, g->dparams);
        if (g->dgrads) rcv_backend_free(g->backend, g->backend_ctx, g->dgrads);
        if (g->dbuffers) rcv_backend_free(g->backend, g->backend_ctx, g->dbuffers);
        if (g->dibuffers) rcv_backend_free(g->backend, g->backend_ctx, g->dibuffers);
        g->dparams = g->dgrads = g->dbuffers = NULL;
        g->dibuffers = NULL;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        const rcv_kernels *k = rcv_backend_kernels(g->backend, n->op);
        if (n->kstate && k && k->release) k->release(n);
        n->kstate = NULL;
        n->out = n->grad = n->saved = NULL;
        n->idata = NULL;
        n->saved_len = 0;
    }
    if (g->arena) rcv_backend_free(g->backend, g->backend_ctx, g->arena);
    g->arena = NULL;
    if (g->backend_ctx) rcv_backend_ctx_free(g->backend, g->backend_ctx);
    g->backend_ctx = NULL;
    free(g->scratch);
    g->scratch = NULL;
    g->scratch_len = 0;
    g->batch = 0;
}

void rcv_graph_free(rcv_graph *g) {
    if (!g) return;
    unplan(g);
    for (int i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].in);
        free(g->nodes[i].in_beta);
    }
    free(g->nodes);
    free(g->param_info);
    free(g->params);
    free(g->grads);
    free(g->buffers);
    free(g->ibuffers);
    free(g->prof);
    free(g->want_grad);
    free(g);
}

int rcv_graph_add_node(rcv_graph *g, rcv_op op, const char *name, const int *in, int n_in) {
    for (int i = 0; i < n_in; i++)
        if (in[i] < 0 || in[i] >= g->n_nodes)
            return rcv_fail("%s '%s': input %d is node %d, but the graph has %d nodes", rcv_op_name(op),
                            name, i, in[i], g->n_nodes);
    if (g->params) return rcv_fail("%s '%s': graph parameters are already sealed", rcv_op_name(op), name);
    if (g->n_nodes == g->cap_nodes) {
        g->cap_nodes = g->cap_nodes ? 2 * g->cap_nodes : 64;
        g->nodes = rcv_xrealloc(g->nodes, (size_t)g->cap_nodes * sizeof *g->nodes);
        g->want_grad = rcv_xrealloc(g->want_grad, (size_t)g->cap_nodes);
    }
    int id = g->n_nodes++;
    rcv_node *n = &g->nodes[id];
    memset(n, 0, sizeof *n);
    n->op = op;
    snprintf(n->name, sizeof n->name, "%s", name ? name : "");
    n->n_in = n_in;
    n->in = rcv_xcalloc((size_t)(n_in ? n_in : 1), sizeof(int));
    n->in_beta = rcv_xcalloc((size_t)(n_in ? n_in : 1), 1);
    for (int i = 0; i < n_in; i++) n->in[i] = in[i];
    for (int i = 0; i < RCV_MAX_PARAMS; i++) n->param[i] = -1;
    for (int i = 0; i < RCV_MAX_BUFS; i++) n->buf[i] = -1;
    n->fold = -1;
    g->want_grad[id] = 0;
    return id;
}

int rcv_graph_add_param(rcv_graph *g, int node, const char *name, rcv_param_kind kind, int ndim,
                        const int64_t *shape) {
    if (g->n_params == g->cap_params) {
        g->cap_params = g->cap_params ? 2 * g->cap_params : 64;
        g->param_info = rcv_xrealloc(g->param_info, (size_t)g->cap_params * sizeof *g->param_info);
    }
    int id = g->n_params++;
    rcv_param *p = &g->param_info[id];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->node = node;
    p->lr_mult = 1.0f;
    rcv_node *n = &g->nodes[node];
    if (kind == RCV_PARAM) {
        for (int i = 0; i < RCV_MAX_PARAMS; i++)
            if (n->param[i] < 0) { n->param[i] = id; break; }
    } else {
        for (int i = 0; i < RCV_MAX_BUFS; i++)
            if (n->buf[i] < 0) { n->buf[i] = id; break; }
    }
    return id;
}

void rcv_graph_seal_params(rcv_graph *g) {
    if (g->params) return;
    size_t np = 0, nb = 0, ni = 0;
    for (int i = 0; i < g->n_params; i++) {
        rcv_param *p = &g->param_info[i];
        // 16-float alignment per tensor keeps vector loops aligned.
        size_t padded = (p->numel + 15) & ~(size_t)15;
        if (p->kind == RCV_PARAM) { p->offset = np; np += padded; }
        else if (p->kind == RCV_BUFFER) { p->offset = nb; nb += padded; }
        else { p->offset = ni; ni += p->numel; }
    }
    g->n_param_floats = np;
    g->n_buffer_floats = nb;
    g->n_ibuffers = ni;
    g->params = rcv_alloc_aligned(np * sizeof(float));
    g->grads = rcv_alloc_aligned(np * sizeof(float));
    g->buffers = rcv_alloc_aligned(nb * sizeof(float));
    g->ibuffers = rcv_xcalloc(ni ? ni : 1, sizeof(int64_t));
}

int rcv_graph_find_param(const rcv_graph *g, const char *name) {
    for (int i = 0; i < g->n_params; i++)
        if (!strcmp(g->param_info[i].name, name)) return i;
    return -1;
}

int rcv_graph_find_node(const rcv_graph *g, const char *name) {
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (!strcmp(g->nodes[i].name, name)) return i;
    return -1;
}

// want_grad bits: 1 = the caller reads the node's gradient, 2 = its output (kept NHWC, unfused).
static void want(rcv_graph *g, int node, uint8_t bit) {
    if (node >= 0 && node < g->n_nodes && !(g->want_grad[node] & bit)) {
        g->want_grad[node] |= bit;
        if (g->batch > 0) g->batch = -g->batch; // force a re-plan
    }
}
void rcv_graph_require_grad(rcv_graph *g, int node) { want(g, node, 1); }
void rcv_graph_require_out(rcv_graph *g, int node) { want(g, node, 2); }

static int has_params(const rcv_node *n) { return n->param[0] >= 0; }

float *rcv_graph_scratch(rcv_graph *g, size_t floats) {
    if (floats > g->scratch_len) {
        // Only reached from prepare (plan time); forward/backward find it sized.
        free(g->scratch);
        g->scratch = rcv_alloc_aligned(floats * sizeof(float));
        g->scratch_len = floats;
    }
    return g->scratch;
}

// BN -> ReLU where the ReLU is the BN's only consumer and nobody reads the BN's own output
// or gradient: the backend's BN kernel applies the ReLU (oneDNN's fused norm+relu, which
// keeps a mask for backward), the ReLU node becomes an alias. Saves a pass over the
// activation forward and backward. cpu backend only; tests that compare every node keep
// the nodes apart (keep_grads).
static void fuse_bn_relu(rcv_graph *g, rcv_backend backend) {
    int nn = g->n_nodes;
    int *uses = rcv_xcalloc((size_t)(nn ? nn : 1), sizeof(int));
    for (int i = 0; i < nn; i++) {
        g->nodes[i].fused_relu = g->nodes[i].skip = g->nodes[i].folded = 0;
        g->nodes[i].fold = -1;
        for (int j = 0; j < g->nodes[i].n_in; j++) uses[g->nodes[i].in[j]]++;
    }
    if (backend == RCV_BACKEND_CPU && !g->keep_grads)
        for (int i = 0; i < nn; i++) {
            rcv_node *r = &g->nodes[i];
            if (r->op != RCV_OP_RELU) continue;
            int b = r->in[0];
            if (g->nodes[b].op != RCV_OP_BATCHNORM2D || uses[b] != 1 || g->want_grad[b]) continue;
            g->nodes[b].fused_relu = 1;
            r->skip = 1;
        }
    // conv -> BN where the BN is the conv's only consumer and nobody reads the conv's output:
    // rcv_graph_infer may fold the BN into the conv (the kernel decides in prepare, setting the
    // BN's `folded`). Training and backward never see it.
    if (backend == RCV_BACKEND_CPU && !g->keep_grads)
        for (int i = 0; i < nn; i++) {
            rcv_node *b = &g->nodes[i];
            if (b->op != RCV_OP_BATCHNORM2D) continue;
            int c = b->in[0];
            if (g->nodes[c].op == RCV_OP_CONV2D && uses[c] == 1 && !g->want_grad[c]) g->nodes[c].fold = i;
        }
    // add -> ReLU likewise (ResNet's residual sums): the add writes max(a + b, 0) in infer.
    if (backend == RCV_BACKEND_CPU && !g->keep_grads)
        for (int i = 0; i < nn; i++) {
            rcv_node *r = &g->nodes[i];
            if (r->op != RCV_OP_RELU || r->skip) continue;
            int a = r->in[0];
            if (g->nodes[a].op == RCV_OP_ADD && uses[a] == 1 && !g->want_grad[a]) g->nodes[a].fold = i;
        }
    free(uses);
}

// Blocked activations. oneDNN's fp32 Winograd and direct convolutions compute in nChw<b>c, b the
// vector width of the ISA they run at (16 on AVX-512, 8 on AVX2: rcv_backend_block, from oneDNN's
// effective ISA, so the layout follows the machine the process runs on);
// reordering each conv's input, output and both their gradients from and to NHWC took ~9 ms of
// the small CNN's 66 ms training step. So the planner keeps whole chains blocked: a cluster is a
// set of tensors tied to one layout by RCV_LAYOUT_TIED ops (batchnorm, ReLU, max-pool, same-shape
// adds); it goes blocked when every tensor in it has C % b == 0, is made by a TIED or FREE
// (convolution) kernel, is read only by TIED, FREE or READS (global pool) kernels, and is not a
// tensor the caller reads: an output (no consumer) or a node marked with rcv_graph_require_grad
// (attack inputs, CAM layers). keep_grads (tests comparing every node with ref) plans NHWC.
static int uf_find(int *p, int i) {
    while (p[i] != i) i = p[i] = p[p[i]];
    return i;
}

static void plan_layouts(rcv_graph *g, rcv_backend backend) {
    int nn = g->n_nodes;
    for (int i = 0; i < nn; i++) g->nodes[i].blocked = 0;
    int blk = rcv_backend_block(backend);
    if (blk == 0 || g->keep_grads || getenv("RCV_NO_BLOCKED") || nn == 0) return;
    int *parent = rcv_xmalloc((size_t)nn * sizeof(int)), *uses = rcv_xcalloc((size_t)nn, sizeof(int));
    uint8_t *kind = rcv_xmalloc((size_t)nn), *ok = rcv_xmalloc((size_t)nn);
    for (int i = 0; i < nn; i++) {
        const rcv_node *n = &g->nodes[i];
        const rcv_kernels *k = rcv_backend_kernels(backend, n->op);
        kind[i] = k && k->layout ? (uint8_t)k->layout(g, n) : RCV_LAYOUT_NHWC;
        parent[i] = i;
        for (int j = 0; j < n->n_in; j++) uses[n->in[j]]++;
    }
    for (int i = 0; i < nn; i++)
        if (kind[i] == RCV_LAYOUT_TIED)
            for (int j = 0; j < g->nodes[i].n_in; j++) parent[uf_find(parent, g->nodes[i].in[j])] = uf_find(parent, i);
    for (int i = 0; i < nn; i++) ok[i] = 1;
    for (int i = 0; i < nn; i++) {
        const rcv_node *n = &g->nodes[i];
        int fits = n->shape.c % blk == 0 && uses[i] > 0 && !g->want_grad[i] &&
                   (kind[i] == RCV_LAYOUT_TIED || kind[i] == RCV_LAYOUT_FREE);
        if (!fits) ok[uf_find(parent, i)] = 0;
        for (int j = 0; j < n->n_in; j++) // a reader that handles NHWC only pins its input
            if (kind[i] == RCV_LAYOUT_NHWC) ok[uf_find(parent, n->in[j])] = 0;
    }
    for (int i = 0; i < nn; i++) g->nodes[i].blocked = ok[uf_find(parent, i)] ? (uint8_t)blk : 0;
    free(parent);
    free(uses);
    free(kind);
    free(ok);
}

// Gradient memory. Backward visits nodes in reverse order; node i's gradient is first
// written by the backward of its last consumer (step c = max consumer index) and last read
// by its own backward (step i), so it lives over steps [i, c]. Gradients whose lives do not
// overlap share memory: each, in order of first write, takes the lowest offset clear of
// every live gradient. Gradients the caller reads after backward (rcv_graph_require_grad:
// attack inputs, Grad-CAM maps) live to the end; a seed written before backward (the loss,
// rcv_graph_backward_from's node) is live from the start. keep_grads gives every gradient
// its own memory (tests that compare them all). Returns the floats needed; off[i] per node.
static size_t assign_grads(rcv_graph *g, size_t *off) {
    int nn = g->n_nodes;
    int *first = rcv_xmalloc((size_t)(nn ? nn : 1) * sizeof(int)), *last = rcv_xmalloc((size_t)(nn ? nn : 1) * sizeof(int));
    for (int i = 0; i < nn; i++) first[i] = nn, last[i] = (g->want_grad[i] & 1) || g->keep_grads ? 0 : i;
    // A node with no consumer is a seed (live from the start: first = nn); otherwise its
    // last consumer writes it first.
    int *has_cons = rcv_xcalloc((size_t)(nn ? nn : 1), sizeof(int));
    for (int i = nn - 1; i >= 0; i--)
        for (int j = 0; j < g->nodes[i].n_in; j++) {
            int in = g->nodes[i].in[j];
            if (!has_cons[in]) has_cons[in] = 1, first[in] = i;
        }
    // backward_from(node) seeds node's own gradient before the pass: it must not share with
    // anything live at or after its write, which [i, first] already guarantees (the pass starts
    // at i; everything else written later is written at steps below i, after i's read).
    if (g->keep_grads)
        for (int i = 0; i < nn; i++) first[i] = nn;
    // A fused BN's gradient is its ReLU's: one block living over both lives.
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].skip) {
            int b = g->nodes[i].in[0];
            first[b] = first[i];
            if (last[i] < last[b]) last[b] = last[i];
        }
    typedef struct { size_t off, len; int end; } blk;
    blk *live = rcv_xmalloc((size_t)(nn ? nn : 1) * sizeof(blk));
    int nlive = 0;
    size_t total = 0;
    for (int t = nn; t >= 0; t--) {
        // Release gradients whose last read was at a later step (t + 1).
        for (int k = 0; k < nlive;)
            if (live[k].end > t) live[k] = live[--nlive];
            else k++;
        for (int i = 0; i < nn; i++) {
            rcv_node *n = &g->nodes[i];
            if (!n->needs_grad || n->skip || first[i] != t) continue;
            size_t len = align16(rcv_numel(n->shape)), best = SIZE_MAX;
            // Lowest candidate offset (0 or the end of a live block) that overlaps no live block.
            for (int c = -1; c < nlive; c++) {
                size_t o = c < 0 ? 0 : live[c].off + live[c].len;
                int clear = o < best;
                for (int k = 0; k < nlive && clear; k++)
                    if (o < live[k].off + live[k].len && live[k].off < o + len) clear = 0;
                if (clear) best = o;
            }
            off[i] = best;
            live[nlive++] = (blk){best, len, last[i]};
            if (best + len > total) total = best + len;
        }
    }
    free(live);
    free(has_cons);
    free(first);
    free(last);
    return total;
}

int rcv_graph_plan(rcv_graph *g, int batch, rcv_backend backend) {
    if (batch <= 0) return rcv_fail("plan: batch size %d, expected a positive integer", batch);
    if (g->batch == batch && g->backend == backend) return 0;
    unplan(g);
    rcv_graph_seal_params(g);
    g->backend = backend;

    // Which nodes carry a gradient: those downstream of a parameter or of a node the caller asked for.
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        n->needs_grad = (g->want_grad[i] & 1) || has_params(n);
        for (int j = 0; j < n->n_in && !n->needs_grad; j++)
            if (g->nodes[n->in[j]].needs_grad) n->needs_grad = 1;
        if (n->op == RCV_OP_LABELS) n->needs_grad = 0;
        n->shape.n = batch;
        if (n->op == RCV_OP_CROSS_ENTROPY || n->op == RCV_OP_KL_DIV || n->op == RCV_OP_SMOOTH_L1 ||
            n->op == RCV_OP_MSE)
            n->shape.n = 1; // scalar losses
    }
    g->batch = batch;
    fuse_bn_relu(g, backend);
    plan_layouts(g, backend);

    // The context first: a device backend must find its device before allocating.
    g->backend_ctx = rcv_backend_ctx_new(backend, g);
    if (!g->backend_ctx && backend != RCV_BACKEND_REF) {
        g->batch = 0;
        return rcv_fail_ctx("plan: ");
    }

    // One arena (host or device memory): outputs, saved state and gradients, each 64-byte
    // aligned. Outputs and saved state live for the whole step; gradients share memory
    // (assign_grads).
    size_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        const rcv_kernels *k = rcv_backend_kernels(backend, n->op);
        n->saved_len = (k && k->saved_size) ? k->saved_size(g, n) : 0;
        if (n->op == RCV_OP_LABELS) total += align16((size_t)batch);
        else if (!n->skip) total += align16(rcv_numel(n->shape));
        total += align16(n->saved_len);
    }
    size_t *grad_off = rcv_xmalloc((size_t)(g->n_nodes > 0 ? g->n_nodes : 1) * sizeof(size_t));
    size_t grad_total = assign_grads(g, grad_off);
    g->arena = rcv_backend_alloc(backend, g->backend_ctx, (total + grad_total) * sizeof(float));
    if (!g->arena || (rcv_backend_on_device(backend) && device_params_new(g))) {
        free(grad_off);
        g->batch = 0;
        return rcv_fail_ctx("plan: ");
    }
    float *p = g->arena;
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_LABELS) {
            n->idata = (int32_t *)p;
            p += align16((size_t)batch);
        } else if (n->skip) {
            n->out = g->nodes[n->in[0]].out;
        } else {
            n->out = p;
            p += align16(rcv_numel(n->shape));
        }
        if (n->saved_len) { n->saved = p; p += align16(n->saved_len); }
    }
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].needs_grad && !g->nodes[i].skip) g->nodes[i].grad = p + grad_off[i];
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].skip) g->nodes[i].grad = g->nodes[g->nodes[i].in[0]].grad;
    g->grad_floats = grad_total;
    free(grad_off);

    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        const rcv_kernels *k = rcv_backend_kernels(backend, n->op);
        if (!k || !k->forward) {
            if (n->op == RCV_OP_INPUT || n->op == RCV_OP_LABELS) continue;
            g->batch = 0;
            return rcv_fail("plan: op %s (node '%s') has no kernel on backend %d", rcv_op_name(n->op),
                            n->name, backend);
        }
        if (k->prepare && k->prepare(g, n)) {
            g->batch = 0;
            return rcv_fail_ctx("plan: node '%s' (%s): ", n->name, rcv_op_name(n->op));
        }
    }
    return 0;
}

// Wall time, or with rcv_graph_profile(g, 2) the process's CPU time (all threads): on a shared
// machine a one-thread run's CPU time is the cleaner signal.
static double now_s_of(const rcv_graph *g) {
    struct timespec ts;
    clock_gettime(g->prof_cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void rcv_graph_set_training(rcv_graph *g, int training) {
    if (g->training && !training) g->params_gen++; // out of training: the steps changed the weights
    g->training = training;
}

void rcv_graph_params_changed(rcv_graph *g) { g->params_gen++; }
void rcv_graph_set_input_grad_only(rcv_graph *g, int on) { g->input_grad_only = on; }

rcv_precision rcv_graph_set_precision(rcv_graph *g, rcv_backend backend, rcv_precision p) {
    int ok = p == RCV_PREC_FP32 || backend == RCV_BACKEND_CUDA ||
             (backend == RCV_BACKEND_CPU && p == RCV_PREC_BF16 && rcv_backend_has_bf16(backend));
    if (!ok) {
        // Said once per process and (backend, precision): robustcv run trains several models and
        // search many, on the same CPU.
        static _Atomic unsigned told;
        unsigned bit = 1u << (4 * backend + p);
        char why[96] = ""; // ONEDNN_MAX_CPU_ISA may cap a CPU that has bf16: name the ISA oneDNN runs at
        if (backend == RCV_BACKEND_CPU && p == RCV_PREC_BF16)
            snprintf(why, sizeof why, " (no AVX512-BF16 or AMX at oneDNN ISA %s)", rcv_cpu_isa());
        if (!(atomic_fetch_or(&told, bit) & bit))
            fprintf(stderr, "robustcv: --precision %s is not available on the %s backend%s; using fp32\n",
                    rcv_precision_name(p), backend == RCV_BACKEND_CPU ? "cpu" : "ref", why);
        p = RCV_PREC_FP32;
    }
    if (g->precision != p && g->batch > 0) g->batch = -g->batch; // forces a re-plan (kernels depend on it)
    g->precision = p;
    return p;
}

void rcv_graph_forward(rcv_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_INPUT || n->op == RCV_OP_LABELS || n->skip) continue;
        double t0 = g->prof ? now_s_of(g) : 0;
        rcv_backend_kernels(g->backend, n->op)->forward(g, n);
        if (g->prof) {
            rcv_graph_sync(g); // device kernels run asynchronously
            g->prof[2 * i] += now_s_of(g) - t0;
        }
    }
    if (g->prof) g->prof_steps++;
    g->inferred = 0;
}

void rcv_graph_infer(rcv_graph *g) {
    if (g->training) {
        rcv_graph_forward(g);
        return;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_INPUT || n->op == RCV_OP_LABELS || n->skip || n->folded) continue;
        double t0 = g->prof ? now_s_of(g) : 0;
        const rcv_kernels *k = rcv_backend_kernels(g->backend, n->op);
        (k->infer ? k->infer : k->forward)(g, n);
        if (g->prof) {
            rcv_graph_sync(g);
            g->prof[2 * i] += now_s_of(g) - t0;
        }
    }
    if (g->prof) g->prof_steps++;
    g->inferred = 1;
}

void rcv_graph_zero_grad(rcv_graph *g) {
    if (g->dgrads) rcv_backend_zero(g->backend, g->backend_ctx, g->dgrads, g->n_param_floats * sizeof(float));
    else memset(g->grads, 0, g->n_param_floats * sizeof(float));
}

static void backward_from(rcv_graph *g, int loss) {
    int nn = g->n_nodes;
    // Visit only ancestors of `loss`; the first consumer (in reverse order) of a node
    // overwrites its gradient, later ones accumulate.
    uint8_t reach[nn > 0 ? nn : 1], written[nn > 0 ? nn : 1];
    memset(reach, 0, (size_t)nn);
    memset(written, 0, (size_t)nn);
    reach[loss] = 1;
    for (int i = loss; i >= 0; i--) {
        if (!reach[i]) continue;
        rcv_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            int in = n->in[j];
            if (g->nodes[in].needs_grad) reach[in] = 1;
        }
    }
    for (int i = loss; i >= 0; i--) {
        if (!reach[i]) continue;
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_INPUT || n->op == RCV_OP_LABELS) continue;
        // A node that reads the same input twice (mul(x, x)) writes it once, then adds.
        for (int j = 0; j < n->n_in; j++) {
            int in = n->in[j];
            n->in_beta[j] = written[in];
            if (g->nodes[in].needs_grad) written[in] = 1;
        }
        if (n->skip) continue; // a fused ReLU: its BN's backward applies the mask
        // Input gradients only: a node none of whose inputs takes a gradient would only add to
        // its parameters' (the first conv of a model whose input is not asked for).
        int feeds = !g->input_grad_only;
        for (int j = 0; j < n->n_in && !feeds; j++) feeds = g->nodes[n->in[j]].needs_grad;
        if (feeds) {
            double t0 = g->prof ? now_s_of(g) : 0;
            rcv_backend_kernels(g->backend, n->op)->backward(g, n);
            if (g->prof) {
                rcv_graph_sync(g);
                g->prof[2 * i + 1] += now_s_of(g) - t0;
            }
        }
        // Every node >= i is done: parameter gradients owned there are final (dist.h's buckets).
        if (g->on_backward_node) g->on_backward_node(g->hook_ctx, g, i);
    }
}

void rcv_graph_backward(rcv_graph *g, int loss, float scale) {
    rcv_node *ln = &g->nodes[loss];
    if (!ln->grad) return;
    if (g->inferred) rcv_graph_forward(g); // backward reads what forward saves
    rcv_backend_fill(g->backend, g->backend_ctx, ln->grad, rcv_numel(ln->shape), scale);
    backward_from(g, loss);
}

int rcv_graph_backward_from(rcv_graph *g, int node, const float *seed) {
    rcv_node *n = &g->nodes[node];
    if (!n->grad)
        return rcv_fail("backward_from: node '%s' (%s) has no gradient: nothing it depends on has parameters or "
                        "was marked with rcv_graph_require_grad", n->name, rcv_op_name(n->op));
    if (g->inferred) rcv_graph_forward(g); // backward reads what forward saves
    if (n->grad != seed) rcv_graph_upload(g, n->grad, seed, rcv_numel(n->shape) * sizeof(float));
    backward_from(g, node);
    return 0;
}

int rcv_graph_on_device(const rcv_graph *g) { return g->batch != 0 && rcv_backend_on_device(g->backend); }

void rcv_graph_upload(rcv_graph *g, void *planned, const void *host, size_t bytes) {
    rcv_backend_upload(g->backend, g->backend_ctx, planned, host, bytes);
}

void rcv_graph_download(rcv_graph *g, void *host, const void *planned, size_t bytes) {
    rcv_backend_download(g->backend, g->backend_ctx, host, planned, bytes);
}

void rcv_graph_params_to_device(rcv_graph *g) {
    g->params_gen++; // called after host writes (loads)
    if (!g->dparams) return;
    rcv_backend_upload(g->backend, g->backend_ctx, g->dparams, g->params, g->n_param_floats * sizeof(float));
    rcv_backend_upload(g->backend, g->backend_ctx, g->dbuffers, g->buffers, g->n_buffer_floats * sizeof(float));
    rcv_backend_upload(g->backend, g->backend_ctx, g->dibuffers, g->ibuffers, g->n_ibuffers * sizeof(int64_t));
}

void rcv_graph_params_to_host(rcv_graph *g) {
    g->params_gen++;
    if (!g->dparams) return;
    rcv_backend_download(g->backend, g->backend_ctx, g->params, g->dparams, g->n_param_floats * sizeof(float));
    rcv_backend_download(g->backend, g->backend_ctx, g->buffers, g->dbuffers, g->n_buffer_floats * sizeof(float));
    rcv_backend_download(g->backend, g->backend_ctx, g->ibuffers, g->dibuffers, g->n_ibuffers * sizeof(int64_t));
}

void rcv_graph_grads_to_host(rcv_graph *g) {
    if (g->dgrads)
        rcv_backend_download(g->backend, g->backend_ctx, g->grads, g->dgrads, g->n_param_floats * sizeof(float));
}

void rcv_graph_grads_to_device(rcv_graph *g) {
    if (g->dgrads)
        rcv_backend_upload(g->backend, g->backend_ctx, g->dgrads, g->grads, g->n_param_floats * sizeof(float));
}

void rcv_graph_sync(rcv_graph *g) {
    if (g->backend_ctx) rcv_backend_sync(g->backend, g->backend_ctx);
}

const char *rcv_precision_name(rcv_precision p) {
    switch (p) {
    case RCV_PREC_FP32: return "fp32";
    case RCV_PREC_TF32: return "tf32";
    case RCV_PREC_BF16: return "bf16";
    case RCV_PREC_FP16: return "fp16";
    }
    return "?";
}

int rcv_precision_parse(const char *name, rcv_precision *p) {
    for (int k = RCV_PREC_FP32; k <= RCV_PREC_FP16; k++)
        if (name && !strcmp(name, rcv_precision_name((rcv_precision)k))) { *p = (rcv_precision)k; return 0; }
    return rcv_fail("precision '%s' is unknown, expected one of fp32, tf32, bf16, fp16", name ? name : "");
}

void rcv_graph_profile(rcv_graph *g, int on) {
    free(g->prof);
    g->prof = on ? rcv_xcalloc((size_t)2 * (g->n_nodes > 0 ? g->n_nodes : 1), sizeof(double)) : NULL;
    g->prof_steps = 0;
    g->prof_cpu = on == 2;
}

static int cmp_desc(const void *a, const void *b) {
    double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return (x < y) - (x > y);
}

void rcv_graph_profile_print(const rcv_graph *g, FILE *f, int top_nodes) {
    if (!g->prof || g->prof_steps == 0) return;
    double per = 1e3 / (double)g->prof_steps, total = 0;
    double byop[RCV_OP_COUNT][3] = {{0}}; // ms, fwd, bwd per op
    int count[RCV_OP_COUNT] = {0};
    double (*nodes)[2] = rcv_xmalloc((size_t)g->n_nodes * sizeof *nodes); // {ms, id}
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_op op = g->nodes[i].op;
        double fw = g->prof[2 * i] * per, bw = g->prof[2 * i + 1] * per;
        byop[op][0] += fw + bw;
        byop[op][1] += fw;
        byop[op][2] += bw;
        count[op]++;
        total += fw + bw;
        nodes[i][0] = fw + bw;
        nodes[i][1] = i;
    }
    fprintf(f, "profile: %ld steps, %.2f ms %s per step in ops (batch %d)\n", g->prof_steps, total,
            g->prof_cpu ? "CPU time" : "wall", g->batch);
    fprintf(f, "  %-20s %6s %10s %10s %10s %6s\n", "op", "nodes", "fwd ms", "bwd ms", "total ms", "share");
    double ops[RCV_OP_COUNT][2];
    for (int o = 0; o < RCV_OP_COUNT; o++) ops[o][0] = byop[o][0], ops[o][1] = o;
    qsort(ops, RCV_OP_COUNT, sizeof ops[0], cmp_desc);
    for (int k = 0; k < RCV_OP_COUNT; k++) {
        int o = (int)ops[k][1];
        if (!count[o] || byop[o][0] <= 0) continue;
        fprintf(f, "  %-20s %6d %10.3f %10.3f %10.3f %5.1f%%\n", rcv_op_name((rcv_op)o), count[o], byop[o][1],
                byop[o][2], byop[o][0], 100 * byop[o][0] / (total > 0 ? total : 1));
    }
    qsort(nodes, (size_t)g->n_nodes, sizeof nodes[0], cmp_desc);
    fprintf(f, "  slowest nodes:\n");
    for (int k = 0; k < top_nodes && k < g->n_nodes; k++) {
        int id = (int)nodes[k][1];
        const rcv_node *n = &g->nodes[id];
        fprintf(f, "  %-32s %-18s (%d, %d, %d, %d) %8.3f ms (fwd %.3f, bwd %.3f)\n", n->name, rcv_op_name(n->op),
                n->shape.n, n->shape.c, n->shape.h, n->shape.w, nodes[k][0], g->prof[2 * id] * per,
                g->prof[2 * id + 1] * per);
    }
    free(nodes);
}

size_t rcv_graph_param_count(const rcv_graph *g) {
    size_t c = 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->param_info[i].kind == RCV_PARAM) c += g->param_info[i].numel;
    return c;
}

void rcv_graph_print(const rcv_graph *g) {
    for (int i = 0; i < g->n_nodes; i++) {
        const rcv_node *n = &g->nodes[i];
        printf("%4d %-18s %-32s (%d, %d, %d, %d)", i, rcv_op_name(n->op), n->name, n->shape.n, n->shape.c,
               n->shape.h, n->shape.w);
        for (int j = 0; j < n->n_in; j++) printf(" %d", n->in[j]);
        printf("\n");
    }
}
