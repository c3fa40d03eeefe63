// Evaluation: top-1, top-5, mean cross-entropy and the confusion matrix; for NAME+box
// models also the IoU of the predicted boxes.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/dist.h"
#include "robustcv/error.h"
#include "robustcv/metrics.h"
#include "robustcv/train.h"

// Per-sample cross-entropy and rank of the true class. z: (K) logits.
static double sample_ce(const float *z, int k, int y, int *rank) {
    double mx = z[0];
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    double s = 0;
    int r = 0;
    for (int j = 0; j < k; j++) {
        s += exp((double)z[j] - mx);
        // Ties rank by index, like torch.topk's stable order on CPU.
        if (z[j] > z[y] || (z[j] == z[y] && j < y)) r++;
    }
    *rank = r;
    return log(s) + mx - (double)z[y];
}

// Smooth-L1 (beta 1) summed over the 4 coordinates of one box, as the "loss_box" node.
static double box_smooth_l1(const float *p, const float *t) {
    double s = 0;
    for (int j = 0; j < 4; j++) {
        double d = fabs((double)p[j] - t[j]);
        s += d < 1 ? 0.5 * d * d : d - 0.5;
    }
    return s;
}

int rcv_evaluate(rcv_model *m, const rcv_dataset *d, int batch, rcv_backend backend, rcv_eval_result *r) {
    rcv_graph *g = m->g;
    int k = m->cfg.n_classes;
    memset(r, 0, sizeof *r);
    if (d->c != m->cfg.in_c || d->h != m->cfg.in_h || d->w != m->cfg.in_w)
        return rcv_fail("evaluate: data '%s' has images %dx%dx%d (C x H x W), the model expects %dx%dx%d", d->source,
                        d->c, d->h, d->w, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    if (g->batch != batch || g->backend != backend)
        if (rcv_graph_plan(g, batch, backend)) return -1;
    int on_dev = rcv_graph_on_device(g);
    int was_training = g->training;
    rcv_graph_set_training(g, 0);
    r->n = d->n;
    r->n_classes = k;
    r->confusion = rcv_xcalloc((size_t)k * k, sizeof(int64_t));
    int *idx = rcv_xmalloc((size_t)batch * sizeof(int));
    size_t per = (size_t)d->c * d->h * d->w;
    // A GPU plan reads its batch from host staging buffers and returns the logits.
    float *sx = on_dev ? rcv_xmalloc((size_t)batch * per * sizeof(float)) : NULL;
    int32_t *slab = on_dev ? rcv_xmalloc((size_t)batch * sizeof(int32_t)) : NULL;
    float *sz = on_dev ? rcv_xmalloc((size_t)batch * k * sizeof(float)) : NULL;
    float *x = on_dev ? sx : g->nodes[m->input].out;
    int32_t *lab = on_dev ? slab : g->nodes[m->labels].idata;
    const float *z = on_dev ? sz : g->nodes[m->logits].out;
    // Box models: predicted boxes (batch, 4) in [0, 1], scored against the normalised truth.
    int boxes = m->box >= 0 && d->boxes;
    float *sb = boxes && on_dev ? rcv_xmalloc((size_t)batch * 4 * sizeof(float)) : NULL;
    const float *pb = boxes ? (on_dev ? sb : g->nodes[m->box].out) : NULL;
    double loss = 0, iou = 0, bloss = 0;
    long c1 = 0, c5 = 0, c50 = 0;
    // This rank's contiguous share [lo, hi) of the samples (all of them with one rank).
    int rank = rcv_dist_rank(), size = rcv_dist_size();
    int lo = (int)((int64_t)d->n * rank / size), hi = (int)((int64_t)d->n * (rank + 1) / size);
    for (int s = lo; s < hi; s += batch) {
        int nb = hi - s < batch ? hi - s : batch;
        for (int i = 0; i < nb; i++) idx[i] = s + i;
        rcv_dataset_batch(d, idx, nb, x, lab);
        // A short last batch is padded with zeros: eval-mode ops are per sample.
        if (nb < batch) {
            memset(x + (size_t)nb * per, 0, (size_t)(batch - nb) * per * sizeof(float));
            for (int i = nb; i < batch; i++) lab[i] = 0;
        }
        if (on_dev) {
            rcv_graph_upload(g, g->nodes[m->input].out, x, (size_t)batch * per * sizeof(float));
            rcv_graph_upload(g, g->nodes[m->labels].idata, lab, (size_t)batch * sizeof(int32_t));
        }
        rcv_graph_infer(g);
        if (on_dev) rcv_graph_download(g, sz, g->nodes[m->logits].out, (size_t)batch * k * sizeof(float));
        if (sb) rcv_graph_download(g, sb, g->nodes[m->box].out, (size_t)batch * 4 * sizeof(float));
        for (int i = 0; boxes && i < nb; i++) {
            float t[4];
            rcv_boxes_normalize(d->boxes + 4 * (size_t)(s + i), 1, d->w, d->h, t);
            double v = rcv_box_iou(pb + 4 * (size_t)i, t);
            iou += v;
            c50 += v >= 0.5;
            bloss += box_smooth_l1(pb + 4 * (size_t)i, t);
        }
        for (int i = 0; i < nb; i++) {
            int y = lab[i], pos;
            const float *zi = z + (size_t)i * k;
            loss += sample_ce(zi, k, y, &pos);
            c1 += pos == 0;
            c5 += pos < 5;
            int am = 0;
            for (int j = 1; j < k; j++)
                if (zi[j] > zi[am]) am = j;
            r->confusion[(size_t)y * k + am]++;
        }
    }
    free(idx);
    free(sx);
    free(slab);
    free(sz);
    free(sb);
    if (size > 1) {
        double sums[6] = {loss, (double)c1, (double)c5, iou, (double)c50, bloss};
        rcv_dist_allreduce_f64(sums, 6);
        loss = sums[0], c1 = (long)sums[1], c5 = (long)sums[2];
        iou = sums[3], c50 = (long)sums[4], bloss = sums[5];
        rcv_dist_allreduce_i64(r->confusion, (size_t)k * k);
    }
    rcv_graph_set_training(g, was_training);
    r->top1 = (double)c1 / d->n;
    r->top5 = (double)c5 / d->n;
    r->loss = loss / d->n;
    if (boxes) {
        r->box_n = d->n;
        r->box_iou = iou / d->n;
        r->box_iou50 = (double)c50 / d->n;
        r->box_loss = bloss / (4.0 * d->n);
    }
    return 0;
}

void rcv_eval_result_free(rcv_eval_result *r) {
    free(r->confusion);
    r->confusion = NULL;
}
