// 8-bit images (HWC): JPEG and PNG decoding (format from the magic bytes, not the name),
// bilinear resizing, colour conversions, and atomic PNG writing.
#ifndef RCV_IMAGE_H
#define RCV_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h, c;   // c = 1 (gray), 3 (RGB) or 4 (RGBA)
    uint8_t *pix;  // h * w * c
} rcv_image;

// Decodes a JPEG (libturbojpeg; grayscale and CMYK become RGB) or PNG (libpng; gray, palette,
// 16-bit and alpha become RGB8, alpha dropped) into an RGB image (c = 3). Corrupt or truncated
// data gives -1 with a message naming the file.
int rcv_image_load(const char *path, rcv_image *img);
// Same from memory; `name` is used in messages.
int rcv_image_decode(const uint8_t *data, size_t len, const char *name, rcv_image *img);
// Zeroed image of the given size.
void rcv_image_alloc(rcv_image *img, int w, int h, int c);
void rcv_image_free(rcv_image *img);

// Bilinear resize to w x h with half-pixel centres (PyTorch's interpolate(mode="bilinear",
// align_corners=False, antialias=False)), rounded to nearest. dst is allocated.
void rcv_image_resize_bilinear(const rcv_image *src, int w, int h, rcv_image *dst);
// Luma as PIL's convert("L"): (19595 R + 38470 G + 7471 B + 32768) >> 16. Gray input is copied;
// alpha is ignored.
void rcv_image_to_gray(const rcv_image *src, rcv_image *dst);
// Gray replicated to three channels; RGBA drops alpha; RGB is copied.
void rcv_image_to_rgb(const rcv_image *src, rcv_image *dst);

// Writes c = 1, 3 or 4 as an 8-bit PNG, atomically (temporary + fsync + rename).
int rcv_png_write(const char *path, const rcv_image *img);
// Writes c = 1 or 3 as a baseline JPEG (4:2:0 for colour, accurate DCT, as PIL and OpenCV
// write them) at quality 1..100, atomically.
int rcv_jpeg_write(const char *path, const rcv_image *img, int quality);

#endif
