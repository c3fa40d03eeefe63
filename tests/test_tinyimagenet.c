// Image data sources, the packed cache and the threaded loader, on small trees written by
// tests/oracle/make_tiny_imagenet.py (real JPEG/PNG files: RGB, grayscale, one CMYK, one
// 80x48 image). The oracle is that script's own reading: PIL's decode + convert("RGB"),
// torch's bilinear resize, Python's sorted() for class and file order, and the labels and
// boxes it wrote.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "robustcv/data.h"
#include "robustcv/error.h"
#include "robustcv/loader.h"
#include "testutil.h"

static char dir[256], cache[300], tiny[300];

typedef struct {
    int n;
    int32_t labels[512];
    float boxes[512][4];
    char paths[512][300];
    uint8_t *pix;
} ref_set;

static int read_ref(const char *name, ref_set *r) {
    char p[400];
    snprintf(p, sizeof p, "%s/ref_%s.txt", dir, name);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    r->n = 0;
    while (r->n < 512 && fscanf(f, "%d %f %f %f %f %299s", &r->labels[r->n], &r->boxes[r->n][0], &r->boxes[r->n][1],
                                &r->boxes[r->n][2], &r->boxes[r->n][3], r->paths[r->n]) == 6)
        r->n++;
    fclose(f);
    snprintf(p, sizeof p, "%s/ref_%s.u8", dir, name);
    f = fopen(p, "rb");
    if (!f) return -1;
    r->pix = malloc((size_t)r->n * 64 * 64 * 3 + 1);
    size_t got = fread(r->pix, 1, (size_t)r->n * 64 * 64 * 3, f);
    fclose(f);
    return got == (size_t)r->n * 64 * 64 * 3 ? 0 : -1;
}

// Compares a dataset with the oracle's reading: labels, boxes, pixels (max |difference|).
static int compare(const char *what, const rcv_dataset *d, const ref_set *r, int with_boxes, int tol) {
    CHECK(d->n == r->n && d->h == 64 && d->w == 64 && d->c == 3, "%s: %d images %dx%dx%d, expected %d of 64x64x3", what,
          d->n, d->c, d->h, d->w, r->n);
    if (d->n != r->n) return -1;
    int bad_lab = 0, maxd = 0, worst = -1;
    double box_err = 0;
    for (int i = 0; i < d->n; i++) {
        bad_lab += d->labels[i] != r->labels[i];
        if (with_boxes)
            for (int k = 0; k < 4; k++) box_err = fmax(box_err, fabs(d->boxes[4 * i + k] - r->boxes[i][k]));
        for (int j = 0; j < 64 * 64 * 3; j++) {
            int df = abs((int)d->pixels[(size_t)i * 12288 + j] - (int)r->pix[(size_t)i * 12288 + j]);
            if (df > maxd) maxd = df, worst = i;
        }
    }
    CHECK(bad_lab == 0, "%s: %d labels differ", what, bad_lab);
    CHECK(!with_boxes || (d->boxes && box_err < 1e-4), "%s: boxes differ by %g", what, box_err);
    CHECK(with_boxes || !d->boxes, "%s: unexpected boxes", what);
    CHECK(maxd <= tol, "%s: pixels differ from PIL by %d (image %s), tolerance %d", what, maxd,
          worst >= 0 ? r->paths[worst] : "-", tol);
    printf("%s: %d images, labels equal, max box error %.2g, max pixel difference from PIL %d\n", what, d->n, box_err,
           maxd);
    return 0;
}

static int count_cache_files(void) {
    test_sh("ls %s/*.rcvpack 2>/dev/null | wc -l > %s/count.txt", cache, dir);
    char p[400];
    snprintf(p, sizeof p, "%s/count.txt", dir);
    FILE *f = fopen(p, "r");
    int n = -1;
    if (f && fscanf(f, "%d", &n) != 1) n = -1;
    if (f) fclose(f);
    return n;
}

// The one .rcvpack whose name starts with prefix.
static int cache_file(const char *prefix, char *out, size_t n) {
    char p[400];
    snprintf(p, sizeof p, "%s/which.txt", dir);
    if (test_sh("ls %s/%s*.rcvpack > %s", cache, prefix, p)) return -1;
    FILE *f = fopen(p, "r");
    int ok = f && fgets(out, (int)n, f);
    if (f) fclose(f);
    if (!ok) return -1;
    out[strcspn(out, "\n")] = 0;
    return 0;
}

