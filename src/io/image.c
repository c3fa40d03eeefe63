// JPEG (TurboJPEG) and PNG (libpng simplified API) decoding to RGB8, resizing, colour
// conversions and atomic PNG writing.
#include "robustcv/image.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"

// Refuse images beyond this many pixels (a corrupt header, not a photograph).
#define IMG_MAX_PIXELS ((size_t)1 << 28)
// ... and headers that promise more pixels than the data can hold, before allocating them: deflate
// expands at most 1032:1 and a 1-bit PNG holds 8 pixels a byte; a Huffman-coded JPEG takes at least
// one bit per 8x8 block (512 pixels a byte; 4096 leaves room for EOB runs and arithmetic coding).
#define PNG_MAX_PIXELS_PER_BYTE 8256
#define JPEG_MAX_PIXELS_PER_BYTE 4096

static size_t max_pixels(size_t len, size_t per_byte) {
    size_t m = len * per_byte + 65536;
    return m < IMG_MAX_PIXELS ? m : IMG_MAX_PIXELS;
}

void rcv_image_alloc(rcv_image *img, int w, int h, int c) {
    img->w = w;
    img->h = h;
    img->c = c;
    img->pix = rcv_xcalloc((size_t)w * h * c, 1);
}

void rcv_image_free(rcv_image *img) {
    if (!img) return;
    free(img->pix);
    memset(img, 0, sizeof *img);
}

// PIL's CMYK -> RGB on Adobe-style inverted CMYK as stored in JPEGs: with k = 255 - K and
// C = 255 - stored c, R = k - k * C / 255 (PIL's MULDIV255 rounding).
static uint8_t cmyk_channel(uint8_t stored_c, uint8_t stored_k) {
    int nk = stored_k, c = 255 - stored_c;
    int t = c * nk + 128;
    int r = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

static int decode_jpeg(const uint8_t *data, size_t len, const char *name, rcv_image *img) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return rcv_fail("%s: cannot start the JPEG decoder: %s", name, tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp = 0, cs = 0;
    if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &cs)) {
        rcv_fail("%s: corrupt JPEG header: %s", name, tjGetErrorStr2(tj));
        tjDestroy(tj);
        return -1;
    }
    if (w <= 0 || h <= 0) {
        tjDestroy(tj);
        return rcv_fail("%s: corrupt JPEG header: no image size in %zu bytes (truncated or tables only)", name, len);
    }
    if ((size_t)w * h > max_pixels(len, JPEG_MAX_PIXELS_PER_BYTE)) {
        tjDestroy(tj);
        return rcv_fail("%s: JPEG header says %d x %d pixels, expected at most %zu pixels for %zu bytes of JPEG", name,
                        w, h, max_pixels(len, JPEG_MAX_PIXELS_PER_BYTE), len);
    }
    int cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    uint8_t *buf = rcv_xmalloc((size_t)w * h * (cmyk ? 4 : 3));
    // Any warning (a truncated stream, corrupt entropy data) is an error: a half-grey image
    // would otherwise train or evaluate silently.
    if (tjDecompress2(tj, data, (unsigned long)len, buf, w, 0, h, cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_STOPONWARNING)) {
        rcv_fail("%s: corrupt or truncated JPEG data: %s", name, tjGetErrorStr2(tj));
        free(buf);
        tjDestroy(tj);
        return -1;
    }
    tjDestroy(tj);
    if (cmyk) {
        uint8_t *rgb = rcv_xmalloc((size_t)w * h * 3);
        for (size_t i = 0; i < (size_t)w * h; i++)
            for (int k = 0; k < 3; k++) rgb[3 * i + k] = cmyk_channel(buf[4 * i + k], buf[4 * i + 3]);
        free(buf);
        buf = rgb;
    }
    img->w = w;
    img->h = h;
    img->c = 3;
    img->pix = buf;
    return 0;
}

