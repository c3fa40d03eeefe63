// Logits of a dataset, for ensembles and metrics computed outside the model.
#include <string.h>
#include <stdlib.h>

#include "robustcv/error.h"
#include "robustcv/image.h"
#include "robustcv/train.h"

int rcv_logits_batched(rcv_model *m, int n, int batch, rcv_backend backend, rcv_fill_fn fill, void *ctx,
                       float *out) {
    rcv_graph *g = m->g;
    int k = m->cfg.n_classes;
    if (batch <= 0) return rcv_fail("logits: batch %d, expected > 0", batch);
    if (g->batch != batch || g->backend != backend)
        if (rcv_graph_plan(g, batch, backend)) return -1;
    int was_training = g->training, on_dev = rcv_graph_on_device(g);
    rcv_graph_set_training(g, 0);
    size_t per = (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w;
    // A GPU plan reads its batch from a host staging buffer and returns the logits to `out`.
    float *x = on_dev ? rcv_xmalloc((size_t)batch * per * sizeof(float)) : g->nodes[m->input].out;
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        fill(ctx, s, nb, x);
        // eval-mode ops are per sample: zero padding of a short batch changes nothing
        if (nb < batch) memset(x + (size_t)nb * per, 0, (size_t)(batch - nb) * per * sizeof(float));
        if (on_dev) rcv_graph_upload(g, g->nodes[m->input].out, x, (size_t)batch * per * sizeof(float));
        rcv_graph_infer(g);
        if (on_dev) rcv_graph_download(g, out + (size_t)s * k, g->nodes[m->logits].out, (size_t)nb * k * sizeof(float));
        else memcpy(out + (size_t)s * k, g->nodes[m->logits].out, (size_t)nb * k * sizeof(float));
    }
    if (on_dev) free(x);
    rcv_graph_set_training(g, was_training);
    return 0;
}

static void fill_dataset(void *ctx, int s, int nb, float *x) {
    int *idx = rcv_xmalloc((size_t)nb * sizeof(int));
    for (int i = 0; i < nb; i++) idx[i] = s + i;
    rcv_dataset_batch(ctx, idx, nb, x, NULL);
    free(idx);
}

int rcv_predict_logits(rcv_model *m, const rcv_dataset *d, int n, int batch, rcv_backend backend, float *out) {
    if (n <= 0 || n > d->n) n = d->n;
    if (d->c != m->cfg.in_c || d->h != m->cfg.in_h || d->w != m->cfg.in_w)
        return rcv_fail("logits: data '%s' has images %dx%dx%d (C x H x W), model %s expects %dx%dx%d", d->source, d->c,
                        d->h, d->w, m->name, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    return rcv_logits_batched(m, n, batch, backend, fill_dataset, (void *)d, out);
}

void rcv_image_to_input(const rcv_image *img, const rcv_model_cfg *c, float *x, rcv_image *shown) {
    rcv_image conv = {0}, sized = {0};
    if (c->in_c == 1) rcv_image_to_gray(img, &conv);
    else rcv_image_to_rgb(img, &conv);
    rcv_image *out = shown ? shown : &sized;
    rcv_image_resize_bilinear(&conv, c->in_w, c->in_h, out);
    for (size_t i = 0; i < (size_t)c->in_h * c->in_w * c->in_c; i++) x[i] = out->pix[i] / 255.0f;
    rcv_image_free(&conv);
    rcv_image_free(&sized);
}