static void test_tiny(void) {
    ref_set *tr = calloc(1, sizeof *tr), *va = calloc(1, sizeof *va), *te = calloc(1, sizeof *te);
    CHECK(read_ref("train", tr) == 0 && read_ref("val", va) == 0 && read_ref("test", te) == 0, "oracle files");
    rcv_source_opts o;
    rcv_source_opts_defaults(&o);
    o.cache_dir = cache;
    rcv_dataset d;

    // First open decodes; JPEG tolerance 0 (PIL decodes with the same libjpeg-turbo here),
    // 1 for the one image both resize.
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0, "%s", rcv_error());
    CHECK(d.from_cache == 0, "first open must decode");
    compare("train", &d, tr, 1, 1);
    FILE *f;
    char p[400], line[400];
    snprintf(p, sizeof p, "%s/ref_classes.txt", dir);
    f = fopen(p, "r");
    int k = 0, names_ok = d.n_classes == 5 && d.class_ids;
    while (f && fgets(line, sizeof line, f) && k < d.n_classes) {
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        *tab = 0;
        names_ok &= !strcmp(d.class_ids[k], line) && !strcmp(d.class_names[k], tab + 1);
        k++;
    }
    if (f) fclose(f);
    CHECK(names_ok && k == 5, "class ids and words.txt names in sorted-wnid order");
    // Apart from the resized image, exact.
    int exact = 1;
    for (int i = 0; i < d.n; i++)
        if (!strstr(tr->paths[i], "_2.JPEG") || d.labels[i] != 4)
            exact &= !memcmp(d.pixels + (size_t)i * 12288, tr->pix + (size_t)i * 12288, 12288);
    CHECK(exact, "JPEGs at 64x64 (RGB, gray, CMYK) decode exactly as PIL");
    rcv_dataset_free(&d);
    CHECK(count_cache_files() == 1, "one cache file written");
    char cpath[400];
    CHECK(cache_file("tiny-train", cpath, sizeof cpath) == 0, "cache named tiny-train-*.rcvpack");
    struct stat st0, st1;
    stat(cpath, &st0);

    // Second open maps the cache: no decoding, the file untouched.
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0, "%s", rcv_error());
    CHECK(d.from_cache == 1 && d.map, "second open must map the cache");
    compare("train (cache)", &d, tr, 1, 1);
    stat(cpath, &st1);
    CHECK(st0.st_ino == st1.st_ino && st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec && st0.st_mtime == st1.st_mtime,
          "cache file rewritten on a cache hit");
    rcv_dataset_free(&d);

    // Val (boxes from val_annotations.txt) and unlabeled test.
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_VAL, &o) == 0, "%s", rcv_error());
    compare("val", &d, va, 1, 0);
    rcv_dataset_free(&d);
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TEST, &o) == 0, "%s", rcv_error());
    compare("test (unlabeled, label -1)", &d, te, 0, 0);
    rcv_dataset_free(&d);

    // A changed source file: the cache is rebuilt and shows the new content. Copy image 1 of
    // the first class over image 0 (another size and mtime).
    int i0 = 0, i1 = 1;
    test_sh("cp %s %s && touch -d '+1 second' %s", tr->paths[i1], tr->paths[i0], tr->paths[i0]);
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0, "%s", rcv_error());
    CHECK(d.from_cache == 0, "a changed source file must rebuild the cache");
    CHECK(d.n == tr->n && !memcmp(d.pixels, tr->pix + 12288, 12288), "rebuilt cache has the new image");
    rcv_dataset_free(&d);
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0 && d.from_cache == 1, "rebuilt cache reused");
    rcv_dataset_free(&d);
    CHECK(count_cache_files() == 3, "rebuild replaces the cache file (train, val, test)");

    // A truncated cache, then a damaged byte in its pixels: rebuilt with a warning.
    stat(cpath, &st0);
    test_sh("truncate -s %lld %s", (long long)st0.st_size / 2, cpath);
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0 && d.from_cache == 0, "truncated cache rebuilt");
    rcv_dataset_free(&d);
    test_sh("printf '\\x5a' | dd of=%s bs=1 seek=%lld conv=notrunc status=none", cpath, (long long)st0.st_size - 100);
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0 && d.from_cache == 0, "damaged cache rebuilt");
    CHECK(d.n == tr->n && !memcmp(d.pixels + (size_t)(d.n - 1) * 12288, tr->pix + (size_t)(d.n - 1) * 12288, 12288),
          "rebuilt cache has the right pixels");
    rcv_dataset_free(&d);
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0 && d.from_cache == 1, "and is reused");
    rcv_dataset_free(&d);

    // A truncated JPEG: an error naming it; skipped with skip_bad (the others keep their labels).
    int bad = 7;
    test_sh("truncate -s $(( $(stat -c %%s %s) * 2 / 3 )) %s", va->paths[bad], va->paths[bad]); // mid-scan
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_VAL, &o) != 0, "truncated JPEG accepted");
    CHECK(strstr(rcv_error(), va->paths[bad]) != NULL, "message names the file: %s", rcv_error());
    printf("truncated JPEG: %s\n", rcv_error());
    o.skip_bad = 1;
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_VAL, &o) == 0, "%s", rcv_error());
    int same = d.n == va->n - 1;
    for (int i = 0, j = 0; same && i < va->n; i++) {
        if (i == bad) continue;
        same &= d.labels[j] == va->labels[i] && !memcmp(d.pixels + (size_t)j * 12288, va->pix + (size_t)i * 12288, 12288) &&
                d.boxes[4 * j] == va->boxes[i][0];
        j++;
    }
    CHECK(same, "skip-bad drops exactly the truncated image (%d of %d left)", d.n, va->n);
    rcv_dataset_free(&d);
    o.skip_bad = 0;
    free(tr->pix), free(va->pix), free(te->pix);
    free(tr), free(va), free(te);
}

