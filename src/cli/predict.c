// robustcv predict: top-5 classes, with names and probabilities, for image files.
// Each image is decoded (JPEG or PNG), converted to the model's channel count
// and resized (bilinear) to its input size, then classified in eval mode.
// --smooth: the smoothed classifier's PREDICT instead (smoothing.h): the class, or "abstain".
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/image.h"
#include "robustcv/train.h"

// PREDICT per image file, one noise stream over the files (seeded once).
static int predict_smooth(rcv_model *m, const rcv_ckpt_info *info, const char *const *files, int n,
                          const rcv_smooth_cfg *sc, unsigned long long seed, rcv_backend be) {
    if (rcv_smooth_prepare(m, sc, be)) {
        fprintf(stderr, "robustcv predict: %s\n", rcv_error());
        return 1;
    }
    int rc = 0;
    float *x = rcv_xmalloc((size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w * sizeof(float)); // (H, W, C)
    rcv_rng rng;
    rcv_rng_init(&rng, seed);
    for (int f = 0; f < n; f++) {
        rcv_image img;
        if (rcv_image_load(files[f], &img)) {
            fprintf(stderr, "robustcv predict: %s\n", rcv_error());
            rc = 1;
            continue;
        }
        rcv_image_to_input(&img, &m->cfg, x, NULL);
        rcv_image_free(&img);
        rcv_smooth_result r;
        if (rcv_smooth_predict(m, x, sc, &rng, &r)) {
            fprintf(stderr, "robustcv predict: %s\n", rcv_error());
            rc = 1;
            break;
        }
        printf("%s\n", files[f]);
        if (r.pred < 0)
            printf("  smoothed: abstain  (top two counts %ld and %ld of %d, binomial p-value %.3g > alpha %g)\n", r.count,
                   r.count2, sc->n, r.p, sc->alpha);
        else
            printf("  smoothed: %s  (class %d; %ld vs %ld of %d noisy samples, sigma %g, p-value %.3g <= alpha %g)\n",
                   info->classes && r.pred < info->n_classes ? info->classes[r.pred] : "", r.pred, r.count, r.count2,
                   sc->n, sc->sigma, r.p, sc->alpha);
    }
    free(x);
    return rc;
}

int cli_predict(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "checkpoint written by `robustcv train` (required)", NULL},
        {"top", "K", "classes to print per image (default 5)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu, ref or cuda (default cpu)", NULL},
        {"smooth", NULL, "randomized smoothing's PREDICT (Cohen et al. 2019): the class or abstain", NULL},
        {"sigma", "X", "--smooth: noise std in [0,1] pixel units (required with --smooth)", NULL},
        {"n", "N", "--smooth: noisy samples (default 100000)", NULL},
        {"alpha", "X", "--smooth: abstain when the binomial test's p-value exceeds it (default 0.001)", NULL},
        {"batch", "N", "--smooth: noisy copies per forward pass (default 1000)", NULL},
        {"seed", "N", "--smooth: noise seed (default 0)", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[4096];
    int npos, topk = 5, threads = 0;
    int rc = rcv_args_parse(argc, argv, opts, "predict", "--checkpoint FILE IMAGE...", pos, &npos, 4096);
    if (rc) return rc == 1 ? 0 : 2;
    rcv_backend be;
    if (rcv_arg_int(opts, "top", &topk) || rcv_arg_int(opts, "threads", &threads) ||
        cli_parse_device(rcv_arg(opts, "device"), &be))
        return 2;
    const char *ck = rcv_arg(opts, "checkpoint");
    if (!ck || npos == 0) {
        fprintf(stderr, "robustcv predict: usage: robustcv predict --checkpoint FILE IMAGE...\n");
        return 2;
    }
    if (topk <= 0) {
        fprintf(stderr, "robustcv predict: --top %d, expected > 0\n", topk);
        return 2;
    }
    int smooth = rcv_arg(opts, "smooth") != NULL;
    rcv_smooth_cfg sc;
    rcv_smooth_defaults(&sc);
    unsigned long long seed = 0;
    if (smooth) {
        if (!rcv_arg(opts, "sigma")) {
            fprintf(stderr, "robustcv predict: --smooth needs --sigma X (the noise std the model was trained with)\n");
            return 2;
        }
        sc.n0 = 1; // PREDICT draws no selection samples
        if (cli_smooth_options(opts, "predict", &sc) || rcv_arg_u64(opts, "seed", &seed)) return 2;
    } else if (rcv_arg(opts, "sigma") || rcv_arg(opts, "n") || rcv_arg(opts, "alpha") || rcv_arg(opts, "batch") ||
               rcv_arg(opts, "seed")) {
        fprintf(stderr, "robustcv predict: --sigma, --n, --alpha, --batch and --seed go with --smooth\n");
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    rcv_model m;
    rcv_ckpt_info info;
    if (rcv_ckpt_load_model(ck, &m, &info)) {
        fprintf(stderr, "robustcv predict: %s\n", rcv_error());
        return 1;
    }
    int k = m.cfg.n_classes;
    if (topk > k) topk = k;
    rc = 0;
    if (smooth) {
        rc = predict_smooth(&m, &info, pos, npos, &sc, seed, be);
        goto out;
    }
    if (rcv_graph_plan(m.g, 1, be)) {
        fprintf(stderr, "robustcv predict: %s\n", rcv_error());
        rc = 1;
        goto out;
    }
    rcv_graph_set_training(m.g, 0);
    // A GPU plan is fed from (and read back into) host copies.
    int on_dev = rcv_graph_on_device(m.g);
    size_t x_floats = (size_t)m.cfg.in_c * m.cfg.in_h * m.cfg.in_w;
    float *hx = on_dev ? rcv_xmalloc(x_floats * sizeof(float)) : NULL, *hz = on_dev ? rcv_xmalloc((size_t)k * sizeof(float)) : NULL;
    float *x = on_dev ? hx : m.g->nodes[m.input].out;
    const float *z = on_dev ? hz : m.g->nodes[m.logits].out;
    double *p = rcv_xmalloc((size_t)k * sizeof(double));
    int *order = rcv_xmalloc((size_t)k * sizeof(int));
    for (int f = 0; f < npos; f++) {
        rcv_image img;
        if (rcv_image_load(pos[f], &img)) {
            // Keep going: one bad file should not hide the others' answers.
            fprintf(stderr, "robustcv predict: %s\n", rcv_error());
            rc = 1;
            continue;
        }
        rcv_image_to_input(&img, &m.cfg, x, NULL);
        rcv_image_free(&img);
        if (on_dev) rcv_graph_upload(m.g, m.g->nodes[m.input].out, x, x_floats * sizeof(float));
        rcv_graph_infer(m.g);
        if (on_dev) rcv_graph_download(m.g, hz, m.g->nodes[m.logits].out, (size_t)k * sizeof(float));
        double mx = z[0], s = 0;
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < k; j++) s += p[j] = exp((double)z[j] - mx);
        for (int j = 0; j < k; j++) p[j] /= s, order[j] = j;
        // Partial selection sort: the top `topk` by probability, ties by index.
        for (int a = 0; a < topk; a++) {
            int best = a;
            for (int b = a + 1; b < k; b++) {
                int jb = order[b], jm = order[best];
                if (p[jb] > p[jm] || (p[jb] == p[jm] && jb < jm)) best = b;
            }
            int t = order[a];
            order[a] = order[best];
            order[best] = t;
        }
        printf("%s\n", pos[f]);
        for (int a = 0; a < topk; a++) {
            int j = order[a];
            printf("  %d. %-28s %6.2f%%  (class %d)\n", a + 1, info.classes && j < info.n_classes ? info.classes[j] : "",
                   100 * p[j], j);
        }
    }
    free(p);
    free(order);
    free(hx);
    free(hz);
out:
    rcv_ckpt_info_free(&info);
    rcv_model_free(&m);
    return rc;
}
