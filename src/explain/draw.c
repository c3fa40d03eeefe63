// Rasteriser primitives for figures (see draw.h).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/draw.h"
#include "robustcv/error.h"

void rcv_canvas_new(rcv_image *im, int w, int h, rcv_rgb c) {
    rcv_image_alloc(im, w, h, 3);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        im->pix[3 * i] = c.r;
        im->pix[3 * i + 1] = c.g;
        im->pix[3 * i + 2] = c.b;
    }
}

void rcv_draw_pixel(rcv_image *im, int x, int y, rcv_rgb c) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->pix + ((size_t)y * im->w + x) * im->c;
    if (im->c >= 3) {
        p[0] = c.r;
        p[1] = c.g;
        p[2] = c.b;
    } else {
        p[0] = (uint8_t)((19595 * c.r + 38470 * c.g + 7471 * c.b + 32768) >> 16);
    }
}

void rcv_draw_rect_fill(rcv_image *im, int x, int y, int w, int h, rcv_rgb c) {
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > im->w ? im->w : x + w, y1 = y + h > im->h ? im->h : y + h;
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) rcv_draw_pixel(im, xx, yy, c);
}

void rcv_draw_rect(rcv_image *im, int x, int y, int w, int h, rcv_rgb c) {
    rcv_draw_rect_fill(im, x, y, w, 1, c);
    rcv_draw_rect_fill(im, x, y + h - 1, w, 1, c);
    rcv_draw_rect_fill(im, x, y, 1, h, c);
    rcv_draw_rect_fill(im, x + w - 1, y, 1, h, c);
}

// Bresenham, stamping a thick x thick square at each step.
void rcv_draw_line(rcv_image *im, int x0, int y0, int x1, int y1, int thick, rcv_rgb c) {
    if (thick < 1) thick = 1;
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
    int off = (thick - 1) / 2;
    for (;;) {
        rcv_draw_rect_fill(im, x0 - off, y0 - off, thick, thick, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

int rcv_text_width(const char *s, int scale) {
    int best = 0, cur = 0;
    for (; *s; s++) {
        if (*s == '\n') cur = 0;
        else cur++;
        best = cur > best ? cur : best;
    }
    // No trailing spacing column after the last glyph.
    return best ? (best * RCV_FONT_CELL_W - 1) * scale : 0;
}

int rcv_text_height(const char *s, int scale) {
    int lines = 1;
    for (; *s; s++) lines += *s == '\n';
    return (lines * RCV_FONT_CELL_H - 2) * scale;
}

int rcv_draw_text(rcv_image *im, int x, int y, const char *s, int scale, rcv_rgb c) {
    int cx = x, cy = y;
    for (const char *p = s; *p; p++) {
        if (*p == '\n') {
            cx = x;
            cy += RCV_FONT_CELL_H * scale;
            continue;
        }
        const uint8_t *g = rcv_font_glyph((unsigned char)*p);
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (g[r] >> (4 - col) & 1) rcv_draw_rect_fill(im, cx + col * scale, cy + r * scale, scale, scale, c);
        cx += RCV_FONT_CELL_W * scale;
    }
    return rcv_text_width(s, scale);
}

void rcv_draw_text_vertical(rcv_image *im, int x, int y, const char *s, int scale, rcv_rgb c) {
    // Glyph pixel (col, row) of the i-th character lands at (x + row, y + W - 1 - (i * cell + col)),
    // W the text's length in pixels: the first character at the bottom.
    int w = rcv_text_width(s, 1), i = 0;
    for (const char *p = s; *p && *p != '\n'; p++, i++) {
        const uint8_t *g = rcv_font_glyph((unsigned char)*p);
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (g[r] >> (4 - col) & 1)
                    rcv_draw_rect_fill(im, x + r * scale, y + (w - 1 - (i * RCV_FONT_CELL_W + col)) * scale, scale,
                                       scale, c);
    }
}

void rcv_draw_blit(rcv_image *dst, const rcv_image *src, int x, int y, int scale) {
    if (scale < 1) scale = 1;
    for (int sy = 0; sy < src->h; sy++)
        for (int sx = 0; sx < src->w; sx++) {
            const uint8_t *p = src->pix + ((size_t)sy * src->w + sx) * src->c;
            rcv_rgb c = src->c >= 3 ? (rcv_rgb){p[0], p[1], p[2]} : (rcv_rgb){p[0], p[0], p[0]};
            rcv_draw_rect_fill(dst, x + sx * scale, y + sy * scale, scale, scale, c);
        }
}

static uint8_t unit(double v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)lrint(v * 255);
}

rcv_rgb rcv_colormap_jet(float v) {
    double t = v < 0 ? 0 : v > 1 ? 1 : v;
    return (rcv_rgb){unit(1.5 - fabs(4 * t - 3)), unit(1.5 - fabs(4 * t - 2)), unit(1.5 - fabs(4 * t - 1))};
}