// A sample transform that uses its rng, the pixels and the boxes, to check that the loader
// gives each sample the stream rcv_rng_fork(rng, position).
static void noisy_flip(void *ctx, rcv_rng *r, float *x, int h, int w, int c, float *boxes, int n_boxes) {
    float amp = *(const float *)ctx;
    if (rcv_rng_uniform(r) < 0.5f) {
        for (int y = 0; y < h; y++)
            for (int a = 0, b = w - 1; a < b; a++, b--)
                for (int ch = 0; ch < c; ch++) {
                    float t = x[(y * w + a) * c + ch];
                    x[(y * w + a) * c + ch] = x[(y * w + b) * c + ch];
                    x[(y * w + b) * c + ch] = t;
                }
        for (int i = 0; i < n_boxes; i++) {
            float x0 = boxes[4 * i];
            boxes[4 * i] = (float)w - boxes[4 * i + 2];
            boxes[4 * i + 2] = (float)w - x0;
        }
    }
    for (int j = 0; j < h * w * c; j++) x[j] += amp * (rcv_rng_uniform(r) - 0.5f);
}

static void test_loader(void) {
    rcv_source_opts o;
    rcv_source_opts_defaults(&o);
    o.cache_dir = cache;
    rcv_dataset d;
    CHECK(rcv_tinyimagenet_load(&d, tiny, RCV_SPLIT_TRAIN, &o) == 0, "%s", rcv_error());
    int batch = 8, steps = d.n / batch;
    size_t per = 64 * 64 * 3;
    int *perm = malloc((size_t)d.n * sizeof(int));
    rcv_rng pr, sr;
    rcv_rng_init(&pr, 5);
    rcv_rng_permutation(&pr, perm, d.n);
    rcv_rng_init(&sr, 77);
    float amp = 0.1f;
    // Oracle: each sample built alone from the dataset and its own stream.
    float *want = malloc((size_t)steps * batch * per * sizeof(float)), *wbox = malloc((size_t)steps * batch * 16);
    for (int t = 0; t < steps * batch; t++) {
        for (size_t j = 0; j < per; j++) want[t * per + j] = d.pixels[(size_t)perm[t] * per + j] / 255.0f;
        memcpy(wbox + 4 * t, d.boxes + 4 * perm[t], 16);
        rcv_rng r = rcv_rng_fork(&sr, (uint64_t)t);
        noisy_flip(&amp, &r, want + t * per, 64, 64, 3, wbox + 4 * t, 1);
    }
    float *x = malloc((size_t)batch * per * sizeof(float)), box[8 * 4];
    int32_t lab[8];
    for (int threads = 0; threads <= 3; threads++) {
        rcv_loader *L;
        CHECK(rcv_loader_open(&L, &d, batch, perm, steps, noisy_flip, &amp, &sr, threads) == 0, "%s", rcv_error());
        int diff = 0;
        for (int s = 0; s < steps; s++) {
            CHECK(rcv_loader_next(L, x, lab, box) == 0, "%s", rcv_error());
            diff += memcmp(x, want + (size_t)s * batch * per, (size_t)batch * per * sizeof(float)) != 0;
            diff += memcmp(box, wbox + 4 * s * batch, sizeof box) != 0;
            for (int i = 0; i < batch; i++) diff += lab[i] != d.labels[perm[s * batch + i]];
        }
        CHECK(rcv_loader_next(L, x, lab, box) != 0, "reading past the last batch must fail");
        rcv_loader_close(L);
        CHECK(diff == 0, "loader with %d threads: %d batches differ from the per-sample oracle", threads, diff);
    }
    printf("loader: %d batches of %d bit-identical to the per-sample oracle with 0, 1, 2 and 3 threads\n", steps, batch);
    // Closing early (training stopped mid-epoch) must not hang.
    rcv_loader *L;
    CHECK(rcv_loader_open(&L, &d, batch, perm, steps, noisy_flip, &amp, &sr, 2) == 0, "%s", rcv_error());
    CHECK(rcv_loader_next(L, x, lab, NULL) == 0, "%s", rcv_error());
    rcv_loader_close(L);
    free(want), free(wbox), free(x), free(perm);
    rcv_dataset_free(&d);
}

