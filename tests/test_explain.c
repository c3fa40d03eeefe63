// Explainability: CAM, Grad-CAM and Grad-CAM++ against tests/oracle/cam_ref.py (PyTorch twins with
// the same random weights; Grad-CAM/Grad-CAM++ from the PyPI grad-cam package, cross-checked there
// against hooks), within 1e-4 per pixel on maps in [0,1]; the bilinear resize against values worked
// out by hand; the jet colormap and overlay arithmetic by hand; PNG figures read back.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/draw.h"
#include "robustcv/error.h"
#include "robustcv/explain.h"
#include "robustcv/safetensors.h"
#include "testutil.h"

#define TOL 1e-4

typedef struct { char method[16], layer[64]; } map_spec;

static int read_cfg(const char *path, char *model, rcv_model_cfg *c, int *batch, map_spec *maps, int *n_maps,
                    char *oracle) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    rcv_model_cfg_defaults(c);
    char key[64], line[512];
    *n_maps = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s", key) != 1) continue;
        const char *v = line + strlen(key);
        if (!strcmp(key, "model")) sscanf(v, "%63s", model);
        else if (!strcmp(key, "batch")) *batch = atoi(v);
        else if (!strcmp(key, "in_c")) c->in_c = atoi(v);
        else if (!strcmp(key, "in_h")) c->in_h = atoi(v);
        else if (!strcmp(key, "in_w")) c->in_w = atoi(v);
        else if (!strcmp(key, "n_classes")) c->n_classes = atoi(v);
        else if (!strcmp(key, "small_input")) c->small_input = atoi(v);
        else if (!strcmp(key, "oracle")) sscanf(v, "%63s", oracle);
        else if (!strcmp(key, "mean")) sscanf(v, "%f %f %f %f", &c->mean[0], &c->mean[1], &c->mean[2], &c->mean[3]);
        else if (!strcmp(key, "std")) sscanf(v, "%f %f %f %f", &c->std[0], &c->std[1], &c->std[2], &c->std[3]);
        else if (!strcmp(key, "map") && *n_maps < 16) {
            sscanf(v, "%15s %63s", maps[*n_maps].method, maps[*n_maps].layer);
            (*n_maps)++;
        }
    }
    fclose(f);
    return 0;
}

static void oracle_case(const char *dir, const char *cas) {
    char path[600], model[64] = "", oracle[64] = "?";
    rcv_model_cfg cfg;
    map_spec maps[16];
    int batch = 0, n_maps = 0;
    snprintf(path, sizeof path, "%s/%s.cfg", dir, cas);
    if (read_cfg(path, model, &cfg, &batch, maps, &n_maps, oracle)) {
        CHECK(0, "read %s", path);
        return;
    }
    cfg.no_init = 1;
    rcv_model m;
    if (rcv_model_build(&m, model, &cfg)) {
        CHECK(0, "%s: %s", cas, rcv_error());
        return;
    }
    rcv_safetensors st, ref;
    snprintf(path, sizeof path, "%s/%s.state.safetensors", dir, cas);
    int rc = rcv_st_open(&st, path);
    if (rc == 0) {
        rc = rcv_st_load_graph(&st, m.g, 1, 0, NULL, NULL);
        rcv_st_close(&st);
    }
    snprintf(path, sizeof path, "%s/%s.ref.safetensors", dir, cas);
    if (rc || rcv_st_open(&ref, path)) {
        CHECK(0, "%s: %s", cas, rcv_error());
        rcv_model_free(&m);
        return;
    }
    int H = cfg.in_h, W = cfg.in_w;
    size_t nin = (size_t)batch * H * W * cfg.in_c, nmap = (size_t)batch * H * W;
    float *x = malloc(nin * sizeof(float)), *want = malloc(nmap * sizeof(float)), *got = malloc(nmap * sizeof(float));
    int64_t t64[64];
    int32_t targets[64];
    CHECK(rcv_st_read_f32(&ref, "input", x, nin) == 0, "%s", rcv_error());
    CHECK(batch <= 64 && rcv_st_read_i64(&ref, "targets", t64, (size_t)batch) == 0, "%s", rcv_error());
    for (int i = 0; i < batch; i++) targets[i] = (int32_t)t64[i];
    for (int k = 0; k < n_maps; k++) {
        rcv_cam_method meth;
        char name[128];
        snprintf(name, sizeof name, "%.15s.%.63s", maps[k].method, maps[k].layer);
        CHECK(rcv_cam_method_parse(maps[k].method, &meth) == 0, "%s", rcv_error());
        rcv_explainer e;
        // The CPU backend: the model kernels are checked against ref (test_ops) and PyTorch (test_models).
        if (rcv_explainer_init(&e, &m, meth, maps[k].layer, batch, RCV_BACKEND_CPU) ||
            rcv_explainer_run(&e, x, batch, targets, got)) {
            CHECK(0, "%s %s: %s", cas, name, rcv_error());
            rcv_explainer_free(&e);
            continue;
        }
        rcv_explainer_free(&e);
        CHECK(rcv_st_read_f32(&ref, name, want, nmap) == 0, "%s", rcv_error());
        double err = max_abs_err(got, want, nmap);
        float mn = got[0], mx = got[0];
        for (size_t i = 0; i < nmap; i++) mn = got[i] < mn ? got[i] : mn, mx = got[i] > mx ? got[i] : mx;
        printf("%-15s %-10s %-7s max |ours - %s| = %.1e (map range %.3f..%.3f)\n", cas, maps[k].method,
               maps[k].layer, oracle, err, mn, mx);
        CHECK(err <= TOL, "%s %s: max abs error %.3g > %g", cas, name, err, TOL);
    }
    free(x);
    free(want);
    free(got);
    rcv_st_close(&ref);
    rcv_model_free(&m);
}

