// Whole-file reads and crash-safe writes. An atomic write goes to
// "<path>.tmp.<pid>" in the target's directory, is flushed and fsynced, renamed
// over the target, and the directory is fsynced: a crash leaves the old file or
// the new one, never a mix, and a failed write leaves the old file untouched.
#ifndef RCV_FILEIO_H
#define RCV_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Reads a whole file into *data (malloc'ed, with one extra NUL byte after len). -1 names the file.
int rcv_file_read(const char *path, uint8_t **data, size_t *len);

typedef struct {
    FILE *f;
    char *path, *tmp;
    int failed; // a write failed; commit refuses
} rcv_atomic_file;

int rcv_atomic_open(rcv_atomic_file *a, const char *path);
int rcv_atomic_write(rcv_atomic_file *a, const void *p, size_t n);
// fflush + fsync + rename + fsync(dir). On any failure the temporary is removed, the target is
// untouched, and -1 names the step and the file. Frees a's memory either way.
int rcv_atomic_commit(rcv_atomic_file *a);
// Removes the temporary and frees a's memory (after an error on the caller's side).
void rcv_atomic_abort(rcv_atomic_file *a);
// The above in one call.
int rcv_file_write_atomic(const char *path, const void *data, size_t len);

// Appends data to path (created when missing) by rewriting it atomically: a failed append leaves
// the file byte-identical. For small files (a metrics log), not for large ones.
int rcv_file_append_atomic(const char *path, const void *data, size_t len);

// mkdir -p: creates path and its missing parents. -1 names the directory that failed.
int rcv_mkdir_p(const char *path);

#endif
