// Image-tree helpers for `robustcv denoise` and `robustcv corrupt`.
#include "cli/imagetree.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int scan(const char *root, const char *rel, rcv_filelist *l, int *cap) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return rcv_fail("%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue; // ., .., hidden files
        char sub[4096], full[8200];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (stat(full, &st)) continue;
        if (S_ISDIR(st.st_mode)) rc = scan(root, sub, l, cap);
        else if (S_ISREG(st.st_mode)) {
            if (l->n == *cap) {
                *cap = *cap ? 2 * *cap : 256;
                l->rel = rcv_xrealloc(l->rel, sizeof(char *) * (size_t)*cap);
            }
            l->rel[l->n++] = rcv_xstrdup(sub);
        }
    }
    closedir(d);
    return rc;
}

int rcv_filelist_scan(const char *root, rcv_filelist *l) {
    l->rel = NULL;
    l->n = 0;
    int cap = 0;
    if (scan(root, "", l, &cap)) {
        rcv_filelist_free(l);
        return -1;
    }
    if (l->n) qsort(l->rel, (size_t)l->n, sizeof(char *), cmp_str);
    return 0;
}

void rcv_filelist_free(rcv_filelist *l) {
    for (int i = 0; i < l->n; i++) free(l->rel[i]);
    free(l->rel);
    l->rel = NULL;
    l->n = 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

int rcv_is_jpeg_name(const char *n) { return ends_with(n, ".jpg") || ends_with(n, ".jpeg"); }
int rcv_is_image_name(const char *n) { return rcv_is_jpeg_name(n) || ends_with(n, ".png"); }

int rcv_mkdirs_for(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    *slash = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return rcv_fail("%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return rcv_fail("%s: cannot create directory: %s", buf, strerror(errno));
    return 0;
}

int rcv_copy_file(const char *src, const char *dst) {
    uint8_t *data;
    size_t len;
    if (rcv_file_read(src, &data, &len)) return -1;
    int rc = rcv_file_write_atomic(dst, data, len);
    free(data);
    return rc;
}
