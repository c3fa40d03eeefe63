// Tiny-ImageNet-C (Hendrycks & Dietterich): the Tiny ImageNet validation images under 15
// corruptions at 5 severities, root/<corruption>/<severity>/<wnid>/*.JPEG. Classes are the
// wnid directories sorted by name, the order Tiny ImageNet's train split gets here.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/listing.h"
#include "robustcv/error.h"

int rcv_tinyimagenet_c_load(rcv_dataset *d, const char *root, const char *corruption, int severity,
                            const rcv_source_opts *opts) {
    memset(d, 0, sizeof *d);
    rcv_source_opts o = *opts;
    if (o.size <= 0) o.size = 64;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", root, corruption);
    if (!rcv_is_dir(p)) {
        char **names;
        int n;
        char have[1024] = "";
        if (rcv_list_dir(root, 1, &names, &n) == 0) {
            for (int i = 0; i < n; i++)
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "", names[i]);
            rcv_free_names(names, n);
        }
        return rcv_fail("tiny-imagenet-c: no corruption '%s' in %s (it has: %s)", corruption, root,
                        *have ? have : "nothing");
    }
    snprintf(p, sizeof p, "%s/%s/%d", root, corruption, severity);
    if (!rcv_is_dir(p))
        return rcv_fail("tiny-imagenet-c: %s does not exist; severity %d, expected 1..5", p, severity);
    rcv_listing l = {0};
    char **ids;
    int nc;
    if (rcv_list_dir(p, 1, &ids, &nc)) return -1;
    if (nc == 0) {
        free(ids);
        return rcv_fail("tiny-imagenet-c: %s has no class directories", p);
    }
    l.n_classes = nc;
    l.class_ids = ids;
    l.class_names = rcv_xcalloc((size_t)nc, sizeof(char *));
    for (int k = 0; k < nc; k++) l.class_names[k] = rcv_xstrdup(ids[k]);
    for (int k = 0; k < nc; k++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", p, ids[k]);
        char **files;
        int nf;
        if (rcv_list_dir(dir, 0, &files, &nf)) {
            rcv_listing_free(&l);
            return -1;
        }
        for (int i = 0; i < nf; i++) {
            char f[4400];
            snprintf(f, sizeof f, "%s/%s", dir, files[i]);
            rcv_listing_add(&l, f, k, NULL);
        }
        rcv_free_names(files, nf);
    }
    char *abs = realpath(p, NULL);
    char key[4200], label[128];
    snprintf(key, sizeof key, "tiny-imagenet-c|%s", abs ? abs : p);
    snprintf(label, sizeof label, "tinyc-%s-%d", corruption, severity);
    free(abs);
    return rcv_listing_load(&l, key, label, p, &o, d);
}
