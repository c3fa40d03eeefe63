// The packed cache: a decoded dataset in one file that later runs memory-map instead of
// decoding thousands of JPEGs again.
//
// Layout (little-endian), sections at the offsets the header gives:
//   header   128 bytes: "RCVPACK1", version, header size, source fingerprint, checksum,
//            total size, n, c, h, w, n_classes, flags, section offsets
//   labels   int32 [n]
//   boxes    float [n][4]                    (flag 1)
//   names    n_classes NUL-terminated class names, then n_classes class ids (flag 2)
//   pixels   uint8 [n][h][w][c], 64-byte aligned
// The checksum chains rcv_hash64 over the header (checksum field zeroed) and each section,
// so a truncated or damaged file is noticed before any of it is used.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/listing.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"

#define PACK_MAGIC "RCVPACK1"
#define PACK_VERSION 1u
#define PACK_HEADER 128

enum { FLAG_BOXES = 1, FLAG_IDS = 2 };

typedef struct {
    char magic[8];
    uint32_t version, header_bytes;
    uint64_t fingerprint, checksum, total;
    int32_t n, c, h, w, n_classes;
    uint32_t flags;
    uint64_t labels_off, boxes_off, names_off, names_len, pixels_off;
    uint8_t reserved[PACK_HEADER - 104];
} pack_header;
_Static_assert(sizeof(pack_header) == PACK_HEADER, "pack header is 128 bytes");

static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t fmix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

// Four independent multiply-rotate lanes over 8-byte words: several GB/s, so checking a
// 1.2 GB cache costs well under a second. Not cryptographic: it catches damage, not malice.
uint64_t rcv_hash64(const void *p, size_t n, uint64_t seed) {
    const uint64_t P1 = 0x9e3779b185ebca87ull, P2 = 0xc2b2ae3d27d4eb4full;
    const uint8_t *b = p;
    uint64_t h[4] = {seed + P1, seed ^ P2, rotl(seed, 21) + P2, ~seed};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, b + i + 8 * k, 8);
            h[k] = rotl(h[k] ^ (w * P2), 31) * P1;
        }
    uint64_t t = 0;
    for (int k = 0; i < n; i++, k++) {
        t ^= (uint64_t)b[i] << (8 * (k & 7));
        if ((k & 7) == 7) {
            h[(k >> 3) & 3] = rotl(h[(k >> 3) & 3] ^ (t * P2), 31) * P1;
            t = 0;
        }
    }
    return fmix(h[0] ^ rotl(h[1], 17) ^ rotl(h[2], 31) ^ rotl(h[3], 47) ^ fmix(t ^ (uint64_t)n));
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static void names_blob(const rcv_dataset *d, char **blob, size_t *len) {
    size_t n = 0;
    for (int k = 0; k < d->n_classes; k++) {
        n += strlen(d->class_names[k]) + 1;
        if (d->class_ids) n += strlen(d->class_ids[k]) + 1;
    }
    char *b = rcv_xmalloc(n ? n : 1), *w = b;
    for (int pass = 0; pass < (d->class_ids ? 2 : 1); pass++)
        for (int k = 0; k < d->n_classes; k++) {
            const char *s = pass ? d->class_ids[k] : d->class_names[k];
            size_t l = strlen(s) + 1;
            memcpy(w, s, l);
            w += l;
        }
    *blob = b;
    *len = n;
}

static uint64_t pack_checksum(const pack_header *hd, const void *labels, const void *boxes, const void *names,
                              const void *pixels) {
    pack_header h0 = *hd;
    h0.checksum = 0;
    uint64_t s = rcv_hash64(&h0, sizeof h0, 0);
    s = rcv_hash64(labels, (size_t)hd->n * 4, s);
    if (hd->flags & FLAG_BOXES) s = rcv_hash64(boxes, (size_t)hd->n * 16, s);
    s = rcv_hash64(names, hd->names_len, s);
    return rcv_hash64(pixels, (size_t)hd->n * hd->c * hd->h * hd->w, s);
}

int rcv_pack_write(const char *path, const rcv_dataset *d, uint64_t fingerprint) {
    pack_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, PACK_MAGIC, 8);
    h.version = PACK_VERSION;
    h.header_bytes = PACK_HEADER;
    h.fingerprint = fingerprint;
    h.n = d->n, h.c = d->c, h.h = d->h, h.w = d->w, h.n_classes = d->n_classes;
    h.flags = (d->boxes ? FLAG_BOXES : 0) | (d->class_ids ? FLAG_IDS : 0);
    char *names;
    size_t names_len;
    names_blob(d, &names, &names_len);
    size_t off = PACK_HEADER;
    h.labels_off = off;
    off += (size_t)d->n * 4;
    h.boxes_off = off;
    if (d->boxes) off += (size_t)d->n * 16;
    h.names_off = off;
    h.names_len = names_len;
    off = align_up(off + names_len, 64);
    h.pixels_off = off;
    size_t npix = (size_t)d->n * d->c * d->h * d->w;
    h.total = off + npix;
    h.checksum = pack_checksum(&h, d->labels, d->boxes, names, d->pixels);

    static const uint8_t zeros[64];
    rcv_atomic_file a;
    int rc = -1;
    if (rcv_atomic_open(&a, path)) goto out;
    if (rcv_atomic_write(&a, &h, sizeof h) || rcv_atomic_write(&a, d->labels, (size_t)d->n * 4) ||
        (d->boxes && rcv_atomic_write(&a, d->boxes, (size_t)d->n * 16)) || rcv_atomic_write(&a, names, names_len) ||
        rcv_atomic_write(&a, zeros, h.pixels_off - (h.names_off + names_len)) ||
        rcv_atomic_write(&a, d->pixels, npix)) {
        rcv_atomic_abort(&a);
        goto out;
    }
    rc = rcv_atomic_commit(&a);