static void test_errors(void) {
    rcv_model m;
    rcv_model_cfg cfg;
    rcv_model_cfg_defaults(&cfg);
    cfg.in_c = 1;
    cfg.in_h = cfg.in_w = 16;
    cfg.n_classes = 4;
    CHECK(rcv_model_build(&m, "smallcnn", &cfg) == 0, "%s", rcv_error());
    rcv_explainer e;
    CHECK(rcv_explainer_init(&e, &m, RCV_CAM_GRADCAM, "layer9", 2, RCV_BACKEND_CPU) == -1 &&
              strstr(rcv_error(), "layer9"),
          "unknown layer: %s", rcv_error());
    CHECK(rcv_explainer_init(&e, &m, RCV_CAM_CAM, "relu3", 2, RCV_BACKEND_CPU) == -1 && strstr(rcv_error(), "relu3") &&
              strstr(rcv_error(), "gradcam"),
          "CAM away from the pool: %s", rcv_error());
    rcv_cam_method mm;
    CHECK(rcv_cam_method_parse("lime", &mm) == -1 && strstr(rcv_error(), "lime"), "bad method: %s", rcv_error());
    CHECK(rcv_explainer_init(&e, &m, RCV_CAM_CAM, NULL, 2, RCV_BACKEND_CPU) == 0, "CAM on features: %s", rcv_error());
    float x[2 * 16 * 16] = {0};
    float maps[2 * 16 * 16];
    int32_t cls[2] = {0, 4};
    CHECK(rcv_explainer_run(&e, x, 2, cls, maps) == -1 && strstr(rcv_error(), "class 4"), "bad class: %s", rcv_error());
    CHECK(rcv_explainer_run(&e, x, 3, cls, maps) == -1, "more images than the batch");
    rcv_explainer_free(&e);
    rcv_model_free(&m);
}

