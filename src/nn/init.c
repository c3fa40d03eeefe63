// PyTorch-equivalent initialisers (torch.nn.init) on graph parameters.
#include "robustcv/init.h"

#include <math.h>
#include <string.h>

#include "robustcv/error.h"

float rcv_init_gain(rcv_nonlinearity nl, float a) {
    switch (nl) {
    case RCV_NL_TANH: return 5.0f / 3.0f;
    case RCV_NL_RELU: return sqrtf(2.0f);
    case RCV_NL_LEAKY_RELU: return sqrtf(2.0f / (1.0f + a * a));
    case RCV_NL_LINEAR:
    case RCV_NL_SIGMOID:
    default: return 1.0f;
    }
}

void rcv_init_fans(const rcv_param *p, int64_t *fan_in, int64_t *fan_out) {
    if (p->ndim < 2) {
        int64_t n = p->ndim == 1 ? p->shape[0] : 1;
        *fan_in = *fan_out = n;
        return;
    }
    int64_t receptive = 1;
    for (int i = 2; i < p->ndim; i++) receptive *= p->shape[i];
    *fan_in = p->shape[1] * receptive;
    *fan_out = p->shape[0] * receptive;
}

// FNV-1a: a stable label for a parameter's stream.
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

rcv_rng rcv_init_param_rng(const rcv_rng *root, const rcv_graph *g, int p) {
    return rcv_rng_fork(root, name_hash(g->param_info[p].name));
}

static float *data(rcv_graph *g, int p) {
    rcv_graph_seal_params(g);
    return rcv_param_data(g, p);
}

void rcv_init_constant(rcv_graph *g, int p, float v) {
    rcv_graph_seal_params(g);
    rcv_param *pi = &g->param_info[p];
    if (pi->kind == RCV_BUFFER_I64) {
        for (size_t i = 0; i < pi->numel; i++) g->ibuffers[pi->offset + i] = (int64_t)v;
        return;
    }
    float *x = rcv_param_data(g, p);
    for (size_t i = 0; i < pi->numel; i++) x[i] = v;
}

void rcv_init_uniform(rcv_graph *g, int p, rcv_rng *r, float lo, float hi) {
    float *x = data(g, p);
    rcv_rng_fill_uniform(r, x, g->param_info[p].numel, lo, hi);
}

void rcv_init_normal(rcv_graph *g, int p, rcv_rng *r, float mean, float std) {
    float *x = data(g, p);
    rcv_rng_fill_normal(r, x, g->param_info[p].numel, mean, std);
}

static float fan_of(const rcv_param *p, rcv_fan_mode mode) {
    int64_t fi, fo;
    rcv_init_fans(p, &fi, &fo);
    int64_t f = mode == RCV_FAN_OUT ? fo : fi;
    return (float)(f > 0 ? f : 1);
}

void rcv_init_kaiming_uniform(rcv_graph *g, int p, rcv_rng *r, float a, rcv_fan_mode mode, rcv_nonlinearity nl) {
    float bound = rcv_init_gain(nl, a) * sqrtf(3.0f / fan_of(&g->param_info[p], mode));
    rcv_init_uniform(g, p, r, -bound, bound);
}

void rcv_init_kaiming_normal(rcv_graph *g, int p, rcv_rng *r, float a, rcv_fan_mode mode, rcv_nonlinearity nl) {
    float std = rcv_init_gain(nl, a) / sqrtf(fan_of(&g->param_info[p], mode));
    rcv_init_normal(g, p, r, 0.0f, std);
}

void rcv_init_xavier_uniform(rcv_graph *g, int p, rcv_rng *r, float gain) {
    int64_t fi, fo;
    rcv_init_fans(&g->param_info[p], &fi, &fo);
    float bound = gain * sqrtf(6.0f / (float)(fi + fo));
    rcv_init_uniform(g, p, r, -bound, bound);
}

void rcv_init_xavier_normal(rcv_graph *g, int p, rcv_rng *r, float gain) {
    int64_t fi, fo;
    rcv_init_fans(&g->param_info[p], &fi, &fo);
    rcv_init_normal(g, p, r, 0.0f, gain * sqrtf(2.0f / (float)(fi + fo)));
}

void rcv_init_bias_default(rcv_graph *g, int bias, int weight, rcv_rng *r) {
    float bound = 1.0f / sqrtf(fan_of(&g->param_info[weight], RCV_FAN_IN));
    rcv_init_uniform(g, bias, r, -bound, bound);
}

// nn.Conv2d / nn.Linear reset_parameters: param[0] weight, param[1] bias.
static void init_affine(rcv_graph *g, const rcv_node *n, const rcv_rng *root) {
    int w = n->param[0], b = n->param[1];
    rcv_rng r = rcv_init_param_rng(root, g, w);
    rcv_init_kaiming_uniform(g, w, &r, sqrtf(5.0f), RCV_FAN_IN, RCV_NL_LEAKY_RELU);
    if (b >= 0) {
        r = rcv_init_param_rng(root, g, b);
        rcv_init_bias_default(g, b, w, &r);
    }
}

// nn.BatchNorm2d reset_parameters + reset_running_stats: buf = running_mean, running_var, num_batches_tracked.
// Affine-free or untracked batchnorms lack some of them.
static void init_batchnorm(rcv_graph *g, const rcv_node *n) {
    static const float param_v[2] = {1.0f, 0.0f}, buf_v[3] = {0.0f, 1.0f, 0.0f};
    for (int j = 0; j < 2; j++)
        if (n->param[j] >= 0) rcv_init_constant(g, n->param[j], param_v[j]);
    for (int j = 0; j < 3; j++)
        if (n->buf[j] >= 0) rcv_init_constant(g, n->buf[j], buf_v[j]);
}

int rcv_init_default(rcv_graph *g, const rcv_rng *root) {
    rcv_graph_seal_params(g);
    for (int i = 0; i < g->n_nodes; i++) {
        const rcv_node *n = &g->nodes[i];
        if (n->param[0] < 0 && n->buf[0] < 0) continue;
        switch (n->op) {
        case RCV_OP_CONV2D:
        case RCV_OP_LINEAR: init_affine(g, n, root); break;
        case RCV_OP_BATCHNORM2D: init_batchnorm(g, n); break;
        default:
            return rcv_fail("rcv_init_default: node '%s' (%s) has parameters but no default initialiser for its op",
                            n->name, rcv_op_name(n->op));
        }
    }
    return 0;
}
