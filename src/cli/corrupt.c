// robustcv corrupt: writes a Tiny-ImageNet-C tree <out>/<corruption>/<severity>/<class>/<file>.JPEG
// (JPEG quality 85, as the original saved them). Input: a Tiny ImageNet root (its val images,
// placed in <wnid>/ from val/val_annotations.txt) or a generic <root>/<class>/... tree.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "cli/imagetree.h"
#include "robustcv/augment.h"
#include "robustcv/error.h"
#include "robustcv/image.h"

typedef struct {
    char *src, *cls, *name; // input path, class folder, output file name
} job;

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// Tiny ImageNet val: "<file>\t<wnid>\t<x0>\t<y0>\t<x1>\t<y1>" per line.
static int tiny_jobs(const char *root, job **jobs, int *n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/val/val_annotations.txt", root);
    FILE *f = fopen(p, "r");
    if (!f) return rcv_fail("%s: cannot open", p);
    char line[1024];
    int cap = 0, ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char file[512], wnid[128];
        if (line[0] == '\n' || line[0] == 0) continue;
        if (sscanf(line, "%511s %127s", file, wnid) != 2) {
            fclose(f);
            return rcv_fail("%s:%d: expected '<file> <wnid> x0 y0 x1 y1', got '%.60s'", p, ln, line);
        }
        if (*n == cap) *jobs = rcv_xrealloc(*jobs, sizeof(job) * (size_t)(cap = cap ? 2 * cap : 1024));
        char src[4096];
        snprintf(src, sizeof src, "%s/val/images/%s", root, file);
        (*jobs)[(*n)++] = (job){rcv_xstrdup(src), rcv_xstrdup(wnid), rcv_xstrdup(file)};
    }
    fclose(f);
    return 0;
}

static int folder_jobs(const char *root, job **jobs, int *n) {
    rcv_filelist l;
    if (rcv_filelist_scan(root, &l)) return -1;
    *jobs = rcv_xmalloc(sizeof(job) * (size_t)(l.n + 1));
    for (int i = 0; i < l.n; i++) {
        char *slash = strchr(l.rel[i], '/');
        if (!slash || !rcv_is_image_name(l.rel[i])) continue; // files at the top level have no class
        char src[4096];
        snprintf(src, sizeof src, "%s/%s", root, l.rel[i]);
        *slash = 0;
        (*jobs)[(*n)++] = (job){rcv_xstrdup(src), rcv_xstrdup(l.rel[i]), rcv_xstrdup(strrchr(slash + 1, '/') ? strrchr(slash + 1, '/') + 1 : slash + 1)};
    }
    rcv_filelist_free(&l);
    return 0;
}