static void test_resize_and_colors(void) {
    // 2x2 -> 4x4, half-pixel centres: output x = 0..3 samples source 0, 0.25, 0.75, 1 (clamped
    // at 0 and 1): row of [0, 1] becomes [0, 0.25, 0.75, 1].
    float in[4] = {0, 1, 2, 3}, out[16];
    rcv_resize_bilinear_f32(in, 2, 2, 4, 4, out);
    float want[16] = {0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f, 1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3};
    CHECK(max_abs_err(out, want, 16) < 1e-6, "bilinear 2x2 -> 4x4: %g", max_abs_err(out, want, 16));
    // Normalisation: min-max, resize, min-max. A 2x2 map [1, 3; 5, 7] becomes [0, 1/3; 2/3, 1]
    // (up to the 1e-7 guard) and after the 4x4 resize its extremes are exactly 0 and 1 again.
    double cam[4] = {1, 3, 5, 7};
    rcv_cam_scale(cam, 2, 2, 4, 4, out);
    CHECK(fabsf(out[0]) < 1e-6 && fabsf(out[15] - 1) < 1e-6 && fabsf(out[1] - 1.0f / 12) < 1e-6, "cam scale %g %g %g",
          out[0], out[1], out[15]);
    double flat[4] = {2, 2, 2, 2};
    rcv_cam_scale(flat, 2, 2, 4, 4, out);
    CHECK(out[0] == 0 && out[7] == 0, "a constant map gives 0");

    // MATLAB jet: 0 -> (0, 0, .5), .25 -> (0, .5, 1), .5 -> (.5, 1, .5), 1 -> (.5, 0, 0).
    rcv_rgb j0 = rcv_colormap_jet(0), j25 = rcv_colormap_jet(0.25f), j5 = rcv_colormap_jet(0.5f), j1 = rcv_colormap_jet(1);
    CHECK(j0.r == 0 && j0.g == 0 && j0.b == 128, "jet(0) %d %d %d", j0.r, j0.g, j0.b);
    CHECK(j25.r == 0 && j25.g == 128 && j25.b == 255, "jet(.25) %d %d %d", j25.r, j25.g, j25.b);
    CHECK(j5.r == 128 && j5.g == 255 && j5.b == 128, "jet(.5) %d %d %d", j5.r, j5.g, j5.b);
    CHECK(j1.r == 128 && j1.g == 0 && j1.b == 0, "jet(1) %d %d %d", j1.r, j1.g, j1.b);
    // Overlay of gray 100 with jet(1) at alpha .5: (0.5*100 + 0.5*128, 0.5*100, 0.5*100) = (114, 50, 50).
    rcv_image g, ov;
    rcv_image_alloc(&g, 1, 1, 1);
    g.pix[0] = 100;
    float one = 1;
    rcv_cam_overlay(&g, &one, 0.5f, &ov);
    CHECK(ov.c == 3 && ov.pix[0] == 114 && ov.pix[1] == 50 && ov.pix[2] == 50, "overlay %d %d %d", ov.pix[0],
          ov.pix[1], ov.pix[2]);
    rcv_image_free(&g);
    rcv_image_free(&ov);
    // Font: 'A' is .###. / #...# / #...# / ##### / #...# / #...# / #...#, drawn at scale 2 at (1, 1).
    const uint8_t *A = rcv_font_glyph('A');
    CHECK(A[0] == 0x0e && A[3] == 0x1f && A[6] == 0x11, "glyph A %02x %02x %02x", A[0], A[3], A[6]);
    CHECK(rcv_font_glyph(200) == rcv_font_glyph('?'), "unknown bytes draw as '?'");
    rcv_image c;
    rcv_canvas_new(&c, 16, 20, (rcv_rgb){255, 255, 255});
    int w = rcv_draw_text(&c, 1, 1, "A", 2, (rcv_rgb){0, 0, 0});
    CHECK(w == 10 && rcv_text_width("ab\ncde", 1) == 17 && rcv_text_height("a\nb", 1) == 16, "text metrics %d", w);
    // Row 3 of 'A' is full: pixels x = 1..10 at y = 7, 8 black; row 0's first pixel (x 1..2) white.
    int ok = 1;
    for (int x = 1; x <= 10; x++) ok &= c.pix[(7 * 16 + x) * 3] == 0 && c.pix[(8 * 16 + x) * 3] == 0;
    ok &= c.pix[(1 * 16 + 1) * 3] == 255 && c.pix[(1 * 16 + 3) * 3] == 0 && c.pix[(7 * 16 + 11) * 3] == 255;
    CHECK(ok, "'A' rasterised at scale 2");
    rcv_image_free(&c);
}

