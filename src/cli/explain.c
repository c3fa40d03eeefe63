// robustcv explain: class activation maps (CAM, Grad-CAM, Grad-CAM++) for the top classes of
// images, as a PNG grid image | top-1 | top-2 | top-3 (the seed's Figure 7), and the first
// convolution's filters.
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/explain.h"
#include "robustcv/metrics.h"
#include "robustcv/train.h"

int cli_explain(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "checkpoint written by `robustcv train` (required)", NULL},
        {"images", "A,B,...", "image files (PNG or JPEG), comma-separated", NULL},
        {"data", "SPEC", "or: a data source; its first --limit test images are explained", NULL},
        {"limit", "N", "images taken from --data (default 8)", NULL},
        {"method", "NAME", "cam, gradcam or gradcam++ (default gradcam)", NULL},
        {"layer", "NAME", "module whose output is mapped (default: the last feature map, e.g. layer4)", NULL},
        {"top", "K", "maps per image for the top K classes, 1..3 (default 3)", NULL},
        {"scale", "S", "pixel zoom of the figures (default: about 112 px per image)", NULL},
        {"out", "DIR", "output directory (required; created)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu (default), ref or cuda", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, limit = 8, top = 3, scale = 0, threads = 0;
    int rc = rcv_args_parse(argc, argv, opts, "explain",
                            "--checkpoint FILE (--images A,B | --data SPEC [--limit N]) --out DIR [options]", pos,
                            &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    rcv_backend be;
    if (rcv_arg_int(opts, "limit", &limit) || rcv_arg_int(opts, "top", &top) || rcv_arg_int(opts, "scale", &scale) ||
        rcv_arg_int(opts, "threads", &threads) || cli_parse_device(rcv_arg(opts, "device"), &be))
        return 2;
    const char *ck = rcv_arg(opts, "checkpoint"), *imgs = rcv_arg(opts, "images"), *data = rcv_arg(opts, "data");
    const char *out = rcv_arg(opts, "out"), *layer = rcv_arg(opts, "layer");
    rcv_cam_method method = RCV_CAM_GRADCAM;
    if (rcv_arg(opts, "method") && rcv_cam_method_parse(rcv_arg(opts, "method"), &method)) {
        fprintf(stderr, "robustcv explain: --method: %s\n", rcv_error());
        return 2;
    }
    if (!ck || !out || (!imgs) == (!data)) {
        fprintf(stderr, "robustcv explain: needs --checkpoint, --out and exactly one of --images or --data\n");
        return 2;
    }
    if (top < 1 || top > 3 || limit < 1 || scale < 0) {
        fprintf(stderr, "robustcv explain: --top %d (1..3), --limit %d (>= 1), --scale %d (>= 1)\n", top, limit, scale);
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    if (mkdir(out, 0777) && errno != EEXIST) {
        fprintf(stderr, "robustcv explain: cannot create %s\n", out);
        return 1;
    }
    rcv_model m;
    rcv_ckpt_info info;
    if (rcv_ckpt_load_model(ck, &m, &info)) {
        fprintf(stderr, "robustcv explain: %s\n", rcv_error());
        return 1;
    }
    const rcv_model_cfg *c = &m.cfg;
    int k = c->n_classes, n = 0, hw = c->in_h * c->in_w;
    size_t per = (size_t)hw * c->in_c;
    rcv_dataset d = {0};
    rcv_image *shown = NULL;
    float *x = NULL, *maps = NULL, *probs = NULL, *tp = NULL;
    int32_t *cls = NULL;
    char **names = NULL;
    rcv_explainer e = {0};
    rc = 1;
    if (imgs) {
        char *buf = rcv_xstrdup(imgs);
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) n++;
        free(buf);
        shown = rcv_xcalloc((size_t)n, sizeof *shown);
        x = rcv_xmalloc((size_t)n * per * sizeof(float));
        buf = rcv_xstrdup(imgs);
        int i = 0, bad = 0;
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","), i++) {
            rcv_image img;
            if (rcv_image_load(t, &img)) {
                fprintf(stderr, "robustcv explain: %s\n", rcv_error());
                bad = 1;
                break;
            }
            rcv_image_to_input(&img, c, x + (size_t)i * per, &shown[i]);
            rcv_image_free(&img);
        }
        free(buf);
        if (bad) goto out;
    } else {
        if (rcv_data_open(data, 0, &d)) {
            fprintf(stderr, "robustcv explain: %s\n", rcv_error());
            goto out;
        }
        if (d.c != c->in_c || d.h != c->in_h || d.w != c->in_w) {
            fprintf(stderr, "robustcv explain: %s has %dx%dx%d images, the model expects %dx%dx%d\n", data, d.c, d.h,
                    d.w, c->in_c, c->in_h, c->in_w);
            goto out;
        }
        n = limit < d.n ? limit : d.n;
        shown = rcv_xcalloc((size_t)n, sizeof *shown);
        x = rcv_xmalloc((size_t)n * per * sizeof(float));
        for (int i = 0; i < n; i++) {
            rcv_dataset_batch(&d, &i, 1, x + (size_t)i * per, NULL);
            rcv_image_alloc(&shown[i], d.w, d.h, d.c);
            memcpy(shown[i].pix, d.pixels + (size_t)i * per, per);
        }
    }
    int batch = n < 16 ? n : 16;
    if (rcv_explainer_init(&e, &m, method, layer, batch, be)) {
        fprintf(stderr, "robustcv explain: %s\n", rcv_error());
        goto out;
    }
    maps = rcv_xmalloc((size_t)n * top * hw * sizeof(float));
    probs = rcv_xmalloc((size_t)batch * k * sizeof(float));
    cls = rcv_xmalloc((size_t)n * top * sizeof(int32_t));
    tp = rcv_xmalloc((size_t)n * top * sizeof(float));
    float *tmp = rcv_xmalloc((size_t)batch * (hw > k ? hw : k) * sizeof(float));
    int32_t tc[16];
    int fail = 0;
    for (int s = 0; s < n && !fail; s += batch) {
        int nb = n - s < batch ? n - s : batch;
        for (int t = 0; t < top && !fail; t++) {
            // Pass t maps class rank t; the first pass's logits give the ranking.
            for (int i = 0; i < nb; i++) tc[i] = t == 0 ? 0 : cls[(size_t)(s + i) * top + t];
            if (t == 0) {
                if ((fail = rcv_explainer_run(&e, x + (size_t)s * per, nb, tc, tmp))) break;
                const float *zl = m.g->nodes[m.logits].out;
                if (rcv_graph_on_device(m.g)) { // a cuda plan: the logits come down once per batch
                    rcv_graph_download(m.g, tmp, zl, (size_t)nb * k * sizeof(float));
                    zl = tmp;
                }
                rcv_softmax_rows(zl, nb, k, probs);
                for (int i = 0; i < nb; i++) {
                    const float *p = probs + (size_t)i * k;
                    for (int r = 0; r < top; r++) { // rank r: the best class not yet taken, ties by index
                        int best = -1;
                        for (int j = 0; j < k; j++) {
                            int taken = 0;
                            for (int q = 0; q < r; q++) taken |= cls[(size_t)(s + i) * top + q] == j;
                            if (!taken && (best < 0 || p[j] > p[best])) best = j;
                        }
                        cls[(size_t)(s + i) * top + r] = best;
                        tp[(size_t)(s + i) * top + r] = p[best];
                    }
                    tc[i] = cls[(size_t)(s + i) * top];
                }
            }
            if ((fail = rcv_explainer_run(&e, x + (size_t)s * per, nb, tc, tmp))) break;
            for (int i = 0; i < nb; i++) memcpy(maps + ((size_t)(s + i) * top + t) * hw, tmp + (size_t)i * hw, hw * sizeof(float));
        }
    }
    free(tmp);
    if (fail) {
        fprintf(stderr, "robustcv explain: %s\n", rcv_error());
        goto out;
    }
    names = info.classes && info.n_classes == k ? info.classes : (d.class_names && d.n_classes == k ? d.class_names : NULL);
    if (!scale) scale = c->in_w >= 112 ? 1 : (112 + c->in_w - 1) / c->in_w;
    char path[1200], title[200];
    snprintf(path, sizeof path, "%s/%s.png", out, rcv_cam_method_name(method));
    snprintf(title, sizeof title, "%s, %s at %s", m.name, rcv_cam_method_name(method), m.g->nodes[e.layer].name);
    if (rcv_cam_grid_png(path, shown, n, top, maps, cls, tp, (const char *const *)names, scale, title)) {
        fprintf(stderr, "robustcv explain: %s\n", rcv_error());
        goto out;
    }
    printf("wrote %s (%d images x top-%d)\n", path, n, top);
    for (int i = 0; i < m.g->n_nodes; i++) {
        const rcv_node *nd = &m.g->nodes[i];
        if (nd->op != RCV_OP_CONV2D) continue;
        const rcv_param *p = &m.g->param_info[nd->param[0]];
        snprintf(path, sizeof path, "%s/filters.png", out);
        snprintf(title, sizeof title, "%s.weight", nd->name);
        if (rcv_filters_png(path, rcv_param_data(m.g, nd->param[0]), (int)p->shape[0], (int)p->shape[1],
                            (int)p->shape[2], (int)p->shape[3], 8, title)) {
            fprintf(stderr, "robustcv explain: %s\n", rcv_error());
            goto out;
        }
        printf("wrote %s (%s, %lld filters)\n", path, title, (long long)p->shape[0]);
        break;
    }
    rc = 0;
out:
    rcv_explainer_free(&e);
    for (int i = 0; shown && i < n; i++) rcv_image_free(&shown[i]);
    free(shown);
    free(x);
    free(maps);
    free(probs);
    free(cls);
    free(tp);
    rcv_dataset_free(&d);
    rcv_ckpt_info_free(&info);
    rcv_model_free(&m);
    return rc;
}
