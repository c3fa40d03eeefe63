// Data and images: the real Fashion-MNIST test set against a gzip+struct+numpy reader
// (tests/oracle/idx_ref.py), corrupt IDX files, and JPEG/PNG decoding, resizing, gray
// conversion and PNG writing against PIL and torch (tests/oracle/image_ref.py).
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "robustcv/data.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/image.h"
#include "testutil.h"

static const char *dir;

// --- Fashion-MNIST ---

static void test_fashion_mnist(void) {
    const char *root = RCV_FASHION_MNIST_DIR;
    char ip[512], lp[512];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", root);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", root);
    if (access(ip, R_OK) != 0) {
        printf("skipping Fashion-MNIST checks: %s not found\n", ip);
        return;
    }
    rcv_dataset d;
    CHECK(rcv_fashion_mnist_load(&d, NULL, 0) == 0, "%s", rcv_error());
    if (!d.pixels) return;
    CHECK(d.n == 10000 && d.h == 28 && d.w == 28 && d.c == 1 && d.n_classes == 10, "dims %d %dx%dx%d k=%d", d.n, d.h,
          d.w, d.c, d.n_classes);
    CHECK(!strcmp(d.class_names[0], "T-shirt/top") && !strcmp(d.class_names[9], "Ankle boot"), "class names");
    CHECK(d.source && strstr(d.source, "t10k-images"), "source");
    int counts[10];
    rcv_dataset_class_counts(&d, counts);

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/idx_ref.py %s %s", ip, lp);
    FILE *p = popen(cmd, "r");
    char line[512];
    int n_img = 0, got_stats = 0;
    while (p && fgets(line, sizeof line, p)) {
        int n, h, w, i, lab, p0, p100, p300, plast, c[10];
        long long sum;
        double m, s;
        if (sscanf(line, "%d %d %d", &n, &h, &w) == 3 && strncmp(line, "img", 3)) {
            CHECK(n == d.n && h == d.h && w == d.w, "oracle dims %d %d %d", n, h, w);
        } else if (sscanf(line, "counts %d %d %d %d %d %d %d %d %d %d", &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6],
                          &c[7], &c[8], &c[9]) == 10) {
            CHECK(!memcmp(c, counts, sizeof c), "class counts differ from the oracle's");
            CHECK(c[0] == 1000 && c[9] == 1000, "1000 per class");
        } else if (sscanf(line, "img %d %d %lld %d %d %d %d", &i, &lab, &sum, &p0, &p100, &p300, &plast) == 7) {
            const uint8_t *px = d.pixels + (size_t)i * 784;
            long long s2 = 0;
            for (int k = 0; k < 784; k++) s2 += px[k];
            CHECK(d.labels[i] == lab && s2 == sum && px[0] == p0 && px[100] == p100 && px[300] == p300 &&
                      px[783] == plast,
                  "image %d: label %d sum %lld vs oracle %d %lld", i, d.labels[i], s2, lab, sum);
            n_img++;
        } else if (sscanf(line, "stats %lf %lf", &m, &s) == 2) {
            float mean, std;
            rcv_dataset_mean_std(&d, &mean, &std);
            CHECK(fabs(mean - m) < 1e-6 && fabs(std - s) < 1e-6, "mean/std %g %g vs %g %g", mean, std, m, s);
            got_stats = 1;
        }
    }
    CHECK(p && pclose(p) == 0 && n_img == 11 && got_stats, "oracle ran (%d images)", n_img);

    // Batches: [0,1] floats in NHWC order with labels.
    int idx[3] = {0, 9999, 5};
    float *x = malloc(3 * 784 * sizeof(float));
    int32_t lab[3];
    rcv_dataset_batch(&d, idx, 3, x, lab);
    int bad = 0;
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 784; k++) bad += x[i * 784 + k] != d.pixels[(size_t)idx[i] * 784 + k] / 255.0f;
    CHECK(bad == 0 && lab[0] == d.labels[0] && lab[1] == d.labels[9999] && lab[2] == d.labels[5], "batch");
    free(x);

    // Shuffle: a permutation, reproducible from the seed.
    int *perm = malloc(d.n * sizeof(int)), *perm2 = malloc(d.n * sizeof(int)), *seen = calloc(d.n, sizeof(int));
    rcv_rng r1, r2;
    rcv_rng_init(&r1, 42);
    rcv_rng_init(&r2, 42);
    rcv_dataset_shuffle(&r1, perm, d.n);
    rcv_dataset_shuffle(&r2, perm2, d.n);
    int dup = 0;
    for (int i = 0; i < d.n; i++) dup += seen[perm[i]]++ != 0;
    CHECK(dup == 0 && !memcmp(perm, perm2, d.n * sizeof(int)) && perm[0] + perm[1] + perm[2] != 3, "shuffle");
    free(perm);
    free(perm2);
    free(seen);
    rcv_dataset_free(&d);

    CHECK(rcv_fashion_mnist_load(&d, "/nonexistent/fmnist", 1) == -1 && strstr(rcv_error(), "/nonexistent/fmnist") &&
              strstr(rcv_error(), "train-images"),
          "missing dir: %s", rcv_error());
}

