// Checkpoints: one safetensors file holding the model's state_dict (torchvision
// names, loadable by PyTorch), the optimizer's moment buffers, and metadata
// strings from which `robustcv eval` rebuilds the model alone.
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/models.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"

static void meta_i(rcv_st_writer *w, const char *k, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    rcv_st_add_meta(w, k, b);
}

static void meta_f(rcv_st_writer *w, const char *k, double v) {
    char b[40];
    snprintf(b, sizeof b, "%.9g", v);
    rcv_st_add_meta(w, k, b);
}

static void meta_f4(rcv_st_writer *w, const char *k, const float *v) {
    char b[128];
    snprintf(b, sizeof b, "%.9g,%.9g,%.9g,%.9g", v[0], v[1], v[2], v[3]);
    rcv_st_add_meta(w, k, b);
}

int rcv_ckpt_save(const char *path, const rcv_model *m, const rcv_optim *o, const rcv_ckpt_info *info) {
    // On a GPU plan the device copies are the current ones.
    rcv_graph_params_to_host(m->g);
    rcv_optim_sync_host(o);
    rcv_st_writer *w = rcv_st_writer_new();
    rcv_st_add_graph(w, m->g);
    const rcv_model_cfg *c = &m->cfg;
    rcv_st_add_meta(w, "format", "pt"); // what safetensors' torch loader expects
    rcv_st_add_meta(w, "robustcv.model", m->name);
    meta_i(w, "robustcv.in_c", c->in_c);
    meta_i(w, "robustcv.in_h", c->in_h);
    meta_i(w, "robustcv.in_w", c->in_w);
    meta_i(w, "robustcv.n_classes", c->n_classes);
    meta_i(w, "robustcv.small_input", c->small_input);
    meta_f4(w, "robustcv.mean", c->mean);
    meta_f4(w, "robustcv.std", c->std);
    meta_f(w, "robustcv.gamma", c->gamma);
    meta_f(w, "robustcv.dropout", c->dropout);
    if (m->boxes >= 0) meta_f(w, "robustcv.box_lambda", c->box_lambda);
    if (info) {
        meta_i(w, "robustcv.epoch", info->epoch);
        meta_i(w, "robustcv.step", (long long)info->step);
        char b[64];
        snprintf(b, sizeof b, "%" PRIu64 ",%" PRIu64, info->rng.key, info->rng.counter);
        rcv_st_add_meta(w, "robustcv.rng", b);
        if (info->classes) {
            size_t len = 1;
            for (int i = 0; i < info->n_classes; i++) len += strlen(info->classes[i]) + 1;
            char *s = rcv_xcalloc(len, 1);
            for (int i = 0; i < info->n_classes; i++) {
                strcat(s, info->classes[i]);
                if (i + 1 < info->n_classes) strcat(s, "\n");
            }
            rcv_st_add_meta(w, "robustcv.classes", s);
            free(s);
        }
    }
    if (o) {
        meta_i(w, "robustcv.optim.kind", o->cfg.kind);
        meta_i(w, "robustcv.optim.step", (long long)o->step);
        int64_t shape[1] = {(int64_t)o->n};
        if (o->m) rcv_st_add(w, "optim.m", RCV_DT_F32, 1, shape, o->m);
        if (o->v) rcv_st_add(w, "optim.v", RCV_DT_F32, 1, shape, o->v);
    }
    int rc = rcv_st_write(w, path);
    rcv_st_writer_free(w);
    return rc;
}

static int meta_int(const rcv_safetensors *st, const char *k, long long *v, int required) {
    const char *s = rcv_st_meta(st, k);
    if (!s) return required ? rcv_fail("%s: metadata '%s' is missing (not a robustcv checkpoint?)", st->path, k) : 1;
    char *end;
    *v = strtoll(s, &end, 10);
    if (end == s || *end) return rcv_fail("%s: metadata '%s' = '%s', expected an integer", st->path, k, s);
    return 0;
}

static int meta_int_in(const rcv_safetensors *st, const char *k, long long *v, long long lo, long long hi) {
    if (meta_int(st, k, v, 1)) return -1;
    if (*v < lo || *v > hi) return rcv_fail("%s: metadata '%s' = %lld, expected %lld..%lld", st->path, k, *v, lo, hi);
    return 0;
}

// Optional float: left unchanged when absent; a finite number when present.
static int meta_float(const rcv_safetensors *st, const char *k, float *v) {
    const char *s = rcv_st_meta(st, k);
    if (!s) return 0;
    char *end;
    float x = strtof(s, &end);
    if (end == s || *end || !isfinite(x)) return rcv_fail("%s: metadata '%s' = '%s', expected a finite number", st->path, k, s);
    *v = x;
    return 0;
}

static int meta_float4(const rcv_safetensors *st, const char *k, float *v) {
    const char *s = rcv_st_meta(st, k);
    if (!s) return rcv_fail("%s: metadata '%s' is missing", st->path, k);
    if (sscanf(s, "%f,%f,%f,%f", &v[0], &v[1], &v[2], &v[3]) != 4)
        return rcv_fail("%s: metadata '%s' = '%s', expected 4 comma-separated numbers", st->path, k, s);
    return 0;
}

