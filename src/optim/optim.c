// Optimizer state and the per-step loop over a graph's trainable parameters.
#include <stdlib.h>
#include <string.h>

#ifdef RCV_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#include "optim/chunks.h"
#include "robustcv/error.h"
#include "robustcv/optim.h"

rcv_optim_cfg rcv_optim_defaults(rcv_optim_kind kind) {
    rcv_optim_cfg c = {0};
    c.kind = kind;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    switch (kind) {
    case RCV_OPT_SGD: c.lr = 0.01f; break;
    case RCV_OPT_ADAM: c.lr = 1e-3f; break;
    case RCV_OPT_ADAMW: c.lr = 1e-3f; c.weight_decay = 0.01f; break;
    }
    return c;
}

const char *rcv_optim_name(rcv_optim_kind kind) {
    switch (kind) {
    case RCV_OPT_SGD: return "sgd";
    case RCV_OPT_ADAM: return "adam";
    case RCV_OPT_ADAMW: return "adamw";
    }
    return "?";
}

int rcv_optim_parse_kind(const char *name, rcv_optim_kind *kind) {
    for (int k = RCV_OPT_SGD; k <= RCV_OPT_ADAMW; k++)
        if (!strcmp(name, rcv_optim_name((rcv_optim_kind)k))) { *kind = (rcv_optim_kind)k; return 0; }
    return rcv_fail("optimizer '%s' is unknown, expected one of sgd, adam, adamw", name);
}

int rcv_optim_init(rcv_optim *o, const rcv_optim_cfg *cfg, size_t n) {
    memset(o, 0, sizeof *o);
    const rcv_optim_cfg *c = cfg;
    const char *name = rcv_optim_name(c->kind);
    if (c->kind < RCV_OPT_SGD || c->kind > RCV_OPT_ADAMW) return rcv_fail("optimizer kind %d is unknown", (int)c->kind);
    if (!(c->lr >= 0)) return rcv_fail("%s: learning rate %g, expected >= 0", name, (double)c->lr);
    if (!(c->weight_decay >= 0)) return rcv_fail("%s: weight decay %g, expected >= 0", name, (double)c->weight_decay);
    if (c->kind == RCV_OPT_SGD) {
        if (!(c->momentum >= 0)) return rcv_fail("sgd: momentum %g, expected >= 0", (double)c->momentum);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return rcv_fail("sgd: nesterov needs momentum > 0 and dampening 0 (got momentum %g, dampening %g)",
                            (double)c->momentum, (double)c->dampening);
    } else {
        if (!(c->beta1 >= 0 && c->beta1 < 1)) return rcv_fail("%s: beta1 %g, expected in [0, 1)", name, (double)c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1)) return rcv_fail("%s: beta2 %g, expected in [0, 1)", name, (double)c->beta2);
        if (!(c->eps >= 0)) return rcv_fail("%s: eps %g, expected >= 0", name, (double)c->eps);
    }
    o->cfg = *c;
    o->n = n;
    if (c->kind != RCV_OPT_SGD || c->momentum != 0) o->m = rcv_alloc_aligned(n * sizeof(float));
    if (c->kind != RCV_OPT_SGD) o->v = rcv_alloc_aligned(n * sizeof(float));
    return 0;
}

void rcv_optim_free(rcv_optim *o) {
    if (!o) return;
#ifdef RCV_HAVE_CUDA
    rcv_cuda_optim_state_free(NULL, o->dev);
#endif
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

int rcv_optim_chunks(const rcv_graph *g, rcv_chunk **out) {
    int n = 0, cap = 0;
    rcv_chunk *c = NULL;
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        if (p->kind != RCV_PARAM || p->frozen) continue;
        for (size_t s = 0; s < p->numel; s += RCV_CHUNK) {
            if (n == cap) {
                cap = cap ? 2 * cap : 256;
                c = rcv_xrealloc(c, (size_t)cap * sizeof *c);
            }
            c[n++] = (rcv_chunk){p->offset + s, p->numel - s < RCV_CHUNK ? p->numel - s : RCV_CHUNK, p->lr_mult};
        }
    }
    *out = c;
    return n;
}

int rcv_optim_step(rcv_optim *o, rcv_graph *g, float lr) {
    rcv_graph_params_changed(g);
    if (g->n_param_floats != o->n)
        return rcv_fail("%s: optimizer state holds %zu floats, the graph has %zu parameter floats",
                        rcv_optim_name(o->cfg.kind), o->n, g->n_param_floats);
    rcv_chunk *ch;
    int nc = rcv_optim_chunks(g, &ch);
    const rcv_optim_cfg c = o->cfg;
    int64_t step = o->step + 1;
#ifdef RCV_HAVE_CUDA
    if (g->dparams) {
        if (!o->dev) {
            // First step on the GPU: the host state (zeros, or a resumed checkpoint's) moves there.
            o->dev = rcv_cuda_optim_state_new(g->backend_ctx, o->n, o->m != NULL, o->v != NULL);
            if (!o->dev) {
                free(ch);
                return -1;
            }
            rcv_cuda_optim_state_upload(g->backend_ctx, o->dev, o->m, o->v);
        }
        // rcv_chunk and rcv_cuda_chunk have the same members in the same order.
        const rcv_cuda_chunk *cc = (const rcv_cuda_chunk *)ch;
        if (c.kind == RCV_OPT_SGD)
            rcv_cuda_sgd_step(g->backend_ctx, o->dev, g->dparams, g->dgrads, cc, nc, lr, c.momentum, c.dampening,
                              c.weight_decay, c.nesterov, o->step == 0);
        else
            rcv_cuda_adam_step(g->backend_ctx, o->dev, g->dparams, g->dgrads, cc, nc, lr, c.beta1, c.beta2, c.eps,
                               c.weight_decay, c.kind == RCV_OPT_ADAMW, step);
        free(ch);
        o->step = step;
        return 0;
    }
#endif
#pragma omp parallel for schedule(dynamic, 4)
    for (int k = 0; k < nc; k++) {
        size_t off = ch[k].offset, n = ch[k].n;
        float lr_k = lr * ch[k].lr_mult;
        if (c.kind == RCV_OPT_SGD)
            rcv_sgd_update(g->params + off, g->grads + off, o->m ? o->m + off : NULL, n, lr_k, c.momentum, c.dampening,
                           c.weight_decay, c.nesterov, o->step == 0);
        else
            rcv_adam_update(g->params + off, g->grads + off, o->m + off, o->v + off, n, lr_k, c.beta1, c.beta2, c.eps,
                            c.weight_decay, c.kind == RCV_OPT_ADAMW, step);
    }
    free(ch);
    o->step = step;
    return 0;
}

void rcv_optim_sync_host(const rcv_optim *o) {
#ifdef RCV_HAVE_CUDA
    if (o && o->dev) rcv_cuda_optim_state_download(NULL, o->dev, o->m, o->v);
#endif
}

void rcv_optim_sync_device(rcv_optim *o) {
#ifdef RCV_HAVE_CUDA
    if (o && o->dev) rcv_cuda_optim_state_upload(NULL, o->dev, o->m, o->v);
#endif
}
