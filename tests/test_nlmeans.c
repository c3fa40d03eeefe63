// NL-means against OpenCV (tests/oracle/nlmeans_ref.py, Debian python3-opencv): the one-plane
// denoiser bit for bit (cv2.fastNlMeansDenoising), the 8-bit RGB -> Lab conversion bit for bit,
// Lab -> RGB within 1, and fastNlMeansDenoisingColored within 1 gray level in mean absolute
// difference (the bar; measured ~0.04). Also: in-place calls, thread-count independence,
// bad arguments.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "robustcv/augment.h"
#include "robustcv/error.h"
#include "testutil.h"

#define NP 5 // parameter sets in tests/oracle/nlmeans_ref.py

static uint8_t *slurp(const char *dir, const char *name, size_t n) {
    char p[1100];
    snprintf(p, sizeof p, "%.800s/%.200s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    uint8_t *b = malloc(n);
    size_t got = fread(b, 1, n, f);
    fclose(f);
    if (got != n) {
        free(b);
        return NULL;
    }
    return b;
}

int main(void) {
    const char *dir = test_tmpdir("nlmeans");
    int rc = test_sh("/usr/bin/python3 tests/oracle/nlmeans_ref.py make %s", dir);
    if (rc == 3) {
        printf("SKIP: OpenCV oracle unavailable (install python3-opencv: scripts/deps.sh)\n");
        return 0;
    }
    CHECK(rc == 0, "nlmeans_ref.py failed (%d)", rc);
    if (rc) return test_done();
    float P[NP][4];
    char p[1024];
    snprintf(p, sizeof p, "%s/params.txt", dir);
    FILE *f = fopen(p, "r");
    for (int i = 0; i < NP; i++)
        if (fscanf(f, "%f %f %f %f", &P[i][0], &P[i][1], &P[i][2], &P[i][3]) != 4) CHECK(0, "params.txt line %d", i);
    fclose(f);

    // Lab conversions on 4096 colours.
    uint8_t *rgb = slurp(dir, "lab.rgb", 4096 * 3), *lab = slurp(dir, "lab.lab", 4096 * 3), out[4096 * 3];
    rcv_rgb_to_lab8(rgb, out, 4096);
    int bad = 0;
    for (int i = 0; i < 4096 * 3; i++) bad += out[i] != lab[i];
    CHECK(bad == 0, "RGB -> Lab: %d of %d bytes differ from cv2 (expected bit-exact)", bad, 4096 * 3);
    uint8_t *l2 = slurp(dir, "lab2.lab", 4096 * 3), *r2 = slurp(dir, "lab2.rgb", 4096 * 3);
    rcv_lab8_to_rgb(l2, out, 4096);
    int mx = 0;
    bad = 0;
    for (int i = 0; i < 4096 * 3; i++) {
        int e = abs(out[i] - r2[i]);
        bad += e != 0;
        if (e > mx) mx = e;
    }
    CHECK(mx <= 1 && bad < 4096 * 3 / 10, "Lab -> RGB: max diff %d, %d bytes differ (expected <= 1, < 10%%)", mx, bad);
    printf("Lab: forward exact; back to RGB max diff %d, %d/%d bytes off by one\n", mx, bad, 4096 * 3);
    free(rgb), free(lab), free(l2), free(r2);

    // One plane: bit-exact.
    uint8_t *g = slurp(dir, "gray.u8", 4096), go[4096];
    for (int q = 0; q < NP; q++) {
        snprintf(p, sizeof p, "gray_p%d.u8", q);
        uint8_t *ref = slurp(dir, p, 4096);
        CHECK(rcv_nlmeans(g, go, 64, 64, 1, P[q][0], (int)P[q][2], (int)P[q][3]) == 0, "%s", rcv_error());
        int diff = 0;
        for (int i = 0; i < 4096; i++) diff += go[i] != ref[i];
        CHECK(diff == 0, "gray NL-means (h %g, windows %g/%g): %d of 4096 pixels differ from cv2", P[q][0], P[q][2],
              P[q][3], diff);
        free(ref);
    }

    // Colour: 3 images x NP parameter sets.
    for (int k = 0; k < 3; k++) {
        int w, h;
        snprintf(p, sizeof p, "%s/img%d.shape", dir, k);
        f = fopen(p, "r");
        if (!f || fscanf(f, "%d %d", &w, &h) != 2) {
            CHECK(0, "img%d.shape", k);
            return test_done();
        }
        fclose(f);
        size_t n = (size_t)w * h * 3;
        snprintf(p, sizeof p, "img%d.rgb", k);
        uint8_t *im = slurp(dir, p, n), *o = malloc(n);
        for (int q = 0; q < NP; q++) {
            snprintf(p, sizeof p, "img%d_p%d.rgb", k, q);
            uint8_t *ref = slurp(dir, p, n);
            CHECK(rcv_nlmeans_colored(im, o, h, w, P[q][0], P[q][1], (int)P[q][2], (int)P[q][3]) == 0, "%s", rcv_error());
            double s = 0;
            int m = 0;
            for (size_t i = 0; i < n; i++) {
                int e = abs(o[i] - ref[i]);
                s += e;
                if (e > m) m = e;
            }
            double mad = s / n;
            CHECK(mad <= 1.0 && m <= 2, "img%d %dx%d params %g/%g/%g/%g: MAD %.4f, max %d vs cv2", k, w, h, P[q][0],
                  P[q][1], P[q][2], P[q][3], mad, m);
            printf("img%d %dx%d h %g hColor %g windows %g/%g: MAD %.4f, max |diff| %d vs cv2\n", k, w, h, P[q][0],
                   P[q][1], P[q][2], P[q][3], mad, m);
            free(ref);
        }
        // In place equals out of place; 1 and 2 threads give the same bytes.
        uint8_t *a = malloc(n), *b = malloc(n);
        memcpy(a, im, n);
        rcv_nlmeans_colored(a, a, h, w, 10, 10, 7, 21);
        rcv_nlmeans_colored(im, o, h, w, 10, 10, 7, 21);
        CHECK(!memcmp(a, o, n), "img%d: in-place result differs", k);
        int nt = omp_get_max_threads();
        omp_set_num_threads(nt > 1 ? 1 : 2);
        rcv_nlmeans_colored(im, b, h, w, 10, 10, 7, 21);
        omp_set_num_threads(nt);
        CHECK(!memcmp(b, o, n), "img%d: result depends on the thread count", k);
        free(a), free(b), free(im), free(o);
    }
    free(g);

    uint8_t tiny[12] = {0};
    CHECK(rcv_nlmeans_colored(tiny, tiny, 2, 2, 10, 10, 6, 21) == -1 && strstr(rcv_error(), "odd"),
          "even template window accepted: %s", rcv_error());
    CHECK(rcv_nlmeans(tiny, tiny, 2, 2, 3, 10, 7, 21) == -1 && strstr(rcv_error(), "channels"), "cn = 3 accepted");
    // Tiny images: reflect-101 borders still work when the windows exceed the image.
    uint8_t t3[3 * 3 * 3];
    for (int i = 0; i < 27; i++) t3[i] = (uint8_t)(i * 9);
    CHECK(rcv_nlmeans_colored(t3, t3, 3, 3, 10, 10, 7, 21) == 0, "3x3 image: %s", rcv_error());
    return test_done();
}
