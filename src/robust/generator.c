// The seed's image-dependent perturbation generator (section 7.1.2, after
// Poursaeed et al.'s GAP): a three-layer conv net trained with Adam against a
// frozen classifier; its output is squashed to (-1, 1) and scaled to the norm
// bound, so every perturbation it makes is admissible by construction.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"
#include "robustcv/init.h"
#include "robustcv/ops.h"
#include "robustcv/optim.h"

void rcv_gen_defaults(rcv_gen_cfg *c) {
    memset(c, 0, sizeof *c);
    c->norm = RCV_NORM_LINF;
    c->eps = 0.1f;
    c->width = 16;
    c->epochs = 1;
    c->lr = 1e-3f;
}

int rcv_generator_build(rcv_generator *gen, int c, int h, int w, const rcv_gen_cfg *cfg) {
    memset(gen, 0, sizeof *gen);
    gen->cfg = *cfg;
    gen->c = c;
    gen->h = h;
    gen->w = w;
    if (cfg->width < 1 || !(cfg->eps >= 0) || (cfg->norm != RCV_NORM_LINF && cfg->norm != RCV_NORM_L2))
        return rcv_fail("generator: width %d, eps %g, norm %d: expected width >= 1, eps >= 0, linf or l2", cfg->width,
                        cfg->eps, cfg->norm);
    rcv_graph *g = gen->g = rcv_graph_new();
    int x = gen->input = rcv_input(g, "input", c, h, w);    // (N, C, H, W)
    x = rcv_conv2d(g, "conv1", x, cfg->width, 3, 1, 1, 1, 1, 1); // (N, w, H, W)
    x = x < 0 ? -1 : rcv_relu(g, "relu1", x);
    x = x < 0 ? -1 : rcv_conv2d(g, "conv2", x, cfg->width, 3, 1, 1, 1, 1, 1);
    x = x < 0 ? -1 : rcv_relu(g, "relu2", x);
    x = x < 0 ? -1 : rcv_conv2d(g, "conv3", x, c, 3, 1, 1, 1, 1, 1); // u: (N, C, H, W)
    x = x < 0 ? -1 : rcv_sigmoid(g, "out", x);
    if (x < 0) {
        rcv_generator_free(gen);
        return -1;
    }
    gen->out = x;
    rcv_rng root;
    rcv_rng_init(&root, cfg->seed);
    if (rcv_init_default(g, &root)) {
        rcv_generator_free(gen);
        return -1;
    }
    return 0;
}

void rcv_generator_free(rcv_generator *gen) {
    if (gen->g) rcv_graph_free(gen->g);
    gen->g = NULL;
}

static int gen_plan(rcv_generator *gen, int batch, rcv_backend be) {
    if (gen->g->batch == batch && gen->g->backend == be) return 0;
    return rcv_graph_plan(gen->g, batch, be);
}

// d from the generator's sigmoid output s for nb images (t = 2s - 1; linf eps t, l2 eps t/||t||).
static void perturbation(const rcv_generator *gen, const float *s, int nb, float *d) {
    size_t per = (size_t)gen->c * gen->h * gen->w;
    float eps = gen->cfg.eps;
    for (int i = 0; i < nb; i++) {
        const float *si = s + (size_t)i * per;
        float *di = d + (size_t)i * per;
        double nrm = 0;
        for (size_t e = 0; e < per; e++) {
            di[e] = 2 * si[e] - 1;
            nrm += (double)di[e] * di[e];
        }
        float f = gen->cfg.norm == RCV_NORM_LINF ? eps : (float)(eps / (sqrt(nrm) + 1e-12));
        for (size_t e = 0; e < per; e++) di[e] *= f;
    }
}

int rcv_generator_apply(rcv_generator *gen, const float *x, int n, float *x_adv) {
    rcv_graph *g = gen->g;
    if (g->batch <= 0 && gen_plan(gen, n < 64 ? n : 64, RCV_BACKEND_CPU)) return -1;
    int b = g->batch;
    size_t per = (size_t)gen->c * gen->h * gen->w;
    float *in = g->nodes[gen->input].out, *d = rcv_xmalloc((size_t)b * per * sizeof(float));
    for (int s = 0; s < n; s += b) {
        int nb = n - s < b ? n - s : b;
        memcpy(in, x + (size_t)s * per, (size_t)nb * per * sizeof(float));
        if (nb < b) memset(in + (size_t)nb * per, 0, (size_t)(b - nb) * per * sizeof(float));
        rcv_graph_forward(g);
        perturbation(gen, g->nodes[gen->out].out, nb, d);
        for (size_t e = 0; e < (size_t)nb * per; e++)
            x_adv[(size_t)s * per + e] = rcv_clamp01(x[(size_t)s * per + e] + d[e]);
    }
    free(d);
    return 0;
}