static void test_figures(void) {
    const char *dir = test_tmpdir("explain");
    char path[600];
    // Filters: two 1x2x2 filters [0, 1; 2, 3] and [-1, -1; -1, -1]: the first min-max scales to
    // 0, 85, 170, 255; the constant one is mid-gray 128 (0.5 -> lrint(127.5) = 128).
    float wts[8] = {0, 1, 2, 3, -1, -1, -1, -1};
    snprintf(path, sizeof path, "%s/filters.png", dir);
    CHECK(rcv_filters_png(path, wts, 2, 1, 2, 2, 1, NULL) == 0, "%s", rcv_error());
    rcv_image f;
    CHECK(rcv_image_load(path, &f) == 0, "%s", rcv_error());
    // Layout: PAD 6, columns of 2 px: tile 0 at (6, 6), tile 1 at (14, 6); image 22 x 14.
    CHECK(f.w == 22 && f.h == 14, "filters size %dx%d", f.w, f.h);
    if (f.w == 22 && f.h == 14) {
        uint8_t *p = f.pix;
        CHECK(p[(6 * 22 + 6) * 3] == 0 && p[(6 * 22 + 7) * 3] == 85 && p[(7 * 22 + 6) * 3] == 170 &&
                  p[(7 * 22 + 7) * 3] == 255 && p[(6 * 22 + 14) * 3] == 128,
              "filter tiles %d %d %d %d %d", p[(6 * 22 + 6) * 3], p[(6 * 22 + 7) * 3], p[(7 * 22 + 6) * 3],
              p[(7 * 22 + 7) * 3], p[(6 * 22 + 14) * 3]);
    }
    rcv_image_free(&f);
    // Top-3 grid of one 8x8 image: four columns, captions of two lines under each, PNG read back.
    rcv_image im;
    rcv_image_alloc(&im, 8, 8, 1);
    for (int i = 0; i < 64; i++) im.pix[i] = (uint8_t)(i * 4);
    float maps[3 * 64];
    for (int i = 0; i < 3 * 64; i++) maps[i] = (float)(i % 64) / 63;
    int32_t cls[3] = {2, 0, 1};
    float pr[3] = {0.7f, 0.2f, 0.1f};
    const char *names[3] = {"cat", "dog", "Ankle boot"};
    snprintf(path, sizeof path, "%s/grid.png", dir);
    CHECK(rcv_cam_grid_png(path, &im, 1, 3, maps, cls, pr, names, 4, "Grad-CAM") == 0, "%s", rcv_error());
    rcv_image gimg;
    CHECK(rcv_image_load(path, &gimg) == 0, "%s", rcv_error());
    // Columns as wide as the 32 px image or the caption (n chars = 6n - 1 px): "image" 29 -> 32,
    // "1. Ankle boot" 77, "2. cat" 35, "3. dog" 35; gaps of 6; title at scale 2 (14 px + 6).
    int want_w = 6 + 32 + 6 + 77 + 6 + 35 + 6 + 35 + 6, want_h = 6 + (7 * 2 + 6) + 32 + 4 + 16 + 6;
    CHECK(gimg.w == want_w && gimg.h == want_h, "grid %dx%d, expected %dx%d", gimg.w, gimg.h, want_w, want_h);
    rcv_image_free(&gimg);
    snprintf(path, sizeof path, "%s/pair.png", dir);
    CHECK(rcv_cam_pair_png(path, &im, maps, "clean: cat 70%", &im, maps + 64, "adv: dog 60%", 2, NULL) == 0, "%s",
          rcv_error());
    rcv_image small;
    rcv_image_alloc(&small, 4, 4, 1);
    CHECK(rcv_cam_pair_png(path, &im, maps, "a", &small, maps, "b", 2, NULL) == -1 && strstr(rcv_error(), "differ"),
          "size mismatch: %s", rcv_error());
    rcv_image_free(&small);
    rcv_image_free(&im);
}

int main(void) {
    const char *dir = test_tmpdir("explain_oracle");
    int rc = test_sh("/usr/bin/python3 tests/oracle/cam_ref.py %s", dir);
    if (rc == 77 || rc == 127) printf("SKIP PyTorch oracle: /usr/bin/python3 with torch is not available\n");
    else CHECK(rc == 0, "tests/oracle/cam_ref.py exited %d", rc);
    if (rc == 0) {
        oracle_case(dir, "smallcnn");
        oracle_case(dir, "resnet18_small");
    }
    test_errors();
    test_resize_and_colors();
    test_figures();
    return test_done();
}
