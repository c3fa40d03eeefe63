// robustcv denoise: a denoised copy of an image tree (OpenCV's fastNlMeansDenoisingColored, the
// seed's "blurred" dataset). Images keep their names and format (JPEG at --quality, PNG lossless);
// other files (wnids.txt, annotations) are copied. Works on Tiny ImageNet or any folder tree.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/imagetree.h"
#include "robustcv/augment.h"
#include "robustcv/error.h"
#include "robustcv/image.h"

int cli_denoise(int argc, char **argv) {
    rcv_opt opts[] = {
        {"in", "DIR", "input tree (required)", NULL},
        {"out", "DIR", "output tree (required; created)", NULL},
        {"h", "H", "filter strength for lightness (default 10)", NULL},
        {"h-color", "H", "filter strength for colour, a and b (default 10; the seed used 7)", NULL},
        {"template", "N", "template window, odd (default 7; the seed used 21)", NULL},
        {"search", "N", "search window, odd (default 21)", NULL},
        {"quality", "Q", "JPEG quality of written JPEGs (default 95, OpenCV's imwrite default)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"skip-bad", NULL, "warn about and skip unreadable images instead of failing", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "denoise", "--in DIR --out DIR [--h 10 --h-color 10 ...]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    float hl = 10, hc = 10;
    int tw = 7, sw = 21, quality = 95, threads = 0;
    if (rcv_arg_float(opts, "h", &hl) || rcv_arg_float(opts, "h-color", &hc) || rcv_arg_int(opts, "template", &tw) ||
        rcv_arg_int(opts, "search", &sw) || rcv_arg_int(opts, "quality", &quality) || rcv_arg_int(opts, "threads", &threads))
        return 2;
    const char *in = rcv_arg(opts, "in"), *out = rcv_arg(opts, "out");
    int skip = rcv_arg(opts, "skip-bad") != NULL;
    if (!in || !out) {
        fprintf(stderr, "robustcv denoise: --in and --out are required\n");
        return 2;
    }
    if (tw < 1 || sw < 1 || !(tw & 1) || !(sw & 1) || hl < 0 || hc < 0 || quality < 1 || quality > 100) {
        fprintf(stderr, "robustcv denoise: --template %d / --search %d must be odd and >= 1, --h/--h-color >= 0, "
                        "--quality 1..100\n", tw, sw);
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    rcv_filelist l;
    if (rcv_filelist_scan(in, &l)) {
        fprintf(stderr, "robustcv denoise: %s\n", rcv_error());
        return 1;
    }
    int failed = 0, done = 0, skipped = 0;
    // Images in parallel; each denoise runs on one thread (its own OpenMP region stays serial).
#pragma omp parallel for schedule(dynamic) reduction(+ : failed, done, skipped)
    for (int i = 0; i < l.n; i++) {
        if (failed && !skip) continue;
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", in, l.rel[i]);
        snprintf(dst, sizeof dst, "%s/%s", out, l.rel[i]);
        if (rcv_mkdirs_for(dst)) {
            fprintf(stderr, "robustcv denoise: %s\n", rcv_error());
            failed++;
            continue;
        }
        if (!rcv_is_image_name(l.rel[i])) {
            if (rcv_copy_file(src, dst)) {
                fprintf(stderr, "robustcv denoise: %s\n", rcv_error());
                failed++;
            }
            continue;
        }
        rcv_image img;
        if (rcv_image_load(src, &img)) {
            fprintf(stderr, "robustcv denoise: %s%s\n", skip ? "skipping: " : "", rcv_error());
            if (skip) skipped++;
            else failed++;
            continue;
        }
        int e = rcv_nlmeans_colored(img.pix, img.pix, img.h, img.w, hl, hc, tw, sw);
        if (!e) e = rcv_is_jpeg_name(l.rel[i]) ? rcv_jpeg_write(dst, &img, quality) : rcv_png_write(dst, &img);
        if (e) {
            fprintf(stderr, "robustcv denoise: %s\n", rcv_error());
            failed++;
        } else {
            done++;
        }
        rcv_image_free(&img);
    }
    rcv_filelist_free(&l);
    printf("denoised %d images into %s (%d skipped)%s\n", done, out, skipped, failed ? ", with errors" : "");
    return failed ? 1 : 0;
}