int rcv_generator_train(rcv_generator *gen, rcv_model *m, const float *x, const int32_t *y, int n, rcv_rng *rng,
                        float *loss_out) {
    if (rcv_attack_check_models(&m, 1)) return -1;
    if (m->cfg.in_c != gen->c || m->cfg.in_h != gen->h || m->cfg.in_w != gen->w)
        return rcv_fail("generator: built for %dx%dx%d images, model '%s' takes %dx%dx%d", gen->c, gen->h, gen->w,
                        m->name, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w);
    const rcv_gen_cfg *c = &gen->cfg;
    if (c->epochs < 1 || !(c->lr > 0)) return rcv_fail("generator: epochs %d, lr %g: expected positive", c->epochs, c->lr);
    if (c->targeted && (c->target < 0 || c->target >= m->cfg.n_classes))
        return rcv_fail("generator: target class %d, expected 0..%d", c->target, m->cfg.n_classes - 1);
    rcv_graph *cg = m->g, *g = gen->g;
    int b = cg->batch, k = m->cfg.n_classes, was = cg->training;
    // G is small: it trains on the host (cpu when the classifier is on a GPU, whose logits, seed and
    // input gradient then cross once per step: the documented host-side path).
    int dev = rcv_graph_on_device(cg);
    if (gen_plan(gen, b, dev ? RCV_BACKEND_CPU : cg->backend)) return -1;
    rcv_optim_cfg oc = rcv_optim_defaults(RCV_OPT_ADAM);
    oc.lr = c->lr;
    rcv_optim opt;
    if (rcv_optim_init(&opt, &oc, g->n_param_floats)) return -1;
    rcv_graph_set_training(cg, 0);
    size_t per = rcv_attack_per_image(m);
    int *perm = rcv_xmalloc((size_t)n * sizeof(int));
    float *d = rcv_xmalloc((size_t)b * per * sizeof(float)), *xb = rcv_xmalloc((size_t)b * per * sizeof(float));
    float *gin = g->nodes[gen->input].out, *cin = dev ? rcv_xmalloc((size_t)b * per * sizeof(float)) : cg->nodes[m->input].out;
    const float *s_out = g->nodes[gen->out].out;
    float *seed = g->nodes[gen->out].grad, *cgh = dev ? rcv_xmalloc((size_t)b * per * sizeof(float)) : NULL;
    float *zh = dev ? rcv_xmalloc((size_t)b * k * sizeof(float)) : NULL, *zs = rcv_xmalloc((size_t)b * k * sizeof(float));
    rcv_node *zn = &cg->nodes[m->logits];
    double epoch_loss = 0;
    for (int ep = 0; ep < c->epochs; ep++) {
        rcv_rng_permutation(rng, perm, n);
        epoch_loss = 0;
        for (int s = 0; s < n; s += b) {
            int nb = n - s < b ? n - s : b;
            for (int i = 0; i < nb; i++) memcpy(xb + (size_t)i * per, x + (size_t)perm[s + i] * per, per * sizeof(float));
            if (nb < b) memset(xb + (size_t)nb * per, 0, (size_t)(b - nb) * per * sizeof(float));
            memcpy(gin, xb, (size_t)b * per * sizeof(float));
            rcv_graph_forward(g);
            perturbation(gen, s_out, nb, d);
            for (size_t e = 0; e < (size_t)nb * per; e++) cin[e] = rcv_clamp01(xb[e] + d[e]);
            if (nb < b) memset(cin + (size_t)nb * per, 0, (size_t)(b - nb) * per * sizeof(float));
            if (dev) rcv_graph_upload(cg, cg->nodes[m->input].out, cin, (size_t)b * per * sizeof(float));
            rcv_graph_forward(cg);
            // Loss minimised by G: -mean CE(true) (untargeted) or mean CE(target).
            const float *z = rcv_attack_view(cg, zn->out, zh, (size_t)nb * k);
            memset(zs, 0, (size_t)b * k * sizeof(float));
            float sgn = c->targeted ? 1.0f / nb : -1.0f / nb;
            for (int i = 0; i < nb; i++) {
                int yi = c->targeted ? c->target : y[perm[s + i]];
                epoch_loss += rcv_ce_seed(z + (size_t)i * k, k, yi, sgn, zs + (size_t)i * k);
            }
            rcv_graph_backward_from(cg, m->logits, zs);
            const float *cgrad = rcv_attack_view(cg, cg->nodes[m->input].grad, cgh, (size_t)nb * per);
            // Chain through the clamp (zero where it saturates) and the scaling to d(loss)/ds.
            memset(seed, 0, (size_t)b * per * sizeof(float));
            for (int i = 0; i < nb; i++) {
                const float *gi = cgrad + (size_t)i * per, *xi = xb + (size_t)i * per, *di = d + (size_t)i * per;
                float *si = seed + (size_t)i * per;
                for (size_t e = 0; e < per; e++) {
                    float v = xi[e] + di[e];
                    si[e] = v > 0 && v < 1 ? gi[e] : 0;
                }
                if (c->norm == RCV_NORM_LINF) {
                    for (size_t e = 0; e < per; e++) si[e] *= 2 * c->eps;
                } else {
                    // d = eps t / ||t||: dL/dt = (eps / ||t||) (gd - t^ (t^ . gd)), t = d ||t|| / eps.
                    double tn = 0, dot = 0;
                    const float *so = s_out + (size_t)i * per;
                    for (size_t e = 0; e < per; e++) {
                        double t = 2.0 * so[e] - 1;
                        tn += t * t;
                    }
                    tn = sqrt(tn) + 1e-12;
                    for (size_t e = 0; e < per; e++) dot += (2.0 * so[e] - 1) / tn * si[e];
                    for (size_t e = 0; e < per; e++)
                        si[e] = (float)(2.0 * c->eps / tn * (si[e] - (2.0 * so[e] - 1) / tn * dot));
                }
            }
            rcv_graph_zero_grad(g);
            rcv_graph_backward_from(g, gen->out, seed);
            rcv_optim_step(&opt, g, c->lr);
        }
        epoch_loss /= n;
        if (c->verbose) fprintf(stderr, "generator: epoch %d/%d: classifier loss on perturbed images %.4f\n", ep + 1,
                                c->epochs, c->targeted ? epoch_loss : epoch_loss);
    }
    if (loss_out) *loss_out = (float)epoch_loss;
    rcv_graph_set_training(cg, was);
    rcv_optim_free(&opt);
    free(perm);
    free(d);
    free(xb);
    if (dev) free(cin);
    free(cgh);
    free(zh);
    free(zs);
    return 0;
}
