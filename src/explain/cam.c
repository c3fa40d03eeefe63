// CAM, Grad-CAM and Grad-CAM++ (see explain.h for the formulas and the normalisation).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "robustcv/error.h"
#include "robustcv/explain.h"

int rcv_cam_method_parse(const char *s, rcv_cam_method *out) {
    if (!strcmp(s, "cam")) *out = RCV_CAM_CAM;
    else if (!strcmp(s, "gradcam") || !strcmp(s, "grad-cam")) *out = RCV_CAM_GRADCAM;
    else if (!strcmp(s, "gradcam++") || !strcmp(s, "gradcampp") || !strcmp(s, "grad-cam++")) *out = RCV_CAM_GRADCAMPP;
    else return rcv_fail("unknown map method '%s', expected cam, gradcam or gradcam++", s);
    return 0;
}

const char *rcv_cam_method_name(rcv_cam_method m) {
    return m == RCV_CAM_CAM ? "cam" : m == RCV_CAM_GRADCAM ? "gradcam" : "gradcam++";
}

// CAM needs logits = linear(global_avg_pool(layer)), with an optional dropout or flatten between.
static int check_cam_head(const rcv_model *m, int layer) {
    const rcv_graph *g = m->g;
    const rcv_node *fc = &g->nodes[m->logits];
    if (fc->op != RCV_OP_LINEAR)
        return rcv_fail("CAM: the logits of %s come from a %s node, expected a linear classifier (use gradcam)", m->name,
                        rcv_op_name(fc->op));
    const rcv_node *p = &g->nodes[fc->in[0]];
    while (p->op == RCV_OP_DROPOUT || p->op == RCV_OP_FLATTEN) p = &g->nodes[p->in[0]];
    if (p->op != RCV_OP_GLOBAL_AVGPOOL)
        return rcv_fail("CAM: %s's classifier reads a %s node '%s', expected a global average pool (use gradcam)",
                        m->name, rcv_op_name(p->op), p->name);
    if (p->in[0] != layer)
        return rcv_fail("CAM: layer '%s' is not the global pool's input '%s' of %s; CAM exists only there (use gradcam "
                        "for other layers)",
                        g->nodes[layer].name, g->nodes[p->in[0]].name, m->name);
    return 0;
}

int rcv_explainer_init(rcv_explainer *e, rcv_model *m, rcv_cam_method method, const char *layer, int batch,
                       rcv_backend backend) {
    memset(e, 0, sizeof *e);
    if (batch <= 0) return rcv_fail("explain: batch %d, expected > 0", batch);
    int id = layer && *layer ? rcv_model_find_node(m, layer) : m->features;
    if (id < 0) {
        if (layer && *layer)
            return rcv_fail("explain: model %s has no module '%s' (names as in torchvision: layer4, layer3.1, conv5, "
                            "relu5, ...)",
                            m->name, layer);
        return rcv_fail("explain: model %s has no feature map (m->features); name a layer", m->name);
    }
    rcv_node *ln = &m->g->nodes[id];
    if (ln->op == RCV_OP_LABELS || ln->op == RCV_OP_CROSS_ENTROPY || ln->op == RCV_OP_KL_DIV || ln->op == RCV_OP_MSE ||
        ln->op == RCV_OP_SMOOTH_L1 || id > m->logits)
        return rcv_fail("explain: layer '%s' (%s) is not a feature map before the logits", ln->name, rcv_op_name(ln->op));
    if (method == RCV_CAM_CAM && check_cam_head(m, id)) return -1;
    rcv_graph_require_out(m->g, id);
    if (method != RCV_CAM_CAM) rcv_graph_require_grad(m->g, id);
    if (rcv_graph_plan(m->g, batch, backend)) return -1;
    ln = &m->g->nodes[id];
    if (ln->shape.h < 1 || ln->shape.w < 1 || ln->shape.c < 1)
        return rcv_fail("explain: layer '%s' has shape (%d, %d, %d), expected a feature map", ln->name, ln->shape.c,
                        ln->shape.h, ln->shape.w);
    e->m = m;
    e->method = method;
    e->layer = id;
    e->batch = batch;
    e->seed = rcv_xcalloc((size_t)batch * m->cfg.n_classes, sizeof(float));
    e->cam = rcv_xmalloc((size_t)ln->shape.h * ln->shape.w * sizeof(double));
    return 0;
}

void rcv_explainer_free(rcv_explainer *e) {
    free(e->seed);
    free(e->cam);
    memset(e, 0, sizeof *e);
}

