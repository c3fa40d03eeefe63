// robustcv eval: accuracy, loss, per-class accuracy and confusion matrix of a checkpoint; for a
// NAME+box model also the mean IoU of its boxes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/json.h"
#include "robustcv/fileio.h"
#include "robustcv/train.h"

int cli_eval(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "checkpoint written by `robustcv train` (required)", NULL},
        {"data", "SPEC", "data source (default fashion-mnist): fashion-mnist[:DIR], tiny-imagenet:PATH[:options] "
                         "(test = val/), folder:PATH[:options], tiny-imagenet-c:PATH:CORRUPTION:SEVERITY[:options]", NULL},
        {"split", "NAME", "test or train (default test)", NULL},
        {"batch", "N", "batch size (default 256)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"device", "NAME", "cpu, ref or cuda (default cpu)", NULL},
        {"json", "FILE", "also write the results as JSON", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, batch = 256, threads = 0;
    int rc = rcv_args_parse(argc, argv, opts, "eval", "--checkpoint FILE [options]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    rcv_backend be;
    if (rcv_arg_int(opts, "batch", &batch) || rcv_arg_int(opts, "threads", &threads) ||
        cli_parse_device(rcv_arg(opts, "device"), &be))
        return 2;
    const char *ck = rcv_arg(opts, "checkpoint"), *data = rcv_arg(opts, "data"), *split = rcv_arg(opts, "split");
    if (!ck) {
        fprintf(stderr, "robustcv eval: --checkpoint FILE is required\n");
        return 2;
    }
    if (split && strcmp(split, "test") && strcmp(split, "train")) {
        fprintf(stderr, "robustcv eval: --split '%s', expected test or train\n", split);
        return 2;
    }
    if (batch <= 0) {
        fprintf(stderr, "robustcv eval: --batch %d, expected > 0\n", batch);
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    rcv_model m;
    rcv_ckpt_info info;
    rcv_dataset d = {0};
    rcv_eval_result r = {0};
    rc = 1;
    if (rcv_ckpt_load_model(ck, &m, &info)) {
        fprintf(stderr, "robustcv eval: %s\n", rcv_error());
        return 1;
    }
    int train = split && !strcmp(split, "train");
    if (rcv_data_open(data ? data : "fashion-mnist", train, &d) || rcv_evaluate(&m, &d, batch, be, &r)) {
        fprintf(stderr, "robustcv eval: %s\n", rcv_error());
        goto out;
    }
    char **names = info.n_classes == r.n_classes ? info.classes : d.class_names;
    printf("checkpoint %s (%s, epoch %d) on %s %s: %d images\n", ck, m.name, info.epoch, data ? data : "fashion-mnist",
           train ? "train" : "test", r.n);
    printf("top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n", 100 * r.top1, 100 * r.top5, r.loss);
    if (r.box_n)
        printf("box: mean IoU %.4f  IoU >= 0.5: %.2f%%  smooth-L1 %.4f (%d images)\n", r.box_iou, 100 * r.box_iou50,
               r.box_loss, r.box_n);
    else if (m.box >= 0)
        printf("box: not scored, %s has no boxes for this split\n", data ? data : "fashion-mnist");
    printf("\n");
    printf("%-24s %8s %8s\n", "class", "images", "top-1");
    int k = r.n_classes;
    for (int i = 0; i < k; i++) {
        int64_t tot = 0;
        for (int j = 0; j < k; j++) tot += r.confusion[(size_t)i * k + j];
        printf("%-24s %8lld %7.2f%%\n", names ? names[i] : "", (long long)tot,
               tot ? 100.0 * r.confusion[(size_t)i * k + i] / tot : 0.0);
    }
    if (k <= 20) {
        printf("\nconfusion matrix (rows: true class, columns: predicted)\n     ");
        for (int j = 0; j < k; j++) printf(" %5d", j);
        printf("\n");
        for (int i = 0; i < k; i++) {
            printf("%4d ", i);
            for (int j = 0; j < k; j++) printf(" %5lld", (long long)r.confusion[(size_t)i * k + j]);
            printf("\n");
        }
    }
    const char *jp = rcv_arg(opts, "json");
    if (jp) {
        // Built in memory, then written atomically: a failed write keeps the previous file.
        rcv_json_writer w;
        rcv_json_writer_init(&w);
        rcv_json_begin_object(&w);
        rcv_json_key(&w, "checkpoint"), rcv_json_string(&w, ck);
        rcv_json_key(&w, "images"), rcv_json_int(&w, r.n);
        rcv_json_key(&w, "top1"), rcv_json_number(&w, r.top1);
        rcv_json_key(&w, "top5"), rcv_json_number(&w, r.top5);
        rcv_json_key(&w, "loss"), rcv_json_number(&w, r.loss);
        if (r.box_n) {
            rcv_json_key(&w, "box_images"), rcv_json_int(&w, r.box_n);
            rcv_json_key(&w, "box_iou"), rcv_json_number(&w, r.box_iou);
            rcv_json_key(&w, "box_iou50"), rcv_json_number(&w, r.box_iou50);
            rcv_json_key(&w, "box_loss"), rcv_json_number(&w, r.box_loss);
        }
        rcv_json_key(&w, "confusion");
        rcv_json_begin_array(&w);
        for (int i = 0; i < k; i++) {
            rcv_json_begin_array(&w);
            for (int j = 0; j < k; j++) rcv_json_int(&w, r.confusion[(size_t)i * k + j]);
            rcv_json_end_array(&w);
        }
        rcv_json_end_array(&w);
        rcv_json_end_object(&w);
        rcv_json_raw(&w, "\n");
        int bad = rcv_file_write_atomic(jp, rcv_json_text(&w), strlen(rcv_json_text(&w)));
        rcv_json_writer_free(&w);
        if (bad) {
            fprintf(stderr, "robustcv eval: %s\n", rcv_error());
            goto out;
        }
    }
    rc = 0;
out:
    rcv_eval_result_free(&r);
    rcv_dataset_free(&d);
    rcv_ckpt_info_free(&info);
    rcv_model_free(&m);
    return rc;
}
