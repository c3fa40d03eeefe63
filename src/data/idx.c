// IDX files (MNIST, Fashion-MNIST): big-endian headers, uint8 payloads, gzipped or raw.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "robustcv/data.h"
#include "robustcv/error.h"

// Refuse headers that would need more than this (a corrupt count, not a dataset).
#define IDX_MAX_BYTES ((size_t)1 << 34)

static const char *fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// Reads up to n bytes; returns bytes read, or -1 with a message on a decompression error.
static long long gz_read_full(gzFile f, const char *path, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        unsigned chunk = (n - got) > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
        int r = gzread(f, (uint8_t *)buf + got, chunk);
        if (r < 0) {
            int e;
            const char *m = gzerror(f, &e);
            return rcv_fail("%s: corrupt compressed data after %zu bytes: %s", path, got,
                            e == Z_ERRNO ? strerror(errno) : m);
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// Opens an IDX file, checks its magic, reads ndim dims, then the payload (product of dims).
static int idx_read(const char *path, uint32_t magic, int ndim, uint32_t *dims, uint8_t **payload) {
    *payload = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f) return rcv_fail("%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
    uint8_t hdr[16];
    size_t hlen = 4 + 4 * (size_t)ndim;
    long long got = gz_read_full(f, path, hdr, hlen);
    if (got < 0) { gzclose(f); return -1; }
    if ((size_t)got < hlen) {
        gzclose(f);
        return rcv_fail("%s: truncated: expected a %zu-byte IDX header, got %lld bytes", path, hlen, got);
    }
    uint32_t m = be32(hdr);
    if (m != magic) {
        gzclose(f);
        return rcv_fail("%s: magic number 0x%08x, expected 0x%08x (IDX %s, %d dimension%s, uint8)", path, m, magic,
                        ndim == 1 ? "labels" : "images", ndim, ndim == 1 ? "" : "s");
    }
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (1u << 30)) {
            gzclose(f);
            return rcv_fail("%s: dimension %d is %u, expected 1..%u", path, i, dims[i], 1u << 30);
        }
        total *= dims[i];
        if (total > IDX_MAX_BYTES) {
            gzclose(f);
            return rcv_fail("%s: header promises more than %zu bytes of data, expected a plausible dataset", path,
                            IDX_MAX_BYTES);
        }
    }
    // The buffer grows with the data that arrives (doubling from 1 MiB), so a header that promises
    // more than the file holds costs at most twice what is there, not what it promises.
    size_t cap = total < ((size_t)1 << 20) ? total : ((size_t)1 << 20), have = 0;
    uint8_t *buf = rcv_xmalloc(cap);
    for (;;) {
        got = gz_read_full(f, path, buf + have, cap - have);
        if (got < 0) break;
        have += (size_t)got;
        if (have < cap || cap == total) break;
        cap = cap > total / 2 ? total : 2 * cap;
        buf = rcv_xrealloc(buf, cap);
    }
    gzclose(f);
    if (got < 0) { free(buf); return -1; }
    got = (long long)have;
    if ((size_t)got < total) {
        free(buf);
        return rcv_fail("%s: truncated: expected %zu bytes of data after the header, got %lld", path, total, got);
    }
    *payload = buf;
    return 0;
}

static void set_names(rcv_dataset *d, const char *const *names) {
    d->class_names = rcv_xcalloc((size_t)d->n_classes, sizeof(char *));
    for (int k = 0; k < d->n_classes; k++) {
        char num[16];
        snprintf(num, sizeof num, "%d", k);
        d->class_names[k] = rcv_xstrdup(names && k < 10 ? names[k] : num);
    }
}

int rcv_idx_load(rcv_dataset *d, const char *images_path, const char *labels_path) {
    memset(d, 0, sizeof *d);
    uint32_t idim[3] = {0}, ldim[1] = {0};
    uint8_t *pix, *lab;
    if (idx_read(images_path, 0x00000803u, 3, idim, &pix)) return -1;
    if (idx_read(labels_path, 0x00000801u, 1, ldim, &lab)) { free(pix); return -1; }
    if (idim[0] != ldim[0]) {
        free(pix);
        free(lab);
        return rcv_fail("%s has %u images but %s has %u labels, expected equal counts", images_path, idim[0],
                        labels_path, ldim[0]);
    }
    d->n = (int)idim[0];
    d->h = (int)idim[1];
    d->w = (int)idim[2];
    d->c = 1;
    d->pixels = pix;
    d->labels = rcv_xmalloc((size_t)d->n * sizeof(int32_t));
    int maxl = 0;
    for (int i = 0; i < d->n; i++) {
        d->labels[i] = lab[i];
        if (lab[i] > maxl) maxl = lab[i];
    }
    free(lab);
    d->n_classes = maxl + 1;
    set_names(d, NULL);
    d->source = rcv_xstrdup(images_path);
    return 0;
}

static int exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

int rcv_fashion_mnist_load(rcv_dataset *d, const char *dir, int train) {
    if (!dir || !*dir) dir = RCV_FASHION_MNIST_DIR;
    const char *split = train ? "train" : "t10k";
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    if (!exists(ip)) {
        char raw[1024];
        snprintf(raw, sizeof raw, "%s/%s-images-idx3-ubyte", dir, split);
        if (!exists(raw))
            return rcv_fail("%s: Fashion-MNIST %s images not found (also tried %s)", ip, train ? "training" : "test",
                            raw);
        snprintf(ip, sizeof ip, "%s", raw);
    }
    if (!exists(lp)) {
        char raw[1024];
        snprintf(raw, sizeof raw, "%s/%s-labels-idx1-ubyte", dir, split);
        if (!exists(raw))
            return rcv_fail("%s: Fashion-MNIST %s labels not found (also tried %s)", lp, train ? "training" : "test",
                            raw);
        snprintf(lp, sizeof lp, "%s", raw);
    }
    if (rcv_idx_load(d, ip, lp)) return -1;
    if (d->n_classes > 10) {
        int n = d->n_classes;
        rcv_dataset_free(d);
        return rcv_fail("%s: labels go up to %d, expected Fashion-MNIST's 10 classes", lp, n - 1);
    }
    for (int k = 0; k < d->n_classes; k++) free(d->class_names[k]);
    free(d->class_names);
    d->n_classes = 10;
    set_names(d, fashion_names);
    return 0;
}