out:
    free(names);
    return rc;
}

// Splits the names section into n strings; -1 when it holds fewer.
static int split_names(const char *blob, size_t len, int n, char ***out, size_t *used) {
    char **v = rcv_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    size_t pos = *used;
    for (int k = 0; k < n; k++) {
        const char *e = memchr(blob + pos, 0, len - pos);
        if (!e) {
            rcv_free_names(v, k);
            return -1;
        }
        v[k] = rcv_xstrdup(blob + pos);
        pos = (size_t)(e - blob) + 1;
    }
    *used = pos;
    *out = v;
    return 0;
}

int rcv_pack_open(const char *path, uint64_t fingerprint, const char *source, rcv_dataset *d) {
    memset(d, 0, sizeof *d);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 1;
        rcv_fail("%s: cannot open the cache: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return rcv_fail("%s: cannot stat the cache: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    if (size < PACK_HEADER) {
        close(fd);
        return rcv_fail("%s: truncated cache: %zu bytes, expected at least a %d-byte header", path, size, PACK_HEADER);
    }
    // Private and writable: a step that edits pixels in place (a denoiser, say) gets
    // copy-on-write pages and can never change the cache file.
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return rcv_fail("%s: cannot map the cache: %s", path, strerror(errno));
    pack_header h;
    memcpy(&h, m, sizeof h);
    int rc = -1;
    if (memcmp(h.magic, PACK_MAGIC, 8) || h.header_bytes != PACK_HEADER) {
        rcv_fail("%s: not a robustcv cache (magic '%.8s', expected '%s')", path, h.magic, PACK_MAGIC);
        goto bad;
    }
    if (h.version != PACK_VERSION || h.fingerprint != fingerprint) {
        rc = 1; // made by another version or from other files: rebuild, nothing is wrong
        goto bad;
    }
    if (h.total != size) {
        rcv_fail("%s: truncated cache: %zu bytes, its header says %llu", path, size, (unsigned long long)h.total);
        goto bad;
    }
    size_t npix = (size_t)h.n * h.c * h.h * h.w;
    int ok = h.n >= 0 && h.c > 0 && h.h > 0 && h.w > 0 && h.n_classes > 0 && h.labels_off == PACK_HEADER &&
             h.boxes_off == h.labels_off + (size_t)h.n * 4 &&
             h.names_off == h.boxes_off + ((h.flags & FLAG_BOXES) ? (size_t)h.n * 16 : 0) &&
             h.pixels_off >= h.names_off + h.names_len && h.pixels_off % 64 == 0 && h.pixels_off + npix == h.total;
    if (!ok) {
        rcv_fail("%s: corrupt cache header (n %d, %dx%dx%d, offsets inconsistent with %zu bytes)", path, h.n, h.c, h.h,
                 h.w, size);
        goto bad;
    }
    uint64_t sum = pack_checksum(&h, m + h.labels_off, m + h.boxes_off, m + h.names_off, m + h.pixels_off);
    if (sum != h.checksum) {
        rcv_fail("%s: corrupt cache: checksum %016llx, header says %016llx", path, (unsigned long long)sum,
                 (unsigned long long)h.checksum);
        goto bad;
    }
    size_t used = 0;
    if (split_names((const char *)m + h.names_off, h.names_len, h.n_classes, &d->class_names, &used) ||
        ((h.flags & FLAG_IDS) &&
         split_names((const char *)m + h.names_off, h.names_len, h.n_classes, &d->class_ids, &used))) {
        rcv_free_names(d->class_names, d->class_names ? h.n_classes : 0);
        d->class_names = NULL;
        rcv_fail("%s: corrupt cache: fewer than %d class names", path, h.n_classes);
        goto bad;
    }
    d->n = h.n, d->c = h.c, d->h = h.h, d->w = h.w, d->n_classes = h.n_classes;
    d->labels = (int32_t *)(m + h.labels_off);
    d->boxes = (h.flags & FLAG_BOXES) ? (float *)(m + h.boxes_off) : NULL;
    d->pixels = m + h.pixels_off;
    d->map = m;
    d->map_len = size;
    d->source = rcv_xstrdup(source);
    d->from_cache = 1;
    return 0;
bad:
    munmap(m, size);
    memset(d, 0, sizeof *d);
    return rc;
}
