// Shared by fuzz_ti_*.c: a two-class Tiny ImageNet tree (4x4 JPEGs) is made once per process in the
// scratch directory; each input replaces one annotation file (TI_FILE) and the split that reads it
// is loaded (size 4, no cache). A successful load must be self-consistent.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/data.h"
#include "robustcv/image.h"

static void ti_text(const char *name, const char *text) { fuzz_write(name, text, strlen(text)); }

static void ti_make_tree(void) {
    static int made;
    if (made) return;
    made = 1;
    rcv_image img;
    rcv_image_alloc(&img, 4, 4, 3);
    for (int i = 0; i < 48; i++) img.pix[i] = (uint8_t)(i * 5);
    const char *jpegs[] = {"train/n01/images/n01_0.JPEG", "train/n01/images/n01_1.JPEG",
                           "train/n02/images/n02_0.JPEG", "val/images/val_0.JPEG", "val/images/val_1.JPEG"};
    for (int i = 0; i < 5; i++)
        if (rcv_jpeg_write(fuzz_write(jpegs[i], "", 0), &img, 90)) abort();
    rcv_image_free(&img);
    ti_text("wnids.txt", "n02\nn01\n");
    ti_text("words.txt", "n01\tgoldfish, Carassius auratus\nn02\ttabby, tabby cat\nn03\tother\n");
    ti_text("train/n01/n01_boxes.txt", "n01_0.JPEG\t0\t0\t3\t3\nn01_1.JPEG\t1\t1\t2\t2\n");
    ti_text("train/n02/n02_boxes.txt", "n02_0.JPEG\t0\t1\t2\t3\n");
    ti_text("val/val_annotations.txt", "val_0.JPEG\tn01\t0\t0\t3\t3\nval_1.JPEG\tn02\t1\t0\t2\t3\n");
}

static int ti_run(const uint8_t *data, size_t size, const char *file, rcv_split split) {
    ti_make_tree();
    const char *root = fuzz_dir();
    fuzz_write(file, data, size);
    rcv_source_opts o;
    rcv_source_opts_defaults(&o);
    o.size = 4;
    o.no_cache = 1;
    rcv_dataset d;
    if (rcv_tinyimagenet_load(&d, root, split, &o) == 0) {
        if (d.n < 1 || d.n_classes < 1 || d.h != 4 || d.w != 4 || d.c != 3) abort();
        for (int i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] >= d.n_classes) abort();
        for (int k = 0; k < d.n_classes; k++)
            if (!d.class_names[k]) abort();
        rcv_dataset_free(&d);
    }
    return 0;
}
