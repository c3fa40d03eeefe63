// robustcv certify: certified L2 robustness of a checkpoint's smoothed classifier (randomized
// smoothing, Cohen et al. 2019; smoothing.h): per test image CERTIFY's class and radius as a TSV
// like their certify.py, then the certified accuracy at radii 0 ... 1.5.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"
#include "robustcv/smoothing.h"
#include "robustcv/train.h"
#include "train/progress.h"

static const double radii[] = {0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5};
#define N_RADII ((int)(sizeof radii / sizeof radii[0]))

// The smoothing options shared by certify and predict --smooth into c; -1 after printing.
int cli_smooth_options(const rcv_opt *opts, const char *verb, rcv_smooth_cfg *c) {
    if (rcv_arg_float(opts, "sigma", &c->sigma) || rcv_arg_int(opts, "n", &c->n) || rcv_arg_int(opts, "batch", &c->batch))
        return -1;
    if (rcv_arg(opts, "n0") && rcv_arg_int(opts, "n0", &c->n0)) return -1;
    const char *a = rcv_arg(opts, "alpha");
    if (a) {
        char *end;
        c->alpha = strtod(a, &end);
        if (end == a || *end) {
            fprintf(stderr, "robustcv %s: --alpha '%s' is not a number\n", verb, a);
            return -1;
        }
    }
    if (!(c->sigma > 0) || !isfinite(c->sigma)) {
        fprintf(stderr, "robustcv %s: --sigma %g, expected a noise std > 0 (pixels in [0, 1])\n", verb, c->sigma);
        return -1;
    }
    if (c->n <= 0) {
        fprintf(stderr, "robustcv %s: --n %d, expected > 0 samples\n", verb, c->n);
        return -1;
    }
    if (c->n0 <= 0 || c->n0 > c->n) {
        fprintf(stderr, "robustcv %s: --n0 %d, expected 0 < n0 <= n (--n %d)\n", verb, c->n0, c->n);
        return -1;
    }
    if (c->batch <= 0) {
        fprintf(stderr, "robustcv %s: --batch %d, expected > 0\n", verb, c->batch);
        return -1;
    }
    if (!(c->alpha > 0 && c->alpha < 1)) {
        fprintf(stderr, "robustcv %s: --alpha %g, expected 0 < alpha < 1\n", verb, c->alpha);
        return -1;
    }
    return 0;
}

