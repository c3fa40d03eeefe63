// base64 (RFC 4648, standard alphabet) and PNG encoding into memory (libpng).
#include <png.h>
#include <turbojpeg.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "serve/serve.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *serve_base64_encode(const uint8_t *d, size_t n) {
    char *o = rcv_xmalloc((n + 2) / 3 * 4 + 1), *p = o;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = b64[v >> 18], *p++ = b64[(v >> 12) & 63], *p++ = b64[(v >> 6) & 63], *p++ = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *p++ = b64[v >> 18], *p++ = b64[(v >> 12) & 63];
        *p++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return o;
}

int serve_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n) {
    uint8_t *o = rcv_xmalloc(n / 4 * 3 + 3);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c == '=') { pad = 1; continue; }
        if (pad) break; // data after padding
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else {
            free(o);
            return rcv_fail("base64: byte %zu is 0x%02x, not in the base64 alphabet", i, c);
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out = o;
    *out_n = k;
    return 0;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} membuf;

static void mem_write(png_structp p, png_bytep d, png_size_t n) {
    membuf *m = png_get_io_ptr(p);
    if (m->len + n > m->cap) {
        while (m->len + n > m->cap) m->cap = m->cap ? 2 * m->cap : 4096;
        m->buf = rcv_xrealloc(m->buf, m->cap);
    }
    memcpy(m->buf + m->len, d, n);
    m->len += n;
}
static void mem_flush(png_structp p) { (void)p; }

int serve_png_encode(const rcv_image *img, uint8_t **out, size_t *out_n) {
    int type = img->c == 1 ? PNG_COLOR_TYPE_GRAY : img->c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
    if (img->c != 1 && img->c != 3 && img->c != 4) return rcv_fail("png: %d channels, expected 1, 3 or 4", img->c);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    membuf m = {0};
    png_bytep *rows = rcv_xmalloc((size_t)(img->h > 0 ? img->h : 1) * sizeof *rows);
    for (int y = 0; y < img->h; y++) rows[y] = img->pix + (size_t)y * img->w * img->c;
    if (!p || !info || setjmp(png_jmpbuf(p))) {
        png_destroy_write_struct(&p, &info);
        free(m.buf);
        free(rows);
        return rcv_fail("png: encoding a %dx%d image failed", img->w, img->h);
    }
    png_set_write_fn(p, &m, mem_write, mem_flush);
    png_set_IHDR(p, info, (png_uint_32)img->w, (png_uint_32)img->h, 8, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(p, 3);
    png_set_rows(p, info, rows);
    png_write_png(p, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&p, &info);
    free(rows);
    *out = m.buf;
    *out_n = m.len;
    return 0;
}

int serve_image_check(const uint8_t *d, size_t n, long max_pixels) {
    long w = 0, h = 0;
    if (n >= 24 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) {
        w = (long)d[16] << 24 | (long)d[17] << 16 | (long)d[18] << 8 | d[19];
        h = (long)d[20] << 24 | (long)d[21] << 16 | (long)d[22] << 8 | d[23];
    } else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8) {
        tjhandle t = tjInitDecompress();
        int jw = 0, jh = 0, sub, cs;
        if (t && tjDecompressHeader3(t, (unsigned char *)d, (unsigned long)n, &jw, &jh, &sub, &cs) == 0) w = jw, h = jh;
        if (t) tjDestroy(t);
    }
    if (w > 0 && h > 0 && w > max_pixels / h) // w * h > max_pixels, without the product (PNG sides reach 2^32 - 1)
        return rcv_fail("the image is %ld x %ld pixels, over the server's limit of %ld pixels", w, h, max_pixels);
    return 0; // anything else: the decoder names the problem
}
