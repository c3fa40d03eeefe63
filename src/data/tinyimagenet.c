// Tiny ImageNet (tiny-imagenet-200): 200 WordNet classes of 64x64 JPEGs with one bounding
// box each.
//   wnids.txt                        one wnid per line (the class set)
//   words.txt                        "wnid<TAB>names" for all of WordNet (class names)
//   train/<wnid>/images/*.JPEG       500 per class
//   train/<wnid>/<wnid>_boxes.txt    "file<TAB>x0<TAB>y0<TAB>x1<TAB>y1"
//   val/images/*.JPEG                10,000
//   val/val_annotations.txt          "file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1"
//   test/images/*.JPEG               10,000, unlabeled
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/listing.h"
#include "robustcv/error.h"
#include "robustcv/models.h" // RCV_MAX_CLASSES, RCV_MAX_SIDE

typedef struct {
    char *name;
    float box[4];
} box_entry;

static int cmp_box(const void *a, const void *b) { return strcmp(((const box_entry *)a)->name, ((const box_entry *)b)->name); }
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Next line of a text buffer without its newline (CR stripped); NULL at the end.
static char *next_line(char **cur) {
    char *s = *cur;
    if (!*s) return NULL;
    char *nl = strchr(s, '\n');
    *cur = nl ? nl + 1 : s + strlen(s);
    if (nl) *nl = 0;
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r') s[n - 1] = 0;
    return s;
}

