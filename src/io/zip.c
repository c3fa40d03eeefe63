// Zip archives read from memory (APPNOTE.TXT 6.3: 4.3.7 local header, 4.3.12 central directory,
// 4.3.14-16 ZIP64 end record and locator, 4.5.3 ZIP64 extra field). The central directory is the
// authority for names, sizes and offsets; each local header is checked to agree on its signature
// and only its name and extra lengths are taken from it.
#include "robustcv/zip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "robustcv/error.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

// [off, off + n) lies inside a buffer of len bytes (no overflow).
static int inside(uint64_t off, uint64_t n, size_t len) { return off <= len && n <= len - off; }

void rcv_zip_close(rcv_zip *z) {
    if (!z) return;
    for (int i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    memset(z, 0, sizeof *z);
}

// The end of central directory record: the last signature in the final 64 KiB + 22 bytes whose
// comment length reaches exactly the end of the buffer (a signature inside a comment does not).
static int64_t find_eocd(const uint8_t *b, size_t len) {
    if (len < 22) return -1;
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (rd32(b + i) == SIG_EOCD && i + 22 + rd16(b + i + 20) == len) return (int64_t)i;
    for (size_t i = len - 22 + 1; i-- > lo;) // tolerate trailing bytes after the comment
        if (rd32(b + i) == SIG_EOCD) return (int64_t)i;
    return -1;
}

// Reads the ZIP64 extra field (id 1) of a central record: the 8-byte values present are those
// whose 32-bit (16-bit for the disk) field is saturated, in the order size, csize, offset, disk.
static int zip64_extra(const rcv_zip *z, const char *name, const uint8_t *x, size_t xlen, uint64_t *size,
                       uint64_t *csize, uint64_t *off, uint32_t *disk) {
    int need_size = *size == 0xFFFFFFFFu, need_csize = *csize == 0xFFFFFFFFu, need_off = *off == 0xFFFFFFFFu,
        need_disk = *disk == 0xFFFFu;
    if (!(need_size || need_csize || need_off || need_disk)) return 0;
    for (size_t i = 0; i + 4 <= xlen;) {
        uint16_t id = rd16(x + i), n = rd16(x + i + 2);
        if (i + 4 + n > xlen) break;
        if (id == 1) {
            const uint8_t *p = x + i + 4, *e = p + n;
            if (need_size) { if (p + 8 > e) goto short_field; *size = rd64(p); p += 8; }
            if (need_csize) { if (p + 8 > e) goto short_field; *csize = rd64(p); p += 8; }
            if (need_off) { if (p + 8 > e) goto short_field; *off = rd64(p); p += 8; }
            if (need_disk) { if (p + 4 > e) goto short_field; *disk = rd32(p); }
            return 0;
        }
        i += 4 + (size_t)n;
    }
    return rcv_fail("%s: zip entry '%s' has saturated 32-bit sizes or offset but no ZIP64 extra field (id 1) "
                    "holding them; the central directory is corrupt",
                    z->path, name);
short_field:
    return rcv_fail("%s: zip entry '%s': its ZIP64 extra field is too short for the values it must hold; the "
                    "central directory is corrupt",
                    z->path, name);
}

int rcv_zip_open(rcv_zip *z, const uint8_t *buf, size_t len, const char *path) {
    memset(z, 0, sizeof *z);
    z->path = path;
    z->buf = buf;
    z->len = len;
    int64_t eo = find_eocd(buf, len);
    if (eo < 0)
        return rcv_fail("%s: no zip end-of-central-directory record in the last %zu bytes (truncated, or not a zip "
                        "archive)",
                        path, len < 65557 ? len : (size_t)65557);
    const uint8_t *e = buf + eo;
    uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (n == 0xFFFF || n_disk == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu || disk == 0xFFFF ||
        cd_disk == 0xFFFF) {
        // ZIP64: the locator sits right before the end record and points at the ZIP64 end record.
        if (eo < 20 || rd32(e - 20) != SIG_LOC64)
            return rcv_fail("%s: zip end record at byte %lld has saturated fields but no ZIP64 locator before it "
                            "(truncated or corrupt archive)",
                            path, (long long)eo);
        uint64_t o64 = rd64(e - 20 + 8);
        if (!inside(o64, 56, (size_t)eo - 20) || rd32(buf + o64) != SIG_EOCD64)
            return rcv_fail("%s: ZIP64 end record offset %llu does not hold a ZIP64 end record (file of %zu bytes)",
                            path, (unsigned long long)o64, len);
        const uint8_t *r = buf + o64;
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_disk = rd64(r + 24);
        n = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n)
        return rcv_fail("%s: a multi-disk zip archive (disk %llu, central directory on disk %llu), expected one file",
                        path, (unsigned long long)disk, (unsigned long long)cd_disk);
    if (!inside(cd_off, cd_size, len))
        return rcv_fail("%s: zip central directory [%llu, +%llu) lies outside the file of %zu bytes (truncated?)",
                        path, (unsigned long long)cd_off, (unsigned long long)cd_size, len);
    if (n > cd_size / 46)
        return rcv_fail("%s: zip end record claims %llu entries, but the central directory of %llu bytes holds at "
                        "most %llu",
                        path, (unsigned long long)n, (unsigned long long)cd_size, (unsigned long long)(cd_size / 46));
    z->e = rcv_xcalloc((size_t)n + 1, sizeof *z->e);
    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd32(buf + p) != SIG_CENTRAL) {
            rcv_fail("%s: zip central directory entry %llu of %llu at byte %llu has no central header signature "
                     "(corrupt central directory)",
                     path, (unsigned long long)i, (unsigned long long)n, (unsigned long long)p);
            goto fail;
        }
        const uint8_t *c = buf + p;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10), nlen = rd16(c + 28), xlen = rd16(c + 30),
                 clen = rd16(c + 32);
        if (end - p - 46 < (uint64_t)nlen + xlen + clen) {
            rcv_fail("%s: zip central directory entry %llu runs past the end of the directory", path,
                     (unsigned long long)i);
            goto fail;
        }
        rcv_zip_entry *ze = &z->e[z->n];
        ze->name = rcv_xmalloc((size_t)nlen + 1);
        memcpy(ze->name, c + 46, nlen);
        ze->name[nlen] = 0;
        z->n++;
        if (strlen(ze->name) != nlen) {
            rcv_fail("%s: zip entry %llu has a NUL byte in its name", path, (unsigned long long)i);
            goto fail;
        }
        uint64_t size = rd32(c + 24), csize = rd32(c + 20), off = rd32(c + 42);
        uint32_t edisk = rd16(c + 34);
        if (zip64_extra(z, ze->name, c + 46 + nlen, xlen, &size, &csize, &off, &edisk)) goto fail;
        if (flags & 1) {
            rcv_fail("%s: zip entry '%s' is encrypted; expected a plain archive as torch.save writes", path, ze->name);
            goto fail;
        }
        if (method != 0 && method != 8) {
            rcv_fail("%s: zip entry '%s' uses compression method %u, expected 0 (stored) or 8 (deflate)", path,
                     ze->name, method);
            goto fail;
        }
        if (method == 0 && csize != size) {
            rcv_fail("%s: stored zip entry '%s' has compressed size %llu but size %llu; expected them equal", path,
                     ze->name, (unsigned long long)csize, (unsigned long long)size);
            goto fail;
        }
        if (!inside(off, 30, len) || rd32(buf + off) != SIG_LOCAL) {
            rcv_fail("%s: zip entry '%s': local header offset %llu does not hold a local header (file of %zu bytes; "
                     "truncated or corrupt)",
                     path, ze->name, (unsigned long long)off, len);
            goto fail;
        }
        uint64_t data = off + 30 + rd16(buf + off + 26) + rd16(buf + off + 28);
        if (!inside(data, csize, len)) {
            rcv_fail("%s: zip entry '%s': data [%llu, +%llu) lies outside the file of %zu bytes (truncated?)", path,
                     ze->name, (unsigned long long)data, (unsigned long long)csize, len);
            goto fail;
        }
        ze->method = method;
        ze->crc = rd32(c + 16);
        ze->csize = csize;
        ze->size = size;
        ze->data = data;
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
    return 0;
