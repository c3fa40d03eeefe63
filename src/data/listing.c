// From a list of image files to a dataset: fingerprint the files, map the packed cache
// when it was made from exactly these files, otherwise decode them all (in parallel),
// convert, resize, and write the cache for the next run.
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/listing.h"
#include "robustcv/error.h"
#include "robustcv/image.h"

void rcv_source_opts_defaults(rcv_source_opts *o) { memset(o, 0, sizeof *o); }

void rcv_listing_add(rcv_listing *l, const char *path, int32_t label, const float *box) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->paths = rcv_xrealloc(l->paths, (size_t)l->cap * sizeof(char *));
        l->labels = rcv_xrealloc(l->labels, (size_t)l->cap * sizeof(int32_t));
        if (l->with_boxes) l->boxes = rcv_xrealloc(l->boxes, (size_t)l->cap * 4 * sizeof(float));
    }
    l->paths[l->n] = rcv_xstrdup(path);
    l->labels[l->n] = label;
    if (l->with_boxes) memcpy(l->boxes + 4 * (size_t)l->n, box, 4 * sizeof(float));
    l->n++;
}

void rcv_listing_add_meta(rcv_listing *l, const char *path) {
    l->meta = rcv_xrealloc(l->meta, (size_t)(l->n_meta + 1) * sizeof(char *));
    l->meta[l->n_meta++] = rcv_xstrdup(path);
}

void rcv_free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

void rcv_listing_free(rcv_listing *l) {
    rcv_free_names(l->paths, l->n);
    free(l->labels);
    free(l->boxes);
    rcv_free_names(l->class_ids, l->class_ids ? l->n_classes : 0);
    rcv_free_names(l->class_names, l->class_names ? l->n_classes : 0);
    rcv_free_names(l->meta, l->n_meta);
    memset(l, 0, sizeof *l);
}

int rcv_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int rcv_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int rcv_list_dir(const char *dir, int want_dirs, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp) return rcv_fail("%s: cannot list the directory: %s", dir, strerror(errno));
    int cap = 0;
    char path[4096];
    for (struct dirent *e; (e = readdir(dp));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (want_dirs ? !rcv_is_dir(path) : !(is_image_name(e->d_name) && rcv_is_file(path))) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            *names = rcv_xrealloc(*names, (size_t)cap * sizeof(char *));
        }
        (*names)[(*n)++] = rcv_xstrdup(e->d_name);
    }
    closedir(dp);
    if (*n) qsort(*names, (size_t)*n, sizeof(char *), cmp_str);
    return 0;
}