static int read_text(const char *path, char **text) {
    FILE *f = fopen(path, "rb");
    if (!f) return rcv_fail("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *text = rcv_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = n > 0 ? fread(*text, 1, (size_t)n, f) : 0;
    (*text)[got] = 0;
    fclose(f);
    return 0;
}

// Splits a line at tabs (or runs of spaces) into at most max fields.
static int split_fields(char *s, char **f, int max) {
    int n = 0;
    while (*s && n < max) {
        while (*s == '\t' || *s == ' ') s++;
        if (!*s) break;
        f[n++] = s;
        while (*s && *s != '\t' && *s != ' ') s++;
        if (*s) *s++ = 0;
    }
    return n;
}

// Coordinates are pixels of the stored image: finite and within the largest side a model takes.
static int parse_box(char **f, const char *file, int line, float *box) {
    for (int k = 0; k < 4; k++) {
        char *end;
        box[k] = strtof(f[k], &end);
        if (end == f[k] || *end || !(fabsf(box[k]) <= RCV_MAX_SIDE))
            return rcv_fail("%s:%d: box coordinate '%s', expected a number in -%d..%d (pixels)", file, line, f[k],
                            RCV_MAX_SIDE, RCV_MAX_SIDE);
    }
    return 0;
}

// The class list: wnids.txt sorted (ImageFolder's order), or the train/ directories.
static int read_classes(const char *root, rcv_listing *l) {
    char p[4096];
    snprintf(p, sizeof p, "%s/wnids.txt", root);
    char **ids = NULL;
    int n = 0;
    if (rcv_is_file(p)) {
        char *text, *cur, *s;
        if (read_text(p, &text)) return -1;
        rcv_listing_add_meta(l, p);
        cur = text;
        while ((s = next_line(&cur))) {
            char *f[1];
            if (split_fields(s, f, 1) != 1) continue;
            if (n == RCV_MAX_CLASSES) {
                rcv_fail("%s: more than %d classes", p, RCV_MAX_CLASSES);
                rcv_free_names(ids, n);
                free(text);
                return -1;
            }
            ids = rcv_xrealloc(ids, (size_t)(n + 1) * sizeof(char *));
            ids[n++] = rcv_xstrdup(f[0]);
        }
        free(text);
        if (n) qsort(ids, (size_t)n, sizeof(char *), cmp_str);
        for (int i = 1; i < n; i++)
            if (!strcmp(ids[i], ids[i - 1])) {
                rcv_fail("%s: class '%s' is listed twice", p, ids[i]);
                rcv_free_names(ids, n);
                return -1;
            }
    } else {
        snprintf(p, sizeof p, "%s/train", root);
        if (!rcv_is_dir(p))
            return rcv_fail("%s: not a Tiny ImageNet directory: expected wnids.txt or train/<wnid>/ in it", root);
        if (rcv_list_dir(p, 1, &ids, &n)) return -1;
    }
    if (n == 0) return rcv_fail("%s: no classes (wnids.txt is empty and train/ has no class directories)", root);
    l->n_classes = n;
    l->class_ids = ids;
    // Names from words.txt when it has them, else the wnid itself.
    l->class_names = rcv_xcalloc((size_t)n, sizeof(char *));
    snprintf(p, sizeof p, "%s/words.txt", root);
    char *text;
    if (rcv_is_file(p) && read_text(p, &text) == 0) {
        rcv_listing_add_meta(l, p);
        char *cur = text, *s;
        while ((s = next_line(&cur))) {
            char *tab = strchr(s, '\t');
            if (!tab) continue;
            *tab = 0;
            char **hit = bsearch(&s, ids, (size_t)n, sizeof(char *), cmp_str);
            if (hit && !l->class_names[hit - ids]) l->class_names[hit - ids] = rcv_xstrdup(tab + 1);
        }
        free(text);
    }
    for (int k = 0; k < n; k++)
        if (!l->class_names[k]) l->class_names[k] = rcv_xstrdup(ids[k]);
    return 0;
}

static int list_train(const char *root, rcv_listing *l) {
    char p[4096], bp[4096];
    // Boxes are all-or-none: the first class decides, a later class without them is an error.
    snprintf(bp, sizeof bp, "%s/train/%s/%s_boxes.txt", root, l->class_ids[0], l->class_ids[0]);
    l->with_boxes = rcv_is_file(bp);
    for (int k = 0; k < l->n_classes; k++) {
        const char *id = l->class_ids[k];
        snprintf(p, sizeof p, "%s/train/%s/images", root, id);
        char **files;
        int nf;
        if (rcv_list_dir(p, 0, &files, &nf)) return -1;
        box_entry *boxes = NULL;
        int nb = 0;
        if (l->with_boxes) {
            snprintf(bp, sizeof bp, "%s/train/%s/%s_boxes.txt", root, id, id);
            char *text, *cur, *s;
            if (read_text(bp, &text)) {
                rcv_free_names(files, nf);
                return rcv_fail("%s: cannot open (train/%s has boxes, so every class needs them)", bp,
                                l->class_ids[0]);
            }
            rcv_listing_add_meta(l, bp);
            cur = text;
            int line = 0, bad = 0;
            while (!bad && (s = next_line(&cur))) {
                line++;
                char *f[5];
                int nfld = split_fields(s, f, 5);
                if (nfld == 0) continue;
                boxes = rcv_xrealloc(boxes, (size_t)(nb + 1) * sizeof *boxes);
                if (nfld != 5) {
                    bad = rcv_fail("%s:%d: %d fields, expected 'file x0 y0 x1 y1'", bp, line, nfld);
                    break;
                }
                boxes[nb].name = rcv_xstrdup(f[0]);
                if (parse_box(f + 1, bp, line, boxes[nb].box)) bad = -1;
                nb++;
            }
            free(text);
            if (!bad && nb == 0)
                bad = rcv_fail("%s: no boxes (an empty file), expected a line 'file x0 y0 x1 y1' for each of the %d "
                               "images in train/%s/images", bp, nf, id);
            if (nb) qsort(boxes, (size_t)nb, sizeof *boxes, cmp_box);
            if (bad) {
                for (int i = 0; i < nb; i++) free(boxes[i].name);
                free(boxes);
                rcv_free_names(files, nf);
                return -1;
            }
        }
        int rc = 0;
        for (int i = 0; i < nf && !rc; i++) {
            snprintf(p, sizeof p, "%s/train/%s/images/%s", root, id, files[i]);
            const float *box = NULL;
            if (l->with_boxes) {
                box_entry key = {files[i], {0}};
                box_entry *hit = bsearch(&key, boxes, (size_t)nb, sizeof *boxes, cmp_box);
                if (!hit) rc = rcv_fail("%s: no box for %s", bp, files[i]);
                else box = hit->box;
            }
            if (!rc) rcv_listing_add(l, p, k, box);
        }
        for (int i = 0; i < nb; i++) free(boxes[i].name);
        free(boxes);
        rcv_free_names(files, nf);
        if (rc) return -1;
    }
    return 0;
}

static int list_val(const char *root, rcv_listing *l) {
    char p[4096], ap[4096];
    snprintf(ap, sizeof ap, "%s/val/val_annotations.txt", root);
    char *text, *cur, *s;
    if (read_text(ap, &text)) return rcv_fail("%s: cannot open (Tiny ImageNet's validation labels)", ap);
    rcv_listing_add_meta(l, ap);
    l->with_boxes = 1;
    cur = text;
    int line = 0, rc = 0;
    while (!rc && (s = next_line(&cur))) {
        line++;
        char *f[6];
        int nf = split_fields(s, f, 6);
        if (nf == 0) continue;
        if (nf != 6) {
            rc = rcv_fail("%s:%d: %d fields, expected 'file wnid x0 y0 x1 y1'", ap, line, nf);
            break;
        }
        char **hit = bsearch(&f[1], l->class_ids, (size_t)l->n_classes, sizeof(char *), cmp_str);
        if (!hit) {
            rc = rcv_fail("%s:%d: class '%s' is not in wnids.txt", ap, line, f[1]);
            break;
        }
        float box[4];
        if (parse_box(f + 2, ap, line, box)) rc = -1;
        else {
            snprintf(p, sizeof p, "%s/val/images/%s", root, f[0]);
            if (!rcv_is_file(p)) rc = rcv_fail("%s:%d: image %s does not exist", ap, line, p);
            else rcv_listing_add(l, p, (int32_t)(hit - l->class_ids), box);
        }
    }
    free(text);
    return rc;
}

static int list_test(const char *root, rcv_listing *l) {
    char p[4096];
    snprintf(p, sizeof p, "%s/test/images", root);
    char **files;
    int nf;
    if (rcv_list_dir(p, 0, &files, &nf)) return -1;
    for (int i = 0; i < nf; i++) {
        snprintf(p, sizeof p, "%s/test/images/%s", root, files[i]);
        rcv_listing_add(l, p, -1, NULL);
    }
    rcv_free_names(files, nf);
    return 0;
}

int rcv_tinyimagenet_load(rcv_dataset *d, const char *root, rcv_split split, const rcv_source_opts *opts) {
    memset(d, 0, sizeof *d);
    rcv_source_opts o = *opts;
    if (o.size <= 0) o.size = 64;
    rcv_listing l = {0};
    static const char *split_name[3] = {"train", "val", "test"};
    if (!rcv_is_dir(root)) return rcv_fail("tiny-imagenet: %s is not a directory", root);
    int rc = read_classes(root, &l);
    if (!rc) rc = split == RCV_SPLIT_TRAIN ? list_train(root, &l) : split == RCV_SPLIT_VAL ? list_val(root, &l)
                                                                                         : list_test(root, &l);
    if (rc) {
        rcv_listing_free(&l);
        return -1;
    }
    char *abs = realpath(root, NULL);
    char key[4200], label[128], source[4200];
    snprintf(key, sizeof key, "tiny-imagenet|%s|%s", abs ? abs : root, split_name[split]);
    const char *base = strrchr(abs ? abs : root, '/');
    snprintf(label, sizeof label, "%s-%s", base ? base + 1 : root, split_name[split]);
    snprintf(source, sizeof source, "%s/%s", root, split_name[split]);
    free(abs);
    return rcv_listing_load(&l, key, label, source, &o, d);
}
