#include "fuzzutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[512];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_dir(void) {
    if (dir[0]) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void) {
    if (dir[0]) return dir;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/rcv-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(dir)) {
        perror(dir);
        abort();
    }
    atexit(rm_dir);
    return dir;
}

static void make_parents(char *p) {
    for (char *s = p + strlen(fuzz_dir()) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(p, 0755);
        *s = '/';
    }
}

static const char *slot(const char *name) {
    static char paths[8][1024];
    static int next;
    char *p = paths[next++ & 7];
    snprintf(p, sizeof paths[0], "%s/%s", fuzz_dir(), name);
    make_parents(p);
    return p;
}

const char *fuzz_write(const char *name, const void *data, size_t len) {
    const char *p = slot(name);
    FILE *f = fopen(p, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f)) {
        perror(p);
        abort();
    }
    return p;
}

const char *fuzz_write_gz(const char *name, const void *data, size_t len) {
    const char *p = slot(name);
    gzFile f = gzopen(p, "wb1");
    if (!f || (len && gzwrite(f, data, (unsigned)len) != (int)len) || gzclose(f) != Z_OK) {
        perror(p);
        abort();
    }
    return p;
}

void fuzz_remove(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir(), name);
    remove(p);
}

char *fuzz_strndup(const uint8_t *data, size_t len) {
    char *s = malloc(len + 1);
    if (len) memcpy(s, data, len);
    s[len] = 0;
    return s;
}

char *fuzz_split(const uint8_t *data, size_t len, const uint8_t **rest, size_t *rest_len) {
    const char *sep = "\n----\n";
    size_t k = 0;
    for (; k + 6 <= len; k++)
        if (!memcmp(data + k, sep, 6)) break;
    if (k + 6 > len) {
        *rest = data + len;
        *rest_len = 0;
        return fuzz_strndup(data, len);
    }
    *rest = data + k + 6;
    *rest_len = len - k - 6;
    return fuzz_strndup(data, k);
}