// Hash of every listed file's name, size and modification time (and the options that change
// the decoded pixels): a changed, added or removed file gives another fingerprint.
static int fingerprint(const rcv_listing *l, const rcv_source_opts *o, uint64_t *out) {
    uint64_t h = rcv_hash64("robustcv-pack-1", 15, 0);
    int32_t opt[3] = {o->size, o->gray, o->skip_bad};
    h = rcv_hash64(opt, sizeof opt, h);
    for (int pass = 0; pass < 2; pass++) {
        int n = pass ? l->n_meta : l->n;
        char **paths = pass ? l->meta : l->paths;
        for (int i = 0; i < n; i++) {
            struct stat st;
            if (stat(paths[i], &st)) return rcv_fail("%s: cannot stat: %s", paths[i], strerror(errno));
            int64_t v[3] = {(int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec, (int64_t)st.st_mtim.tv_nsec};
            h = rcv_hash64(paths[i], strlen(paths[i]) + 1, h);
            h = rcv_hash64(v, sizeof v, h);
        }
    }
    h = rcv_hash64(l->labels, (size_t)l->n * sizeof(int32_t), h);
    *out = h;
    return 0;
}

static int mkdir_p(const char *path) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return rcv_fail("cannot create %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return rcv_fail("cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

static void cache_dir(const rcv_source_opts *o, char *out, size_t n) {
    const char *e;
    if (o->cache_dir && *o->cache_dir) snprintf(out, n, "%s", o->cache_dir);
    else if ((e = getenv("RCV_CACHE_DIR")) && *e) snprintf(out, n, "%s", e);
    else if ((e = getenv("XDG_CACHE_HOME")) && *e) snprintf(out, n, "%s/robustcv", e);
    else if ((e = getenv("HOME")) && *e) snprintf(out, n, "%s/.cache/robustcv", e);
    else snprintf(out, n, "/tmp/robustcv-cache");
}

// Decodes one file to exactly w x h x c pixels; *ow, *oh get its original size.
static int decode_one(const char *path, int w, int h, int c, uint8_t *out, int *ow, int *oh) {
    rcv_image im, t;
    if (rcv_image_load(path, &im)) return -1;
    *ow = im.w;
    *oh = im.h;
    if (c == 1) {
        rcv_image_to_gray(&im, &t);
        rcv_image_free(&im);
        im = t;
    }
    if (im.w != w || im.h != h) {
        rcv_image_resize_bilinear(&im, w, h, &t);
        rcv_image_free(&im);
        im = t;
    }
    memcpy(out, im.pix, (size_t)w * h * c);
    rcv_image_free(&im);
    return 0;
}

static int decode_all(rcv_listing *l, const rcv_source_opts *o, const char *source, rcv_dataset *d) {
    int size = o->size, c = o->gray ? 1 : 3;
    if (l->n == 0) return rcv_fail("%s: no images found", source);
    if (size <= 0) { // the first readable image's size (a square of its larger side would distort it)
        for (int i = 0; i < l->n && size <= 0; i++) {
            rcv_image im;
            if (rcv_image_load(l->paths[i], &im) == 0) size = im.w > im.h ? im.w : im.h;
            rcv_image_free(&im);
        }
        if (size <= 0) size = 64;
    }
    size_t per = (size_t)size * size * c;
    uint8_t *pix = rcv_xmalloc((size_t)l->n * per);
    int *dims = rcv_xmalloc((size_t)l->n * 2 * sizeof(int));
    char **err = rcv_xcalloc((size_t)l->n, sizeof(char *));
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < l->n; i++)
        if (decode_one(l->paths[i], size, size, c, pix + (size_t)i * per, &dims[2 * i], &dims[2 * i + 1]))
            err[i] = rcv_xstrdup(rcv_error()); // the message is thread-local: keep it
    // Compact in order, skipping (or failing on) the unreadable ones.
    int kept = 0, skipped = 0, rc = 0;
    for (int i = 0; i < l->n; i++) {
        if (err[i]) {
            if (!o->skip_bad) {
                rcv_fail("%s; add :skip-bad to the data spec to skip unreadable images", err[i]);
                rc = -1;
                break;
            }
            fprintf(stderr, "robustcv: warning: skipping %s\n", err[i]);
            skipped++;
            continue;
        }
        if (kept != i) {
            memmove(pix + (size_t)kept * per, pix + (size_t)i * per, per);
            l->labels[kept] = l->labels[i];
        }
        if (l->with_boxes) {
            // Boxes follow the resize: x scales by size / width, y by size / height.
            float sx = (float)size / (float)dims[2 * i], sy = (float)size / (float)dims[2 * i + 1];
            const float *b = l->boxes + 4 * (size_t)i;
            float nb[4] = {b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy};
            memcpy(l->boxes + 4 * (size_t)kept, nb, sizeof nb);
        }
        kept++;
    }
    for (int i = 0; i < l->n; i++) free(err[i]);
    free(err);
    free(dims);
    if (rc == 0 && kept == 0) rc = rcv_fail("%s: all %d images are unreadable", source, l->n);
    if (rc) {
        free(pix);
        return -1;
    }
    if (skipped) fprintf(stderr, "robustcv: warning: %s: skipped %d of %d images\n", source, skipped, l->n);
    memset(d, 0, sizeof *d);
    d->n = kept, d->c = c, d->h = size, d->w = size;
    d->pixels = pix;
    d->labels = l->labels;
    l->labels = NULL;
    if (l->with_boxes) {
        d->boxes = l->boxes;
        l->boxes = NULL;
    }
    d->n_classes = l->n_classes;
    d->class_names = l->class_names;
    d->class_ids = l->class_ids;
    l->class_names = l->class_ids = NULL;
    d->source = rcv_xstrdup(source);
    return 0;
}

int rcv_listing_load(rcv_listing *l, const char *key, const char *label, const char *source,
                     const rcv_source_opts *o, rcv_dataset *d) {
    memset(d, 0, sizeof *d);
    int rc = -1;
    uint64_t fp = 0;
    char path[1400] = "";
    if (fingerprint(l, o, &fp)) goto out;
    if (!o->no_cache) {
        char dir[1024], safe[64];
        cache_dir(o, dir, sizeof dir);
        size_t k = 0;
        for (const char *s = label; *s && k + 1 < sizeof safe; s++)
            safe[k++] = isalnum((unsigned char)*s) || *s == '-' || *s == '_' ? *s : '-';
        safe[k] = 0;
        int32_t opt[2] = {o->size, o->gray};
        uint64_t kh = rcv_hash64(key, strlen(key), rcv_hash64(opt, sizeof opt, o->skip_bad));
        snprintf(path, sizeof path, "%s/%s-%016llx.rcvpack", dir, safe, (unsigned long long)kh);
        int r = rcv_pack_open(path, fp, source, d);
        if (r == 0) {
            rc = 0;
            goto out;
        }
        if (r < 0) fprintf(stderr, "robustcv: warning: %s; rebuilding it\n", rcv_error());
        if (mkdir_p(dir)) {
            fprintf(stderr, "robustcv: warning: %s; decoding without a cache\n", rcv_error());
            path[0] = 0;
        }
    }
    if (decode_all(l, o, source, d)) goto out;
    if (path[0] && rcv_pack_write(path, d, fp))
        fprintf(stderr, "robustcv: warning: cannot write the cache: %s\n", rcv_error());
    rc = 0;
out:
    rcv_listing_free(l);
    return rc;
}
