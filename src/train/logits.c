// Logits of a dataset, for ensembles and metrics computed outside the model.
#include <string.h>
#include <stdlib.h>

#include "robustcv/error.h"
#include "robustcv/image.h"
#include "robustcv/train.h"

int rcv_predict_logits(rcv_model *m, const rcv_dataset *d, int n, int batch, rcv_backend backend, float *out) {
    rcv_graph *g = m->g;
    int k = m->cfg.n_classes;
    if (n <= 0 || n > d->n) n = d->n;
    if (d->c != m->cfg.in_c || d->h != m->cfg.in_h || d->w != m->cfg.in_w)
        return rcv_fail("logits: data '%s' has images %dx%dx%d (C x H x W), model %s expects %dx%dx%d", d->source, d->c,
                        d->h, d->w, m->name, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    if (batch <= 0) return rcv_fail("logits: batch %d, expected > 0", batch);
    if (g->batch != batch || g->backend != backend)
        if (rcv_graph_plan(g, batch, backend)) return -1;
    int was_training = g->training;
    rcv_graph_set_training(g, 0);
    int *idx = rcv_xmalloc((size_t)batch * sizeof(int));
    float *x = g->nodes[m->input].out;
    const float *z = g->nodes[m->logits].out;
    size_t per = (size_t)d->c * d->h * d->w;
    for (int s = 0; s < n; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        for (int i = 0; i < nb; i++) idx[i] = s + i;
        rcv_dataset_batch(d, idx, nb, x, NULL);
        if (nb < batch) memset(x + (size_t)nb * per, 0, (size_t)(batch - nb) * per * sizeof(float));
        rcv_graph_forward(g);
        memcpy(out + (size_t)s * k, z, (size_t)nb * k * sizeof(float));
    }
    free(idx);
    rcv_graph_set_training(g, was_training);
    return 0;
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
