// A generic image folder, torchvision ImageFolder's layout: root/<class>/*.{jpg,jpeg,png},
// classes sorted by directory name.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/listing.h"
#include "robustcv/error.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int rcv_folder_load(rcv_dataset *d, const char *root, const char *classes_from, const rcv_source_opts *o) {
    memset(d, 0, sizeof *d);
    if (!rcv_is_dir(root)) return rcv_fail("folder: %s is not a directory", root);
    rcv_listing l = {0};
    char **classes, **dirs;
    int nc, nd;
    const char *cdir = classes_from ? classes_from : root;
    if (rcv_list_dir(cdir, 1, &classes, &nc)) return -1;
    if (nc == 0) {
        free(classes);
        return rcv_fail("folder: %s has no class directories, expected %s/<class>/*.jpg|png", cdir, cdir);
    }
    if (rcv_list_dir(root, 1, &dirs, &nd)) {
        rcv_free_names(classes, nc);
        return -1;
    }
    l.n_classes = nc;
    l.class_ids = classes;
    l.class_names = rcv_xcalloc((size_t)nc, sizeof(char *));
    for (int k = 0; k < nc; k++) l.class_names[k] = rcv_xstrdup(classes[k]);
    int rc = 0;
    char p[4096];
    for (int j = 0; j < nd && !rc; j++) {
        // A directory of this tree that the class list lacks would get no label: refuse it.
        char **hit = bsearch(&dirs[j], classes, (size_t)nc, sizeof(char *), cmp_str);
        if (!hit) {
            rc = rcv_fail("folder: %s/%s is not one of the %d classes of %s", root, dirs[j], nc, cdir);
            break;
        }
        snprintf(p, sizeof p, "%s/%s", root, dirs[j]);
        char **files;
        int nf;
        if (rcv_list_dir(p, 0, &files, &nf)) {
            rc = -1;
            break;
        }
        for (int i = 0; i < nf; i++) {
            snprintf(p, sizeof p, "%s/%s/%s", root, dirs[j], files[i]);
            rcv_listing_add(&l, p, (int32_t)(hit - classes), NULL);
        }
        rcv_free_names(files, nf);
    }
    rcv_free_names(dirs, nd);
    if (rc) {
        rcv_listing_free(&l);
        return -1;
    }
    char *abs = realpath(root, NULL), *cabs = realpath(cdir, NULL);
    char key[8400], label[128];
    snprintf(key, sizeof key, "folder|%s|%s", abs ? abs : root, cabs ? cabs : cdir);
    const char *base = strrchr(abs ? abs : root, '/');
    snprintf(label, sizeof label, "folder-%s", base ? base + 1 : root);
    free(abs);
    free(cabs);
    return rcv_listing_load(&l, key, label, root, o, d);
}