static int decode_png(const uint8_t *data, size_t len, const char *name, rcv_image *img) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&pi, data, len)) {
        rcv_fail("%s: corrupt PNG header: %s", name, pi.message);
        png_image_free(&pi);
        return -1;
    }
    if (pi.width == 0 || pi.height == 0 || (size_t)pi.width * pi.height > max_pixels(len, PNG_MAX_PIXELS_PER_BYTE)) {
        png_image_free(&pi);
        return rcv_fail("%s: PNG header says %u x %u pixels, expected 1..%zu pixels for %zu bytes of PNG", name,
                        pi.width, pi.height, max_pixels(len, PNG_MAX_PIXELS_PER_BYTE), len);
    }
    // With alpha, read RGBA and drop it (PIL's convert("RGB")), rather than compositing.
    int alpha = (pi.format & PNG_FORMAT_FLAG_ALPHA) != 0;
    // 16-bit files: the simplified API takes their samples as linear light and would
    // gamma-encode them on the way to 8 bits; read them as they are and scale v * 255 / 65535.
    int wide = (pi.format & PNG_FORMAT_FLAG_LINEAR) != 0;
    pi.format = (alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB) | (wide ? PNG_FORMAT_FLAG_LINEAR : 0);
    size_t n = (size_t)pi.width * pi.height, ch = alpha ? 4 : 3;
    void *raw = rcv_xmalloc(PNG_IMAGE_SIZE(pi));
    if (!png_image_finish_read(&pi, NULL, raw, 0, NULL)) {
        rcv_fail("%s: corrupt or truncated PNG data: %s", name, pi.message);
        free(raw);
        png_image_free(&pi);
        return -1;
    }
    uint8_t *buf = raw;
    if (wide || alpha) {
        buf = rcv_xmalloc(n * 3);
        const uint8_t *b8 = raw;
        const uint16_t *b16 = raw;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < 3; k++)
                buf[3 * i + k] = wide ? (uint8_t)((b16[ch * i + k] * 255u + 32767u) / 65535u) : b8[ch * i + k];
        free(raw);
    }
    img->w = (int)pi.width;
    img->h = (int)pi.height;
    img->c = 3;
    img->pix = buf;
    png_image_free(&pi);
    return 0;
}

int rcv_image_decode(const uint8_t *data, size_t len, const char *name, rcv_image *img) {
    memset(img, 0, sizeof *img);
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return decode_jpeg(data, len, name, img);
    if (len >= 8 && !memcmp(data, png_magic, 8)) return decode_png(data, len, name, img);
    char hex[40] = "";
    for (size_t i = 0; i < len && i < 8; i++) snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", data[i]);
    return rcv_fail("%s: not a JPEG or PNG file (%zu bytes, starting %s), expected ff d8 ff or 89 50 4e 47", name, len,
                    len ? hex : "(empty)");
}

int rcv_image_load(const char *path, rcv_image *img) {
    memset(img, 0, sizeof *img);
    uint8_t *data;
    size_t len;
    if (rcv_file_read(path, &data, &len)) return -1;
    int rc = rcv_image_decode(data, len, path, img);
    free(data);
    return rc;
}

// Source coordinate of output index i (PyTorch's area_pixel_compute_source_index, align_corners=False).
static void bilinear_taps(int out, int in, int *i0, int *i1, float *l1) {
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float s = scale * ((float)i + 0.5f) - 0.5f;
        if (s < 0) s = 0;
        int a = (int)s;
        i0[i] = a;
        i1[i] = a + (a < in - 1 ? 1 : 0);
        l1[i] = s - (float)a;
    }
}

