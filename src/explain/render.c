// Figures of maps: overlays, captioned panel grids (image | top-1 | top-2 | top-3), clean vs
// adversarial pairs, and first-layer filter grids.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/explain.h"

static const rcv_rgb WHITE = {255, 255, 255}, BLACK = {0, 0, 0};

void rcv_image_from_float(const float *x, int w, int h, int c, rcv_image *out) {
    rcv_image_alloc(out, w, h, c);
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        float v = x[i] < 0 ? 0 : x[i] > 1 ? 1 : x[i];
        out->pix[i] = (uint8_t)lrintf(v * 255);
    }
}

void rcv_cam_overlay(const rcv_image *img, const float *map, float alpha, rcv_image *out) {
    rcv_image_alloc(out, img->w, img->h, 3);
    for (size_t i = 0; i < (size_t)img->w * img->h; i++) {
        const uint8_t *p = img->pix + i * img->c;
        rcv_rgb j = rcv_colormap_jet(map[i]);
        uint8_t jc[3] = {j.r, j.g, j.b};
        for (int ch = 0; ch < 3; ch++) {
            double v = (1 - alpha) * p[img->c >= 3 ? ch : 0] + alpha * jc[ch];
            out->pix[3 * i + ch] = (uint8_t)lrint(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

#define PAD 6

void rcv_panel_grid(const rcv_panel *p, int rows, int cols, int scale, const char *title, rcv_image *out) {
    int *cw = rcv_xcalloc((size_t)cols, sizeof(int)), *ih = rcv_xcalloc((size_t)rows, sizeof(int)),
        *th = rcv_xcalloc((size_t)rows, sizeof(int));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const rcv_panel *q = &p[r * cols + c];
            int w = q->img ? q->img->w * scale : 0, h = q->img ? q->img->h * scale : 0;
            int tw = q->caption ? rcv_text_width(q->caption, 1) : 0, tht = q->caption ? rcv_text_height(q->caption, 1) : 0;
            cw[c] = w > cw[c] ? w : cw[c];
            cw[c] = tw > cw[c] ? tw : cw[c];
            ih[r] = h > ih[r] ? h : ih[r];
            th[r] = tht > th[r] ? tht : th[r];
        }
    int title_h = title && *title ? rcv_text_height(title, 2) + PAD : 0;
    int W = PAD, H = PAD + title_h;
    for (int c = 0; c < cols; c++) W += cw[c] + PAD;
    for (int r = 0; r < rows; r++) H += ih[r] + (th[r] ? th[r] + 4 : 0) + PAD;
    if (title_h) {
        int tw = rcv_text_width(title, 2) + 2 * PAD;
        W = tw > W ? tw : W;
    }
    rcv_canvas_new(out, W, H, WHITE);
    if (title_h) rcv_draw_text(out, PAD, PAD, title, 2, BLACK);
    int y = PAD + title_h;
    for (int r = 0; r < rows; r++) {
        int x = PAD;
        for (int c = 0; c < cols; c++) {
            const rcv_panel *q = &p[r * cols + c];
            if (q->img) rcv_draw_blit(out, q->img, x + (cw[c] - q->img->w * scale) / 2, y, scale);
            if (q->caption) {
                // Centre each line on its own.
                const char *line = q->caption;
                int ly = y + ih[r] + 4;
                while (*line) {
                    const char *nl = strchr(line, '\n');
                    size_t len = nl ? (size_t)(nl - line) : strlen(line);
                    char buf[256];
                    if (len >= sizeof buf) len = sizeof buf - 1;
                    memcpy(buf, line, len);
                    buf[len] = 0;
                    rcv_draw_text(out, x + (cw[c] - rcv_text_width(buf, 1)) / 2, ly, buf, 1, BLACK);
                    ly += RCV_FONT_CELL_H;
                    line += len + (nl ? 1 : 0);
                    if (!nl) break;
                }
            }
            x += cw[c] + PAD;
        }
        y += ih[r] + (th[r] ? th[r] + 4 : 0) + PAD;
    }
    free(cw);
    free(ih);
    free(th);
}

static int write_grid(const char *path, const rcv_panel *p, int rows, int cols, int scale, const char *title) {
    rcv_image out;
    rcv_panel_grid(p, rows, cols, scale, title, &out);
    int rc = rcv_png_write(path, &out);
    rcv_image_free(&out);
    return rc;
}

int rcv_cam_grid_png(const char *path, const rcv_image *imgs, int n_img, int n_top, const float *maps,
                     const int32_t *classes, const float *probs, const char *const *names, int scale,
                     const char *title) {
    if (n_img < 1 || n_top < 1 || n_top > 3)
        return rcv_fail("%s: %d images with %d maps each, expected >= 1 images and 1..3 maps", path, n_img, n_top);
    int cols = 1 + n_top;
    rcv_panel *p = rcv_xcalloc((size_t)n_img * cols, sizeof *p);
    rcv_image *ov = rcv_xcalloc((size_t)n_img * n_top, sizeof *ov);
    char (*cap)[160] = rcv_xcalloc((size_t)n_img * n_top, sizeof *cap);
    for (int i = 0; i < n_img; i++) {
        const rcv_image *im = &imgs[i];
        p[i * cols] = (rcv_panel){im, "image"};
        for (int t = 0; t < n_top; t++) {
            size_t j = (size_t)i * n_top + t;
            rcv_cam_overlay(im, maps + j * im->w * im->h, 0.5f, &ov[j]);
            char num[16];
            snprintf(num, sizeof num, "class %d", classes[j]);
            snprintf(cap[j], sizeof cap[j], "%d. %.20s\n%.1f%%", t + 1, names ? names[classes[j]] : num, 100.0 * probs[j]);
            p[i * cols + 1 + t] = (rcv_panel){&ov[j], cap[j]};
        }
    }
    int rc = write_grid(path, p, n_img, cols, scale, title);
    for (int j = 0; j < n_img * n_top; j++) rcv_image_free(&ov[j]);
    free(ov);
    free(cap);
    free(p);
    return rc;
}

int rcv_cam_pair_png(const char *path, const rcv_image *clean, const float *clean_map, const char *clean_caption,
                     const rcv_image *adv, const float *adv_map, const char *adv_caption, int scale,
                     const char *title) {
    if (clean->w != adv->w || clean->h != adv->h)
        return rcv_fail("%s: clean image %dx%d and adversarial image %dx%d differ in size", path, clean->w, clean->h,
                        adv->w, adv->h);
    rcv_image oc, oa;
    rcv_cam_overlay(clean, clean_map, 0.5f, &oc);
    rcv_cam_overlay(adv, adv_map, 0.5f, &oa);
    rcv_panel p[4] = {{clean, clean_caption}, {&oc, "clean map"}, {adv, adv_caption}, {&oa, "adversarial map"}};
    int rc = write_grid(path, p, 1, 4, scale, title);
    rcv_image_free(&oc);
    rcv_image_free(&oa);
    return rc;
}

int rcv_filters_png(const char *path, const float *weight, int o, int in, int kh, int kw, int tile,
                    const char *title) {
    if (o < 1 || in < 1 || kh < 1 || kw < 1)
        return rcv_fail("%s: filter bank (%d, %d, %d, %d), expected positive sizes", path, o, in, kh, kw);
    int c = in == 3 ? 3 : 1, cols = (int)ceil(sqrt((double)o)), rows = (o + cols - 1) / cols;
    rcv_image *tiles = rcv_xcalloc((size_t)o, sizeof *tiles);
    rcv_panel *p = rcv_xcalloc((size_t)rows * cols, sizeof *p);
    float *v = rcv_xmalloc((size_t)kh * kw * c * sizeof(float));
    for (int f = 0; f < o; f++) {
        const float *w = weight + (size_t)f * in * kh * kw; // (I, kh, kw)
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++)
                for (int ch = 0; ch < c; ch++) {
                    double s = 0;
                    if (c == 3) s = w[((size_t)ch * kh + y) * kw + x];
                    else
                        for (int i = 0; i < in; i++) s += w[((size_t)i * kh + y) * kw + x] / in;
                    v[(y * kw + x) * c + ch] = (float)s;
                }
        float mn = v[0], mx = v[0];
        for (int i = 1; i < kh * kw * c; i++) mn = v[i] < mn ? v[i] : mn, mx = v[i] > mx ? v[i] : mx;
        for (int i = 0; i < kh * kw * c; i++) v[i] = mx > mn ? (v[i] - mn) / (mx - mn) : 0.5f;
        rcv_image_from_float(v, kw, kh, c, &tiles[f]);
        p[f].img = &tiles[f];
    }
    int rc = write_grid(path, p, rows, cols, tile, title);
    for (int f = 0; f < o; f++) rcv_image_free(&tiles[f]);
    free(tiles);
    free(p);
    free(v);
    return rc;
}