int cli_certify(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "base classifier (required; ideally trained with Gaussian noise of --sigma)", NULL},
        {"data", "SPEC", "data source: fashion-mnist[:DIR] (default fashion-mnist); certifies the test split", NULL},
        {"sigma", "X", "noise std in [0,1] pixel units (required, e.g. 0.25)", NULL},
        {"n0", "N", "samples that select the class (default 100)", NULL},
        {"n", "N", "samples that estimate its probability (default 100000)", NULL},
        {"alpha", "X", "failure probability (default 0.001)", NULL},
        {"batch", "N", "noisy copies per forward pass (default 1000)", NULL},
        {"limit", "N", "only test images with index < N (certify.py's --max; default all)", NULL},
        {"skip", "K", "every K-th test image (certify.py's --skip; default 1)", NULL},
        {"seed", "N", "noise seed (default 0)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu, ref or cuda (default cpu)", NULL},
        {"out", "FILE", "per-image TSV: idx label predict radius correct time (required)", NULL},
        {"json", "FILE", "certified accuracy at radii 0..1.5 with sigma, n, alpha, images", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "certify", "--checkpoint FILE --sigma X --out FILE.tsv [options]", pos,
                            &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    const char *ck = rcv_arg(opts, "checkpoint"), *out = rcv_arg(opts, "out"), *jpath = rcv_arg(opts, "json");
    const char *data = rcv_arg(opts, "data");
    if (!data) data = "fashion-mnist";
    if (!ck || !out || !rcv_arg(opts, "sigma")) {
        fprintf(stderr, "robustcv certify: --checkpoint FILE, --sigma X and --out FILE.tsv are required\n");
        return 2;
    }
    rcv_smooth_cfg sc;
    rcv_smooth_defaults(&sc);
    int limit = 0, skip = 1, threads = 0;
    unsigned long long seed = 0;
    rcv_backend be;
    if (cli_smooth_options(opts, "certify", &sc) || rcv_arg_int(opts, "limit", &limit) ||
        rcv_arg_int(opts, "skip", &skip) || rcv_arg_u64(opts, "seed", &seed) || rcv_arg_int(opts, "threads", &threads) ||
        cli_parse_device(rcv_arg(opts, "device"), &be))
        return 2;
    if (limit < 0 || skip <= 0) {
        fprintf(stderr, "robustcv certify: --limit %d, --skip %d: expected limit >= 0 and skip > 0\n", limit, skip);
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);

    rcv_model m = {0};
    rcv_dataset d = {0};
    float *x = NULL;
    int32_t *y = NULL;
    int *idx = NULL, *pred = NULL;
    double *rad = NULL;
    FILE *f = NULL;
    char *tsv = NULL;
    size_t tsv_len = 0;
    rc = 1;
    if (rcv_ckpt_load_model(ck, &m, NULL) || rcv_data_open(data, 0, &d)) goto fail;
    if (d.c != m.cfg.in_c || d.h != m.cfg.in_h || d.w != m.cfg.in_w) {
        rcv_fail("%s: model takes %dx%dx%d images, %s has %dx%dx%d", ck, m.cfg.in_c, m.cfg.in_h, m.cfg.in_w, data, d.c,
                 d.h, d.w);
        goto fail;
    }
    if (rcv_smooth_prepare(&m, &sc, be)) goto fail;
    int end = limit > 0 && limit < d.n ? limit : d.n, n = 0;
    idx = rcv_xmalloc((size_t)(end / skip + 1) * sizeof(int));
    for (int i = 0; i < end; i += skip) idx[n++] = i;
    size_t per = (size_t)d.c * d.h * d.w;
    x = rcv_xmalloc((size_t)n * per * sizeof(float));
    y = rcv_xmalloc((size_t)n * sizeof(int32_t));
    rcv_dataset_batch(&d, idx, n, x, y);
    pred = rcv_xmalloc((size_t)n * sizeof(int));
    rad = rcv_xmalloc((size_t)n * sizeof(double));
    // The table is built in memory and written atomically at the end: a failed write keeps the
    // previous file.
    f = open_memstream(&tsv, &tsv_len);
    if (!f) {
        rcv_fail("cannot write %s: out of memory", out);
        goto fail;
    }
    fprintf(f, "idx\tlabel\tpredict\tradius\tcorrect\ttime\n");
    rcv_rng rng;
    rcv_rng_init(&rng, seed);
    double t0 = rcv_now();
    int abstain = 0;
    for (int i = 0; i < n; i++) {
        double ti = rcv_now();
        rcv_smooth_result r;
        if (rcv_smooth_certify(&m, x + (size_t)i * per, &sc, &rng, &r)) goto fail;
        pred[i] = r.pred, rad[i] = r.radius;
        abstain += r.pred < 0;
        // radius in full precision, so the accuracies recomputed from the file are the printed ones
        fprintf(f, "%d\t%d\t%d\t%.9g\t%d\t%.4f\n", idx[i], y[i], r.pred, r.radius, r.pred == y[i], rcv_now() - ti);
        fprintf(stderr, "\rcertify: %d/%d images", i + 1, n);
    }
    fprintf(stderr, "\n");
    int closed = fclose(f);
    f = NULL;
    if (closed) {
        rcv_fail("cannot write %s: out of memory", out);
        goto fail;
    }
    if (rcv_file_write_atomic(out, tsv, tsv_len)) goto fail;
    double secs = rcv_now() - t0, acc[N_RADII];
    rcv_smooth_certified_accuracy(pred, rad, y, n, radii, N_RADII, acc);
    printf("certify %s (%s) on %d %s test images: sigma %g, n0 %d, n %d, alpha %g, %d abstained, %.1f s "
           "(%.0f noisy forwards/s)\n",
           ck, m.name, n, data, sc.sigma, sc.n0, sc.n, sc.alpha, abstain, secs,
           secs > 0 ? (double)n * (sc.n0 + sc.n) / secs : 0);
    printf("radius  certified accuracy\n");
    for (int j = 0; j < N_RADII; j++) printf("%-7.2f %.4f\n", radii[j], acc[j]);
    if (jpath) {
        rcv_json_writer w;
        rcv_json_writer_init(&w);
        rcv_json_begin_object(&w);
        rcv_json_key(&w, "checkpoint"); rcv_json_string(&w, ck);
        rcv_json_key(&w, "model"); rcv_json_string(&w, m.name);
        rcv_json_key(&w, "data"); rcv_json_string(&w, data);
        rcv_json_key(&w, "images"); rcv_json_int(&w, n);
        char sg[32];
        snprintf(sg, sizeof sg, "%.7g", sc.sigma); // the float as typed (0.12, not 0.1199999973)
        rcv_json_key(&w, "sigma"); rcv_json_number(&w, strtod(sg, NULL));
        rcv_json_key(&w, "n0"); rcv_json_int(&w, sc.n0);
        rcv_json_key(&w, "n"); rcv_json_int(&w, sc.n);
        rcv_json_key(&w, "alpha"); rcv_json_number(&w, sc.alpha);
        rcv_json_key(&w, "batch"); rcv_json_int(&w, sc.batch);
        rcv_json_key(&w, "seed"); rcv_json_int(&w, (int64_t)seed);
        rcv_json_key(&w, "abstained"); rcv_json_int(&w, abstain);
        rcv_json_key(&w, "seconds"); rcv_json_number(&w, secs);
        rcv_json_key(&w, "radii");
        rcv_json_begin_array(&w);
        for (int j = 0; j < N_RADII; j++) rcv_json_number(&w, radii[j]);
        rcv_json_end_array(&w);
        rcv_json_key(&w, "certified_accuracy");
        rcv_json_begin_array(&w);
        for (int j = 0; j < N_RADII; j++) rcv_json_number(&w, acc[j]);
        rcv_json_end_array(&w);
        rcv_json_end_object(&w);
        rcv_json_raw(&w, "\n");
        int wr = rcv_file_write_atomic(jpath, rcv_json_text(&w), strlen(rcv_json_text(&w)));
        rcv_json_writer_free(&w);
        if (wr) goto fail;
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "robustcv certify: %s\n", rcv_error());
done:
    if (f) fclose(f);
    free(tsv);
    if (m.g) rcv_model_free(&m);
    rcv_dataset_free(&d);
    free(x); free(y); free(idx); free(pred); free(rad);
    return rc;
}