void rcv_image_resize_bilinear(const rcv_image *src, int w, int h, rcv_image *dst) {
    int c = src->c;
    rcv_image_alloc(dst, w, h, c);
    int *x0 = rcv_xmalloc((size_t)w * sizeof(int)), *x1 = rcv_xmalloc((size_t)w * sizeof(int));
    int *y0 = rcv_xmalloc((size_t)h * sizeof(int)), *y1 = rcv_xmalloc((size_t)h * sizeof(int));
    float *lx = rcv_xmalloc((size_t)w * sizeof(float)), *ly = rcv_xmalloc((size_t)h * sizeof(float));
    bilinear_taps(w, src->w, x0, x1, lx);
    bilinear_taps(h, src->h, y0, y1, ly);
    size_t row = (size_t)src->w * c;
#pragma omp parallel for schedule(static) if ((size_t)w * h * c > 65536)
    for (int y = 0; y < h; y++) {
        const uint8_t *r0 = src->pix + (size_t)y0[y] * row, *r1 = src->pix + (size_t)y1[y] * row;
        float b = ly[y], a = 1.0f - b;
        uint8_t *o = dst->pix + (size_t)y * w * c;
        for (int x = 0; x < w; x++) {
            float q = lx[x], p = 1.0f - q;
            for (int k = 0; k < c; k++) {
                float v = a * (p * r0[x0[x] * c + k] + q * r0[x1[x] * c + k]) +
                          b * (p * r1[x0[x] * c + k] + q * r1[x1[x] * c + k]);
                long r = lrintf(v);
                o[(size_t)x * c + k] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            }
        }
    }
    free(x0); free(x1); free(y0); free(y1); free(lx); free(ly);
}

void rcv_image_to_gray(const rcv_image *src, rcv_image *dst) {
    rcv_image_alloc(dst, src->w, src->h, 1);
    size_t n = (size_t)src->w * src->h;
    if (src->c < 3) {
        for (size_t i = 0; i < n; i++) dst->pix[i] = src->pix[i * src->c];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = src->pix + i * src->c;
        dst->pix[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
}

void rcv_image_to_rgb(const rcv_image *src, rcv_image *dst) {
    rcv_image_alloc(dst, src->w, src->h, 3);
    size_t n = (size_t)src->w * src->h;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) dst->pix[3 * i + k] = src->pix[i * src->c + (src->c >= 3 ? k : 0)];
}

int rcv_png_write(const char *path, const rcv_image *img) {
    if (img->c != 1 && img->c != 3 && img->c != 4)
        return rcv_fail("%s: image has %d channels, expected 1, 3 or 4 for PNG", path, img->c);
    if (img->w <= 0 || img->h <= 0) return rcv_fail("%s: image is %d x %d, expected a positive size", path, img->w, img->h);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)img->w;
    pi.height = (png_uint_32)img->h;
    pi.format = img->c == 1 ? PNG_FORMAT_GRAY : img->c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    rcv_atomic_file a;
    if (rcv_atomic_open(&a, path)) return -1;
    if (!png_image_write_to_stdio(&pi, a.f, 0, img->pix, 0, NULL)) {
        rcv_fail("%s: PNG encoding failed: %s", path, pi.message);
        png_image_free(&pi);
        rcv_atomic_abort(&a);
        return -1;
    }
    png_image_free(&pi);
    return rcv_atomic_commit(&a);
}

int rcv_jpeg_write(const char *path, const rcv_image *img, int quality) {
    if (img->c != 1 && img->c != 3) return rcv_fail("%s: image has %d channels, expected 1 or 3 for JPEG", path, img->c);
    if (img->w <= 0 || img->h <= 0) return rcv_fail("%s: image is %d x %d, expected a positive size", path, img->w, img->h);
    if (quality < 1 || quality > 100) return rcv_fail("%s: JPEG quality %d, expected 1..100", path, quality);
    tjhandle tj = tjInitCompress();
    if (!tj) return rcv_fail("%s: cannot start the JPEG encoder: %s", path, tjGetErrorStr2(NULL));
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int gray = img->c == 1;
    // TurboJPEG defaults to the fast DCT when compressing; libjpeg (PIL, OpenCV) uses the accurate one.
    if (tjCompress2(tj, img->pix, img->w, 0, img->h, gray ? TJPF_GRAY : TJPF_RGB, &buf, &len,
                    gray ? TJSAMP_GRAY : TJSAMP_420, quality, TJFLAG_ACCURATEDCT)) {
        rcv_fail("%s: JPEG encoding failed: %s", path, tjGetErrorStr2(tj));
        tjDestroy(tj);
        return -1;
    }
    tjDestroy(tj);
    int rc = rcv_file_write_atomic(path, buf, len);
    tjFree(buf);
    return rc;
}