fail:
    rcv_zip_close(z);
    return -1;
}

const rcv_zip_entry *rcv_zip_find(const rcv_zip *z, const char *name) {
    for (int i = 0; i < z->n; i++)
        if (!strcmp(z->e[i].name, name)) return &z->e[i];
    return NULL;
}

// zlib's crc32 takes a uInt length: feed large entries in pieces.
static uint32_t crc_of(const uint8_t *p, uint64_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

int rcv_zip_read(const rcv_zip *z, const rcv_zip_entry *e, size_t max_size, const uint8_t **data, uint8_t **owned) {
    *data = NULL;
    *owned = NULL;
    if (e->size > max_size)
        return rcv_fail("%s: zip entry '%s' is %llu bytes, expected at most %zu", z->path, e->name,
                        (unsigned long long)e->size, max_size);
    const uint8_t *src = z->buf + e->data;
    if (e->method == 0) {
        uint32_t c = crc_of(src, e->size);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
        c = e->crc; // let the fuzzer reach the unpickler and the tensor checks through mutated entries
#endif
        if (c != e->crc)
            return rcv_fail("%s: zip entry '%s' has CRC-32 %08x, the central directory says %08x (corrupt data)",
                            z->path, e->name, c, e->crc);
        *data = src;
        return 0;
    }
    // Deflate expands at most ~1032:1, so a claimed size beyond that is a lie, not an allocation to make.
    if (e->size / 1032 > e->csize + 1)
        return rcv_fail("%s: zip entry '%s' claims %llu bytes from %llu compressed, more than deflate can expand",
                        z->path, e->name, (unsigned long long)e->size, (unsigned long long)e->csize);
    uint8_t *out = rcv_xmalloc(e->size ? (size_t)e->size : 1);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
        free(out);
        return rcv_fail("%s: zip entry '%s': zlib inflateInit2 failed", z->path, e->name);
    }
    uint64_t in_left = e->csize, out_done = 0;
    const uint8_t *in = src;
    int zr = Z_OK;
    while (zr == Z_OK) {
        uInt ik = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        uint64_t ol = e->size - out_done;
        uInt ok = ol > (1u << 30) ? (1u << 30) : (uInt)ol;
        s.next_in = (Bytef *)in;
        s.avail_in = ik;
        s.next_out = out + out_done;
        s.avail_out = ok;
        zr = inflate(&s, Z_NO_FLUSH);
        in += ik - s.avail_in;
        in_left -= ik - s.avail_in;
        out_done += ok - s.avail_out;
        if (zr == Z_OK && s.avail_out == ok && s.avail_in == ik) break; // no progress: stuck
        if (zr == Z_BUF_ERROR && out_done == e->size) break;
    }
    inflateEnd(&s);
    if (zr != Z_STREAM_END || out_done != e->size) {
        free(out);
        return rcv_fail("%s: zip entry '%s': deflate data is corrupt or does not give the %llu bytes the directory "
                        "says (got %llu%s)",
                        z->path, e->name, (unsigned long long)e->size, (unsigned long long)out_done,
                        zr == Z_DATA_ERROR ? ", zlib: data error" : "");
    }
    uint32_t c = crc_of(out, e->size);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    c = e->crc;
#endif
    if (c != e->crc) {
        free(out);
        return rcv_fail("%s: zip entry '%s' has CRC-32 %08x, the central directory says %08x (corrupt data)",
                        z->path, e->name, c, e->crc);
    }
    *data = out;
    *owned = out;
    return 0;
}