// The output name: JPEG names kept, others get their extension replaced by .JPEG.
static void out_name(const char *name, char *buf, size_t n) {
    if (rcv_is_jpeg_name(name)) {
        snprintf(buf, n, "%s", name);
        return;
    }
    const char *dot = strrchr(name, '.');
    snprintf(buf, n, "%.*s.JPEG", dot ? (int)(dot - name) : (int)strlen(name), name);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int cli_corrupt(int argc, char **argv) {
    rcv_opt opts[] = {
        {"in", "DIR", "Tiny ImageNet root (val split) or a <root>/<class>/ image tree (required)", NULL},
        {"out", "DIR", "output root (required)", NULL},
        {"corruptions", "LIST", "comma-separated names (default: all 15)", NULL},
        {"severities", "A-B", "severity range or list, e.g. 1-5 or 1,3 (default 1-5)", NULL},
        {"seed", "N", "random seed (default 0); each image's draws depend on seed and its path only", NULL},
        {"quality", "Q", "JPEG quality of the written files (default 85, as Tiny-ImageNet-C)", NULL},
        {"threads", "N", "threads (default: all cores)", NULL},
        {"skip-bad", NULL, "warn about and skip unreadable images instead of failing", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "corrupt", "--in DIR --out DIR [--corruptions a,b] [--severities 1-5]",
                            pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    int quality = 85, threads = 0;
    unsigned long long seed = 0;
    if (rcv_arg_int(opts, "quality", &quality) || rcv_arg_int(opts, "threads", &threads) || rcv_arg_u64(opts, "seed", &seed))
        return 2;
    const char *in = rcv_arg(opts, "in"), *out = rcv_arg(opts, "out");
    int skip = rcv_arg(opts, "skip-bad") != NULL;
    if (!in || !out) {
        fprintf(stderr, "robustcv corrupt: --in and --out are required\n");
        return 2;
    }
    // Corruption and severity selections.
    int use[16] = {0}, nc = rcv_corruption_count(), sev[6] = {0};
    const char *cl = rcv_arg(opts, "corruptions");
    if (!cl) {
        for (int i = 0; i < nc; i++) use[i] = 1;
    } else {
        char *buf = rcv_xstrdup(cl), *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int k = -1;
            for (int i = 0; i < nc; i++)
                if (!strcmp(t, rcv_corruption_names[i])) k = i;
            if (k < 0) {
                fprintf(stderr, "robustcv corrupt: --corruptions: unknown '%s', expected some of:", t);
                for (int i = 0; i < nc; i++) fprintf(stderr, " %s", rcv_corruption_names[i]);
                fprintf(stderr, "\n");
                free(buf);
                return 2;
            }
            use[k] = 1;
        }
        free(buf);
    }
    const char *sv = rcv_arg(opts, "severities");
    if (!sv) sv = "1-5";
    {
        char *buf = rcv_xstrdup(sv), *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int a, b, m = 0;
            if (sscanf(t, "%d-%d%n", &a, &b, &m) == 2 && !t[m]) {
            } else if (sscanf(t, "%d%n", &a, &m) == 1 && !t[m]) {
                b = a;
            } else {
                a = 0, b = -1;
            }
            if (a < 1 || b > 5 || a > b) {
                fprintf(stderr, "robustcv corrupt: --severities '%s', expected values in 1..5 like 1-5 or 1,3\n", sv);
                free(buf);
                return 2;
            }
            for (int s = a; s <= b; s++) sev[s] = 1;
        }
        free(buf);
    }
    if (threads > 0) omp_set_num_threads(threads);
    job *jobs = NULL;
    int nj = 0;
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/val/val_annotations.txt", in);
    int tiny = exists(probe);
    if (tiny ? tiny_jobs(in, &jobs, &nj) : folder_jobs(in, &jobs, &nj)) {
        fprintf(stderr, "robustcv corrupt: %s\n", rcv_error());
        return 1;
    }
    if (nj == 0) {
        fprintf(stderr, "robustcv corrupt: %s: no images found (expected val/val_annotations.txt or <class>/ folders)\n", in);
        free(jobs);
        return 1;
    }
    int failed = 0, written = 0, skipped = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : failed, written, skipped)
    for (int j = 0; j < nj; j++) {
        if (failed && !skip) continue;
        rcv_image img;
        if (rcv_image_load(jobs[j].src, &img)) {
            fprintf(stderr, "robustcv corrupt: %s%s\n", skip ? "skipping: " : "", rcv_error());
            if (skip) skipped++;
            else failed++;
            continue;
        }
        rcv_image cimg = img;
        cimg.pix = rcv_xmalloc((size_t)img.w * img.h * 3);
        char name[1024];
        out_name(jobs[j].name, name, sizeof name);
        char key[4096];
        snprintf(key, sizeof key, "%s/%s", jobs[j].cls, jobs[j].name);
        uint64_t s0 = seed ^ hash_str(key);
        for (int c = 0; c < nc && !(failed && !skip); c++) {
            if (!use[c]) continue;
            for (int s = 1; s <= 5; s++) {
                if (!sev[s]) continue;
                char dst[8200];
                snprintf(dst, sizeof dst, "%s/%s/%d/%s/%s", out, rcv_corruption_names[c], s, jobs[j].cls, name);
                if (rcv_corrupt(img.pix, cimg.pix, img.h, img.w, rcv_corruption_names[c], s, s0) ||
                    rcv_mkdirs_for(dst) || rcv_jpeg_write(dst, &cimg, quality)) {
                    fprintf(stderr, "robustcv corrupt: %s: %s\n", jobs[j].src, rcv_error());
                    failed++;
                    break;
                }
                written++;
            }
        }
        rcv_image_free(&cimg);
        rcv_image_free(&img);
    }
    for (int j = 0; j < nj; j++) free(jobs[j].src), free(jobs[j].cls), free(jobs[j].name);
    free(jobs);
    printf("wrote %d corrupted images from %d %s images into %s (%d skipped)%s\n", written, nj - skipped,
           tiny ? "Tiny ImageNet val" : "folder", out, skipped, failed ? ", with errors" : "");
    return failed ? 1 : 0;
}