static int read_info(const rcv_safetensors *st, rcv_ckpt_info *info) {
    memset(info, 0, sizeof *info);
    long long v;
    int rc = meta_int(st, "robustcv.epoch", &v, 0);
    if (rc < 0 || (rc == 0 && (v < 0 || v > INT_MAX)))
        return rc < 0 ? -1 : rcv_fail("%s: metadata 'robustcv.epoch' = %lld, expected 0..%d", st->path, v, INT_MAX);
    if (rc == 0) info->epoch = (int)v;
    rc = meta_int(st, "robustcv.step", &v, 0);
    if (rc < 0 || (rc == 0 && v < 0))
        return rc < 0 ? -1 : rcv_fail("%s: metadata 'robustcv.step' = %lld, expected >= 0", st->path, v);
    if (rc == 0) info->step = v;
    const char *r = rcv_st_meta(st, "robustcv.rng");
    if (r && sscanf(r, "%" SCNu64 ",%" SCNu64, &info->rng.key, &info->rng.counter) != 2)
        return rcv_fail("%s: metadata 'robustcv.rng' = '%s', expected KEY,COUNTER", st->path, r);
    const char *cl = rcv_st_meta(st, "robustcv.classes");
    if (cl) {
        int n = 1;
        for (const char *p = cl; *p; p++) n += *p == '\n';
        info->classes = rcv_xcalloc((size_t)n, sizeof(char *));
        const char *p = cl;
        for (int i = 0; i < n; i++) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            info->classes[i] = rcv_xcalloc(len + 1, 1);
            memcpy(info->classes[i], p, len);
            p = e ? e + 1 : p + len;
        }
        info->n_classes = n;
    }
    return 0;
}

void rcv_ckpt_info_free(rcv_ckpt_info *info) {
    if (!info) return;
    for (int i = 0; i < info->n_classes; i++) free(info->classes[i]);
    free(info->classes);
    info->classes = NULL;
    info->n_classes = 0;
}

int rcv_ckpt_load_model(const char *path, rcv_model *m, rcv_ckpt_info *info) {
    rcv_safetensors st;
    if (rcv_st_open(&st, path)) return -1;
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    const char *name = rcv_st_meta(&st, "robustcv.model");
    long long v = 0;
    int rc = -1;
    c.no_init = 1; /* weights come from the file */
    if (!name) {
        rcv_fail("%s: metadata 'robustcv.model' is missing: not a robustcv checkpoint (a plain state_dict "
                 "loads with `train --init`)", path);
        goto out;
    }
    // Bounds here are the model's own (rcv_model_build checks them again); a value outside an int is
    // refused before it can wrap.
    if (meta_int_in(&st, "robustcv.in_c", &v, 1, 4)) goto out;
    c.in_c = (int)v;
    if (meta_int_in(&st, "robustcv.in_h", &v, 1, RCV_MAX_SIDE)) goto out;
    c.in_h = (int)v;
    if (meta_int_in(&st, "robustcv.in_w", &v, 1, RCV_MAX_SIDE)) goto out;
    c.in_w = (int)v;
    if (meta_int_in(&st, "robustcv.n_classes", &v, 1, RCV_MAX_CLASSES)) goto out;
    c.n_classes = (int)v;
    if (meta_int_in(&st, "robustcv.small_input", &v, 0, 1)) goto out;
    c.small_input = (int)v;
    if (meta_float4(&st, "robustcv.mean", c.mean) || meta_float4(&st, "robustcv.std", c.std)) goto out;
    if (meta_float(&st, "robustcv.gamma", &c.gamma) || meta_float(&st, "robustcv.dropout", &c.dropout) ||
        meta_float(&st, "robustcv.box_lambda", &c.box_lambda))
        goto out;
    // Every parameter and buffer must be in the file (at least a byte each): a model that needs more
    // elements than the file has data bytes is refused before its memory is allocated.
    c.max_numel = st.data_len ? st.data_len : 1;
    if (rcv_model_build(m, name, &c)) {
        rcv_fail_ctx("%s: ", path);
        goto out;
    }
    if (rcv_st_load_graph(&st, m->g, 1, 1, NULL, NULL)) {
        rcv_model_free(m);
        goto out;
    }
    if (info && read_info(&st, info)) {
        rcv_model_free(m);
        goto out;
    }
    rc = 0;
out:
    rcv_st_close(&st);
    return rc;
}

int rcv_ckpt_load_optim(const char *path, rcv_optim *o) {
    rcv_safetensors st;
    if (rcv_st_open(&st, path)) return -1;
    long long kind = 0, step = 0;
    int rc = -1;
    if (meta_int(&st, "robustcv.optim.kind", &kind, 1) || meta_int(&st, "robustcv.optim.step", &step, 1)) goto out;
    if (kind != (long long)o->cfg.kind) {
        rcv_fail("%s: saved optimizer is kind %lld, this run uses kind %d: resume with the same --optimizer", path,
                 kind, (int)o->cfg.kind);
        goto out;
    }
    if (o->m && rcv_st_read_f32(&st, "optim.m", o->m, o->n)) goto out;
    if (o->v && rcv_st_read_f32(&st, "optim.v", o->v, o->n)) goto out;
    rcv_optim_sync_device(o);
    o->step = step;
    rc = 0;
out:
    rcv_st_close(&st);
    return rc;
}
