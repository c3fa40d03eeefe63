// A read-only zip reader over a buffer in memory, enough for torch.save archives: the central
// directory (ZIP64 end record, locator and extra fields included), stored (method 0) and
// deflated (method 8, zlib) entries. Every offset and size is checked against the buffer before
// use; encrypted, multi-disk and other methods are refused with a message naming the entry.
#ifndef RCV_ZIP_H
#define RCV_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *name;         // NUL-terminated copy of the entry's name
    int method;         // 0 stored, 8 deflated
    uint32_t crc;
    uint64_t csize;     // bytes in the archive
    uint64_t size;      // bytes once extracted
    uint64_t data;      // offset of the entry's (compressed) bytes in the buffer
} rcv_zip_entry;

typedef struct {
    const char *path;   // for messages (not owned)
    const uint8_t *buf; // not owned
    size_t len;
    rcv_zip_entry *e;
    int n;
} rcv_zip;

// Parses the central directory of buf[0..len). -1 names path and the field that is wrong.
int rcv_zip_open(rcv_zip *z, const uint8_t *buf, size_t len, const char *path);
void rcv_zip_close(rcv_zip *z);
const rcv_zip_entry *rcv_zip_find(const rcv_zip *z, const char *name);
// An entry's bytes, CRC-32 checked: a stored entry is a view into the buffer (*owned = NULL); a
// deflated one is inflated into *owned (malloc'ed, at most max_size bytes, else -1).
int rcv_zip_read(const rcv_zip *z, const rcv_zip_entry *e, size_t max_size, const uint8_t **data, uint8_t **owned);

#endif
