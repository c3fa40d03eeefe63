// A small software rasteriser for figures: filled rectangles, lines, a built-in 5x7
// bitmap font for printable ASCII, nearest-neighbour blits and the jet colormap. Draws
// into 8-bit RGB rcv_images (image.h); everything clips at the image border.
#ifndef RCV_DRAW_H
#define RCV_DRAW_H

#include <stdint.h>

#include "robustcv/image.h"

typedef struct { uint8_t r, g, b; } rcv_rgb;

#define RCV_FONT_CELL_W 6 // 5 pixel glyph + 1 column of spacing
#define RCV_FONT_CELL_H 9 // 7 pixel glyph + 2 rows of spacing

// New RGB image filled with colour c.
void rcv_canvas_new(rcv_image *im, int w, int h, rcv_rgb c);
void rcv_draw_pixel(rcv_image *im, int x, int y, rcv_rgb c);
void rcv_draw_rect_fill(rcv_image *im, int x, int y, int w, int h, rcv_rgb c);
void rcv_draw_rect(rcv_image *im, int x, int y, int w, int h, rcv_rgb c); // 1-pixel outline
// Line from (x0,y0) to (x1,y1), `thick` pixels wide (a square brush).
void rcv_draw_line(rcv_image *im, int x0, int y0, int x1, int y1, int thick, rcv_rgb c);
// Text with its top-left corner at (x, y), each font pixel drawn as scale x scale. '\n' starts a
// new line; bytes outside 32..126 draw as '?'. Returns the width in pixels of the widest line.
int rcv_draw_text(rcv_image *im, int x, int y, const char *s, int scale, rcv_rgb c);
// Same text turned 90 degrees counter-clockwise (for a y-axis label), reading bottom to top,
// its bounding box's top-left at (x, y).
void rcv_draw_text_vertical(rcv_image *im, int x, int y, const char *s, int scale, rcv_rgb c);
int rcv_text_width(const char *s, int scale);  // widest line, pixels
int rcv_text_height(const char *s, int scale); // all lines, pixels
// The 5x7 glyph of byte ch: 7 rows, bit 4 = leftmost column (an unknown byte gives '?').
const uint8_t *rcv_font_glyph(int ch);

// Copies src (gray or RGB) into dst (RGB) at (x, y), each source pixel as scale x scale.
void rcv_draw_blit(rcv_image *dst, const rcv_image *src, int x, int y, int scale);
// MATLAB's jet: v in [0,1] (clamped) -> blue, cyan, yellow, red:
// r = clamp(1.5 - |4v - 3|), g = clamp(1.5 - |4v - 2|), b = clamp(1.5 - |4v - 1|).
rcv_rgb rcv_colormap_jet(float v);

#endif
