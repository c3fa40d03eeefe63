// Whole-file reads and atomic (tmp + fsync + rename + fsync dir) writes.
#include "robustcv/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "robustcv/error.h"

int rcv_file_read(const char *path, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return rcv_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return rcv_fail("%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = rcv_xmalloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != n) {
        free(buf);
        return rcv_fail("%s: read %zu of %zu bytes", path, got, n);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

int rcv_atomic_open(rcv_atomic_file *a, const char *path) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + 32;
    a->tmp = rcv_xmalloc(n);
    snprintf(a->tmp, n, "%s.tmp.%d", path, (int)getpid());
    a->path = rcv_xstrdup(path);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        rcv_fail("%s: cannot create the temporary file %s: %s", path, a->tmp, strerror(e));
        free(a->tmp);
        free(a->path);
        memset(a, 0, sizeof *a);
        return -1;
    }
    return 0;
}

int rcv_atomic_write(rcv_atomic_file *a, const void *p, size_t n) {
    if (a->failed) return -1;
    if (n && fwrite(p, 1, n, a->f) != n) {
        a->failed = 1;
        return rcv_fail("%s: writing %s failed: %s", a->path, a->tmp, strerror(errno));
    }
    return 0;
}

static void atomic_release(rcv_atomic_file *a) {
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

void rcv_atomic_abort(rcv_atomic_file *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    atomic_release(a);
}

static int fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = rcv_xstrdup(".");
    else if (slash == path) dir = rcv_xstrdup("/");
    else {
        dir = rcv_xmalloc((size_t)(slash - path) + 1);
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0) rc = rcv_fail("%s: fsync of directory %s failed: %s", path, dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

int rcv_atomic_commit(rcv_atomic_file *a) {
    if (!a->f) return rcv_fail("atomic write: file not open");
    if (a->failed) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", rcv_error());
        rcv_atomic_abort(a);
        return rcv_fail("%s", msg);
    }
    const char *step = NULL;
    if (fflush(a->f) != 0) step = "flush";
    else if (fsync(fileno(a->f)) != 0) step = "fsync";
    int e = errno;
    if (fclose(a->f) != 0 && !step) { step = "close"; e = errno; }
    a->f = NULL;
    if (!step && rename(a->tmp, a->path) != 0) { step = "rename"; e = errno; }
    if (step) {
        rcv_fail("%s: %s of %s failed: %s", a->path, step, a->tmp, strerror(e));
        unlink(a->tmp);
        atomic_release(a);
        return -1;
    }
    int rc = fsync_dir(a->path);
    atomic_release(a);
    return rc;
}

int rcv_file_write_atomic(const char *path, const void *data, size_t len) {
    rcv_atomic_file a;
    if (rcv_atomic_open(&a, path)) return -1;
    if (rcv_atomic_write(&a, data, len)) { rcv_atomic_abort(&a); return -1; }
    return rcv_atomic_commit(&a);
}

int rcv_file_append_atomic(const char *path, const void *data, size_t len) {
    uint8_t *old = NULL;
    size_t n = 0;
    if (access(path, F_OK) == 0 && rcv_file_read(path, &old, &n)) return -1;
    rcv_atomic_file a;
    int rc = rcv_atomic_open(&a, path);
    if (!rc) {
        rc = rcv_atomic_write(&a, old, n) || rcv_atomic_write(&a, data, len) ? (rcv_atomic_abort(&a), -1)
                                                                               : rcv_atomic_commit(&a);
    }
    free(old);
    return rc;
}

int rcv_mkdir_p(const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return rcv_fail("cannot create directory %.64s...: the path is longer than %zu bytes", path, sizeof tmp - 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return rcv_fail("cannot create directory %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return rcv_fail("cannot create directory %s: %s", tmp, strerror(errno));
    return 0;
}
