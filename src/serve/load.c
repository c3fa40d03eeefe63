// Loading checkpoints into a serve_state and freeing them: shared by `robustcv serve`
// (src/cli/serve.c) and the request fuzz harness (tests/fuzz/fuzz_serve.c), so the harness serves
// models set up exactly as the server does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/train.h"
#include "serve/serve.h"

// The file's stem ("runs/a/best.safetensors" -> "best"), made URL- and label-safe. A stem
// already taken gets its parent directory's name in front ("a-best").
static void model_name(const char *path, char *out, size_t n, const serve_state *s) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strcspn(base, ".");
    char stem[256];
    snprintf(stem, sizeof stem, "%.*s", (int)(bl ? bl : strlen(base)), base);
    int taken = !strcmp(stem, "ensemble");
    for (int i = 0; i < s->n_models; i++) taken |= !strcmp(s->models[i].name, stem);
    if (taken && base > path) {
        const char *d = base - 1, *ds = d;
        while (ds > path && ds[-1] != '/') ds--;
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%.*s-%.100s", (int)(d - ds > 100 ? 100 : d - ds), ds, stem);
        snprintf(stem, sizeof stem, "%s", tmp);
    }
    snprintf(out, n, "%.120s", stem);
    for (char *c = out; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
              *c == '.'))
            *c = '_';
}

int serve_load_ckpt(serve_state *s, const char *path) {
    serve_ckpt *c = &s->ck[s->n_ck];
    double t0 = serve_now();
    rcv_ckpt_info info;
    if (rcv_ckpt_load_model(path, &c->tool, &info)) return -1;
    for (int b = 1;; b = b * 4 < s->cfg.max_batch ? b * 4 : s->cfg.max_batch) { // 1, 4, 16, ..., max-batch
        c->inst_batch[c->n_inst] = b;
        if (rcv_ckpt_load_model(path, &c->inst[c->n_inst++], NULL)) {
            rcv_ckpt_info_free(&info);
            return -1;
        }
        if (b == s->cfg.max_batch || c->n_inst == SERVE_MAX_INST) break;
    }
    c->classes = info.classes;
    c->n_classes = info.n_classes;
    info.classes = NULL;
    info.n_classes = 0;
    rcv_ckpt_info_free(&info);
    // Plan now, so the first request does not pay for it and a bad device fails at start-up.
    for (int i = 0; i < c->n_inst; i++) {
        if (rcv_graph_plan(c->inst[i].g, c->inst_batch[i], s->cfg.backend)) return rcv_fail("%s: %s", path, rcv_error());
        rcv_graph_set_training(c->inst[i].g, 0);
    }
    const rcv_model_cfg *m = &c->tool.cfg;
    if (s->n_ck == 0) {
        s->in_c = m->in_c, s->in_h = m->in_h, s->in_w = m->in_w, s->n_classes = m->n_classes;
    } else if (m->in_c != s->in_c || m->in_h != s->in_h || m->in_w != s->in_w || m->n_classes != s->n_classes) {
        return rcv_fail("%s: input %dx%dx%d and %d classes, but the first checkpoint has %dx%dx%d and %d (one server "
                        "serves one input shape and class count)",
                        path, m->in_c, m->in_h, m->in_w, m->n_classes, s->in_c, s->in_h, s->in_w, s->n_classes);
    }
    c->load_seconds = serve_now() - t0;
    serve_model *sm = &s->models[s->n_models];
    model_name(path, sm->name, sizeof sm->name, s);
    snprintf(sm->path, sizeof sm->path, "%s", path);
    sm->n_members = 1;
    sm->member[0] = s->n_ck;
    s->n_ck++;
    s->n_models++;
    return 0;
}

void serve_add_ensemble(serve_state *s) {
    serve_model *e = &s->models[s->n_models++];
    snprintf(e->name, sizeof e->name, "ensemble");
    e->n_members = s->n_ck;
    for (int i = 0; i < s->n_ck; i++) e->member[i] = i;
}

void serve_free_models(serve_state *s) {
    for (int i = 0; i < s->n_ck; i++) {
        serve_ckpt *k = &s->ck[i];
        if (k->tool_mode == 1) rcv_explainer_free(&k->ex);
        for (int j = 0; j < k->n_inst; j++) rcv_model_free(&k->inst[j]);
        rcv_model_free(&k->tool);
        if (k->classes)
            for (int j = 0; j < k->n_classes; j++) free(k->classes[j]);
        free(k->classes);
    }
    s->n_ck = s->n_models = 0;
}