void rcv_resize_bilinear_f32(const float *in, int h, int w, int H, int W, float *out) {
    double sy = (double)h / H, sx = (double)w / W;
    for (int y = 0; y < H; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int y0 = (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        double ly = fy - y0;
        for (int x = 0; x < W; x++) {
            double fx = (x + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            int x0 = (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double lx = fx - x0;
            double top = in[y0 * w + x0] * (1 - lx) + in[y0 * w + x1] * lx;
            double bot = in[y1 * w + x0] * (1 - lx) + in[y1 * w + x1] * lx;
            out[(size_t)y * W + x] = (float)(top * (1 - ly) + bot * ly);
        }
    }
}

// x - min, divided by (max - min) + 1e-7: scale_cam_image's arithmetic.
static void minmax_f(float *v, size_t n) {
    float mn = v[0], mx = v[0];
    for (size_t i = 1; i < n; i++) mn = v[i] < mn ? v[i] : mn, mx = v[i] > mx ? v[i] : mx;
    double d = (double)mx - mn + 1e-7;
    for (size_t i = 0; i < n; i++) v[i] = (float)((v[i] - (double)mn) / d);
}

void rcv_cam_scale(const double *cam, int h, int w, int H, int W, float *out) {
    float *small = rcv_xmalloc((size_t)h * w * sizeof(float));
    for (int i = 0; i < h * w; i++) small[i] = (float)cam[i];
    minmax_f(small, (size_t)h * w);
    rcv_resize_bilinear_f32(small, h, w, H, W, out);
    minmax_f(out, (size_t)H * W);
    free(small);
}

int rcv_explainer_run(rcv_explainer *e, const float *x, int n, const int32_t *classes, float *maps) {
    rcv_model *m = e->m;
    rcv_graph *g = m->g;
    int k = m->cfg.n_classes;
    if (n < 1 || n > e->batch) return rcv_fail("explain: %d images, expected 1..%d (the planned batch)", n, e->batch);
    for (int i = 0; i < n; i++)
        if (classes[i] < 0 || classes[i] >= k)
            return rcv_fail("explain: target class %d for image %d, expected 0..%d", classes[i], i, k - 1);
    rcv_node *in = &g->nodes[m->input];
    size_t per = (size_t)in->shape.h * in->shape.w * in->shape.c;
    // Host or device plan alike: the images go in, the layer's map and gradient come out once.
    rcv_graph_upload(g, in->out, x, (size_t)n * per * sizeof(float));
    rcv_backend_zero(g->backend, g->backend_ctx, in->out + (size_t)n * per, (size_t)(e->batch - n) * per * sizeof(float));
    int was_training = g->training;
    rcv_graph_set_training(g, 0);
    rcv_graph_forward(g);
    const rcv_node *ln = &g->nodes[e->layer];
    int h = ln->shape.h, w = ln->shape.w, c = ln->shape.c, hw = h * w;
    if (e->method != RCV_CAM_CAM) {
        memset(e->seed, 0, (size_t)e->batch * k * sizeof(float));
        for (int i = 0; i < n; i++) e->seed[(size_t)i * k + classes[i]] = 1;
        if (rcv_graph_backward_from(g, m->logits, e->seed)) {
            rcv_graph_set_training(g, was_training);
            return -1;
        }
    }
    const float *fcw = e->method == RCV_CAM_CAM ? rcv_param_data(g, g->nodes[m->logits].param[0]) : NULL;
    double *wc = rcv_xmalloc((size_t)c * sizeof(double));
    int H = in->shape.h, W = in->shape.w, dev = rcv_graph_on_device(g);
    size_t nm = (size_t)n * hw * c;
    float *Ah = dev ? rcv_xmalloc(nm * sizeof(float)) : NULL, *Gh = dev && ln->grad ? rcv_xmalloc(nm * sizeof(float)) : NULL;
    const float *Aall = ln->out, *Gall = ln->grad;
    if (dev) {
        rcv_graph_download(g, Ah, ln->out, nm * sizeof(float));
        if (Gh) rcv_graph_download(g, Gh, ln->grad, nm * sizeof(float));
        Aall = Ah, Gall = Gh;
    }
    for (int i = 0; i < n; i++) {
        const float *A = Aall + (size_t)i * hw * c; // (h, w, c)
        const float *G = Gall ? Gall + (size_t)i * hw * c : NULL;
        if (e->method == RCV_CAM_CAM) {
            for (int ch = 0; ch < c; ch++) wc[ch] = fcw[(size_t)classes[i] * c + ch];
        } else if (e->method == RCV_CAM_GRADCAM) {
            for (int ch = 0; ch < c; ch++) wc[ch] = 0;
            for (int p = 0; p < hw; p++)
                for (int ch = 0; ch < c; ch++) wc[ch] += G[(size_t)p * c + ch];
            for (int ch = 0; ch < c; ch++) wc[ch] /= hw;
        } else {
            for (int ch = 0; ch < c; ch++) {
                double sa = 0, acc = 0;
                for (int p = 0; p < hw; p++) sa += A[(size_t)p * c + ch];
                for (int p = 0; p < hw; p++) {
                    double gv = G[(size_t)p * c + ch];
                    if (gv == 0) continue; // a = 0 where the gradient is 0
                    double g2 = gv * gv, a = g2 / (2 * g2 + sa * g2 * gv + 1e-6);
                    acc += (gv > 0 ? gv : 0) * a;
                }
                wc[ch] = acc;
            }
        }
        for (int p = 0; p < hw; p++) {
            double s = 0;
            for (int ch = 0; ch < c; ch++) s += wc[ch] * A[(size_t)p * c + ch];
            e->cam[p] = e->method == RCV_CAM_CAM || s > 0 ? s : 0;
        }
        rcv_cam_scale(e->cam, h, w, H, W, maps + (size_t)i * H * W);
    }
    free(wc);
    free(Ah);
    free(Gh);
    rcv_graph_set_training(g, was_training);
    return 0;
}