// --- corrupt IDX files ---

static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static void write_file(const char *path, const void *p, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, p, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

// images: n x h x w with `data` payload bytes actually written; labels: nl labels.
static void write_idx(const char *ip, const char *lp, uint32_t magic, int n, int h, int w, size_t data, int nl, int gz) {
    size_t len = 16 + data;
    uint8_t *b = calloc(len, 1);
    put32(b, magic);
    put32(b + 4, (uint32_t)n);
    put32(b + 8, (uint32_t)h);
    put32(b + 12, (uint32_t)w);
    for (size_t i = 16; i < len; i++) b[i] = (uint8_t)(i * 7);
    write_file(ip, b, len, gz);
    free(b);
    uint8_t *l = calloc(8 + (size_t)nl, 1);
    put32(l, 0x801);
    put32(l + 4, (uint32_t)nl);
    for (int i = 0; i < nl; i++) l[8 + i] = (uint8_t)(i % 3);
    write_file(lp, l, 8 + (size_t)nl, 0);
    free(l);
}

static void expect_idx(const char *what, const char *ip, const char *lp, const char *names, const char *needle) {
    rcv_dataset d;
    int rc = rcv_idx_load(&d, ip, lp);
    CHECK(rc == -1 && strstr(rcv_error(), names) && strstr(rcv_error(), needle), "%s: rc %d: %s", what, rc,
          rc ? rcv_error() : "(accepted)");
    if (rc == 0) rcv_dataset_free(&d);
}

static void test_idx_errors(void) {
    char ip[512], lp[512], gp[512];
    snprintf(ip, sizeof ip, "%s/img-idx3", dir);
    snprintf(lp, sizeof lp, "%s/lab-idx1", dir);
    snprintf(gp, sizeof gp, "%s/img-idx3.gz", dir);

    // A good small pair, raw and gzipped.
    write_idx(ip, lp, 0x803, 5, 4, 3, 60, 5, 0);
    rcv_dataset d;
    CHECK(rcv_idx_load(&d, ip, lp) == 0 && d.n == 5 && d.h == 4 && d.w == 3 && d.n_classes == 3 &&
              d.pixels[0] == (uint8_t)(16 * 7) && !strcmp(d.class_names[2], "2"),
          "small raw: %s", rcv_error());
    rcv_dataset_free(&d);
    write_idx(gp, lp, 0x803, 5, 4, 3, 60, 5, 1);
    CHECK(rcv_idx_load(&d, gp, lp) == 0 && d.n == 5 && d.pixels[59] == (uint8_t)(75 * 7), "small gz: %s", rcv_error());
    rcv_dataset_free(&d);

    write_idx(ip, lp, 0x801, 5, 4, 3, 60, 5, 0);
    expect_idx("bad magic", ip, lp, ip, "magic number 0x00000801, expected 0x00000803");
    write_idx(ip, lp, 0x803, 5, 4, 3, 50, 5, 0);
    expect_idx("short data", ip, lp, ip, "truncated: expected 60 bytes of data after the header, got 50");
    write_idx(gp, lp, 0x803, 5, 4, 3, 50, 5, 1);
    expect_idx("short gz data", gp, lp, gp, "expected 60 bytes");
    write_idx(ip, lp, 0x803, 5, 4, 3, 60, 4, 0);
    expect_idx("count mismatch", ip, lp, lp, "has 5 images but");
    write_idx(ip, lp, 0x803, 0, 4, 3, 0, 0, 0);
    expect_idx("zero images", ip, lp, ip, "dimension 0 is 0");
    write_idx(ip, lp, 0x803, 100000, 100000, 100000, 0, 0, 0);
    expect_idx("absurd dims", ip, lp, ip, "more than");
    write_file(ip, "\0\0\x08\x03\0\0", 6, 0);
    expect_idx("short header", ip, lp, ip, "expected a 16-byte IDX header, got 6 bytes");
    char missing[600];
    snprintf(missing, sizeof missing, "%s/absent-idx3", dir);
    expect_idx("missing", missing, lp, missing, "cannot open");

    // A gzip stream cut in the middle, and one with flipped bytes.
    write_idx(gp, lp, 0x803, 5, 40, 30, 6000, 5, 1);
    uint8_t *b;
    size_t n;
    if (rcv_file_read(gp, &b, &n) == 0) {
        write_file(gp, b, n / 2, 0);
        expect_idx("cut gzip", gp, lp, gp, "");
        for (size_t i = n / 3; i < n / 3 + 8; i++) b[i] ^= 0x5a;
        write_file(gp, b, n, 0);
        expect_idx("corrupt gzip", gp, lp, gp, "");
        free(b);
    }
}

// --- images ---

static uint8_t *read_raw(const char *d, const char *name, size_t *n) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", d, name);
    uint8_t *b = NULL;
    if (rcv_file_read(p, &b, n)) return NULL;
    return b;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void check_decode(const char *name, int tol) {
    char p[600], e[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    snprintf(e, sizeof e, "%s.rgb", name);
    rcv_image img;
    int rc = rcv_image_load(p, &img);
    CHECK(rc == 0, "%s", rcv_error());
    if (rc) return;
    size_t n;
    uint8_t *want = read_raw(dir, e, &n);
    CHECK(want && img.c == 3 && img.w == 37 && img.h == 23 && n == (size_t)37 * 23 * 3, "%s: %dx%dx%d", name, img.w,
          img.h, img.c);
    if (want && n == (size_t)img.w * img.h * 3) {
        int md = max_diff(img.pix, want, n);
        CHECK(md <= tol, "%s: max difference from PIL %d, tolerance %d", name, md, tol);
        if (tol) printf("%s: max difference from PIL %d\n", name, md);
    }
    free(want);
    rcv_image_free(&img);
}

static void expect_bad_image(const char *what, const char *path, const char *needle) {
    rcv_image img;
    int rc = rcv_image_load(path, &img);
    CHECK(rc == -1 && strstr(rcv_error(), path) && strstr(rcv_error(), needle), "%s: rc %d: %s", what, rc,
          rc ? rcv_error() : "(accepted)");
    if (rc == 0) rcv_image_free(&img);
    CHECK(img.pix == NULL, "%s: pixels left after failure", what);
}

static void test_images(void) {
    int rc = test_sh("/usr/bin/python3 tests/oracle/image_ref.py make %s", dir);
    CHECK(rc == 0, "image oracle failed (%d)", rc);
    if (rc) return;
    // PNG: exact. JPEG: the same libjpeg-turbo under PIL, so exact as well (tolerance 2).
    check_decode("rgb.png", 0);
    check_decode("gray.png", 0);
    check_decode("pal.png", 0);
    check_decode("rgba.png", 0);
    check_decode("la.png", 0);
    check_decode("rgb.jpg", 2);
    check_decode("rgb444.jpg", 2);
    check_decode("gray.jpg", 2);
    check_decode("cmyk.jpg", 2);
    check_decode("progressive.jpg", 2);

    // Magic bytes, not names: a PNG called .jpg.
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/rgb.png", dir);
    snprintf(b, sizeof b, "%s/really_png.jpg", dir);
    test_sh("cp %s %s", a, b);
    rcv_image img, src;
    CHECK(rcv_image_load(b, &img) == 0 && img.w == 37, "png named .jpg: %s", rcv_error());
    rcv_image_free(&img);

    // 16-bit gray: scaled to 8 bits.
    snprintf(a, sizeof a, "%s/gray16.png", dir);
    size_t n16;
    uint8_t *ramp = read_raw(dir, "gray16.u16", &n16);
    if (rcv_image_load(a, &img) == 0 && ramp) {
        int md = 0;
        for (size_t i = 0; i < n16 / 2; i++) {
            uint16_t v;
            memcpy(&v, ramp + 2 * i, 2);
            int want = (int)((v * 255u + 32767u) / 65535u);
            for (int k = 0; k < 3; k++) md = abs(img.pix[3 * i + k] - want) > md ? abs(img.pix[3 * i + k] - want) : md;
        }
        CHECK(md <= 1, "16-bit PNG max difference %d", md);
        rcv_image_free(&img);
    } else CHECK(0, "16-bit PNG: %s", rcv_error());
    free(ramp);

    // Resize (torch interpolate bilinear, align_corners=False) and gray (PIL convert("L")).
    snprintf(a, sizeof a, "%s/rgb.png", dir);
    CHECK(rcv_image_load(a, &src) == 0, "%s", rcv_error());
    int sizes[4][2] = {{50, 17}, {11, 9}, {37, 23}, {74, 46}};
    for (int s = 0; s < 4 && src.pix; s++) {
        rcv_image r;
        rcv_image_resize_bilinear(&src, sizes[s][0], sizes[s][1], &r);
        char nm[64];
        snprintf(nm, sizeof nm, "resize_%dx%d.rgb", sizes[s][0], sizes[s][1]);
        size_t n;
        uint8_t *want = read_raw(dir, nm, &n);
        CHECK(want && n == (size_t)r.w * r.h * 3 && max_diff(r.pix, want, n) <= 1, "%s: max diff %d", nm,
              want ? max_diff(r.pix, want, n) : -1);
        if (s == 2) CHECK(!memcmp(r.pix, src.pix, n), "identity resize");
        free(want);
        rcv_image_free(&r);
    }
    if (src.pix) {
        rcv_image gray, back;
        rcv_image_to_gray(&src, &gray);
        size_t n;
        uint8_t *want = read_raw(dir, "rgb.gray", &n);
        CHECK(want && gray.c == 1 && n == (size_t)gray.w * gray.h && !memcmp(gray.pix, want, n), "gray vs PIL");
        free(want);
        rcv_image_to_rgb(&gray, &back);
        CHECK(back.c == 3 && back.pix[3] == gray.pix[1] && back.pix[4] == gray.pix[1] && back.pix[5] == gray.pix[1],
              "gray to rgb");

        // PNG writing, read back by PIL and by us, for 1, 3 and 4 channels.
        rcv_image rgba;
        rcv_image_alloc(&rgba, src.w, src.h, 4);
        for (size_t i = 0; i < (size_t)src.w * src.h; i++) {
            memcpy(rgba.pix + 4 * i, src.pix + 3 * i, 3);
            rgba.pix[4 * i + 3] = (uint8_t)(i * 13);
        }
        const rcv_image *imgs[3] = {&gray, &src, &rgba};
        for (int k = 0; k < 3; k++) {
            char png[600], raw[600];
            snprintf(png, sizeof png, "%s/out%d.png", dir, k);
            snprintf(raw, sizeof raw, "%s/out%d.raw", dir, k);
            const rcv_image *im = imgs[k];
            size_t bytes = (size_t)im->w * im->h * im->c;
            CHECK(rcv_png_write(png, im) == 0, "%s", rcv_error());
            CHECK(rcv_png_write(png, im) == 0, "overwrite: %s", rcv_error());
            rcv_file_write_atomic(raw, im->pix, bytes);
            rc = test_sh("/usr/bin/python3 tests/oracle/image_ref.py check %s %s %d %d %d", png, raw, im->w, im->h, im->c);
            CHECK(rc == 0, "PIL disagrees with our %d-channel PNG", im->c);
            rcv_image rb;
            CHECK(rcv_image_load(png, &rb) == 0 && rb.c == 3, "%s", rcv_error());
            if (k == 1 && rb.pix) CHECK(!memcmp(rb.pix, src.pix, bytes), "our PNG round trip");
            rcv_image_free(&rb);
        }
        char bad[600];
        snprintf(bad, sizeof bad, "%s/no/dir/x.png", dir);
        CHECK(rcv_png_write(bad, &src) == -1 && strstr(rcv_error(), bad), "unwritable: %s", rcv_error());
        rcv_image two = {src.w, src.h, 2, src.pix};
        CHECK(rcv_png_write(a, &two) == -1 && strstr(rcv_error(), "2 channels"), "2 channels: %s", rcv_error());
        rcv_image_free(&rgba);
        rcv_image_free(&gray);
        rcv_image_free(&back);
    }
    rcv_image_free(&src);

    // Corrupt files: truncated, garbage, empty, flipped bytes.
    const char *names[2] = {"rgb.png", "rgb.jpg"};
    for (int k = 0; k < 2; k++) {
        size_t n;
        uint8_t *buf = read_raw(dir, names[k], &n);
        if (!buf) continue;
        char p[600];
        snprintf(p, sizeof p, "%s/cut_%s", dir, names[k]);
        write_file(p, buf, n / 2, 0);
        expect_bad_image("truncated", p, k ? "JPEG" : "PNG");
        write_file(p, buf, 40, 0);
        expect_bad_image("header only", p, k ? "JPEG" : "PNG");
        // Every truncation and many byte flips: an error or an image, never a crash (ASan run).
        for (size_t cut = 0; cut < n; cut += 7) {
            write_file(p, buf, cut, 0);
            if (rcv_image_load(p, &img) == 0) rcv_image_free(&img);
        }
        uint64_t s = 7;
        for (int it = 0; it < 100; it++) {
            uint8_t *c = malloc(n);
            memcpy(c, buf, n);
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            c[(s >> 33) % n] ^= (uint8_t)(1 + (s >> 20) % 255);
            write_file(p, c, n, 0);
            if (rcv_image_load(p, &img) == 0) rcv_image_free(&img);
            free(c);
        }
        free(buf);
    }
    snprintf(a, sizeof a, "%s/garbage.png", dir);
    write_file(a, "hello world, not an image", 25, 0);
    expect_bad_image("garbage", a, "not a JPEG or PNG file (25 bytes, starting 68 65 6c");
    write_file(a, "", 0, 0);
    expect_bad_image("empty", a, "(empty)");
    snprintf(a, sizeof a, "%s/absent.png", dir);
    expect_bad_image("absent", a, "cannot open");
}

int main(void) {
    dir = test_tmpdir("data");
    test_fashion_mnist();
    test_idx_errors();
    test_images();
    test_sh("rm -rf %s", dir);
    return test_done();
}