static void test_specs(void) {
    char spec[600];
    rcv_dataset d;
    ref_set *r = calloc(1, sizeof *r);
    setenv("RCV_CACHE_DIR", cache, 1);
    // Image folder: classes from train/, val/ lacks one class and keeps train's labels.
    snprintf(spec, sizeof spec, "folder:%s/folder:size=64", dir);
    CHECK(read_ref("folder_train", r) == 0, "oracle");
    CHECK(rcv_data_open(spec, 1, &d) == 0, "%s", rcv_error());
    compare("folder train (40x40 PNG/JPEG resized to 64)", &d, r, 0, 1);
    CHECK(d.n_classes == 3 && !strcmp(d.class_names[0], "Moth") && !strcmp(d.class_names[2], "zebra"),
          "folder classes sorted like ImageFolder");
    rcv_dataset_free(&d);
    free(r->pix);
    CHECK(read_ref("folder_val", r) == 0, "oracle");
    CHECK(rcv_data_open(spec, 0, &d) == 0, "%s", rcv_error());
    compare("folder val", &d, r, 0, 1);
    CHECK(d.n_classes == 3, "val keeps train's 3 classes");
    rcv_dataset_free(&d);
    free(r->pix);

    // Tiny-ImageNet-C: test split only.
    CHECK(read_ref("tinyc_fog_3", r) == 0, "oracle");
    snprintf(spec, sizeof spec, "tiny-imagenet-c:%s/tinyc:fog:3", dir);
    CHECK(rcv_data_open(spec, 0, &d) == 0, "%s", rcv_error());
    compare("tiny-imagenet-c fog/3", &d, r, 0, 0);
    CHECK(d.n_classes == 5 && d.class_ids && !strcmp(d.class_ids[0], "n08995556"), "-C classes sorted wnids");
    rcv_dataset_free(&d);
    free(r->pix);
    free(r);
    CHECK(rcv_data_open(spec, 1, &d) != 0 && strstr(rcv_error(), "only a test split"), "-C train split refused");
    snprintf(spec, sizeof spec, "tiny-imagenet-c:%s/tinyc:snow:3", dir);
    CHECK(rcv_data_open(spec, 0, &d) != 0 && strstr(rcv_error(), "fog, gaussian_noise"), "unknown corruption: %s",
          rcv_error());
    snprintf(spec, sizeof spec, "tiny-imagenet-c:%s/tinyc:fog:9", dir);
    CHECK(rcv_data_open(spec, 0, &d) != 0 && strstr(rcv_error(), "1..5"), "bad severity: %s", rcv_error());
    snprintf(spec, sizeof spec, "tiny-imagenet:%s:sise=32", tiny);
    CHECK(rcv_data_open(spec, 0, &d) != 0 && strstr(rcv_error(), "sise=32"), "unknown option: %s", rcv_error());
    CHECK(rcv_data_open("imagenet:/x", 0, &d) != 0 && strstr(rcv_error(), "unknown source 'imagenet'"), "%s",
          rcv_error());
    // size=32 and gray through the spec: shapes follow, the cache is separate.
    snprintf(spec, sizeof spec, "tiny-imagenet:%s:size=32:gray:skip-bad", tiny);
    CHECK(rcv_data_open(spec, 0, &d) == 0 && d.h == 32 && d.w == 32 && d.c == 1, "size=32:gray: %s", rcv_error());
    rcv_dataset_free(&d);
    snprintf(spec, sizeof spec, "tiny-imagenet:%s/nothing", dir);
    CHECK(rcv_data_open(spec, 1, &d) != 0 && strstr(rcv_error(), "nothing"), "missing dir: %s", rcv_error());
}

int main(void) {
    snprintf(dir, sizeof dir, "%s", test_tmpdir("tinyimagenet"));
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(tiny, sizeof tiny, "%s/tiny", dir);
    if (test_sh("/usr/bin/python3 -c 'import PIL, numpy, torch' 2>/dev/null")) {
        printf("skipping: /usr/bin/python3 with PIL, numpy and torch is needed to write the test trees\n");
        return 0;
    }
    if (test_sh("/usr/bin/python3 tests/oracle/make_tiny_imagenet.py %s > /dev/null", dir)) {
        CHECK(0, "tests/oracle/make_tiny_imagenet.py failed");
        return test_done();
    }
    test_tiny();
    test_loader();
    test_specs();
    test_sh("rm -rf %s", dir);
    return test_done();
}
