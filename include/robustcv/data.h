// Datasets held in memory as uint8 HWC images plus int32 labels, and the IDX
// format (MNIST, Fashion-MNIST). Batches come out as [0,1] floats NHWC: the
// model's first op normalizes, so attacks work in pixel space.
#ifndef RCV_DATA_H
#define RCV_DATA_H

#include <stdint.h>

#include "robustcv/rng.h"

#include <stddef.h>

typedef struct {
    int n, c, h, w;
    uint8_t *pixels;     // n * h * w * c, HWC per image
    int32_t *labels;     // n; -1 = unlabeled (Tiny ImageNet's test/images)
    int n_classes;
    char **class_names;  // n_classes names (never NULL after a successful load)
    char *source;        // where it came from, for messages
    float *boxes;        // n x 4 (x0, y0, x1, y1) in pixels of the stored image, or NULL
    char **class_ids;    // n_classes directory names (WordNet ids), or NULL
    // Set when pixels/labels/boxes point into a memory-mapped packed cache (a private,
    // copy-on-write mapping: editing them never changes the file): rcv_dataset_free
    // unmaps instead of freeing them.
    void *map;
    size_t map_len;
    int from_cache;      // 1: read from an existing cache file without decoding any image
} rcv_dataset;

// IDX pair: images (magic 0x00000803: n, rows, cols; uint8) and labels (0x00000801: n; uint8).
// Gzipped or raw (detected from the content). Validates magics, dimensions, equal counts and
// lengths; a truncated file gives "<file>: truncated: expected N bytes of pixel data, got M".
// Class names are "0".."K-1" with K = max label + 1.
int rcv_idx_load(rcv_dataset *d, const char *images_path, const char *labels_path);

#define RCV_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] in dir (NULL: RCV_FASHION_MNIST_DIR), with
// Fashion-MNIST's class names (T-shirt/top, Trouser, ..., Ankle boot).
int rcv_fashion_mnist_load(rcv_dataset *d, const char *dir, int train);

void rcv_dataset_free(rcv_dataset *d);

// --- Image sources (src/data/tinyimagenet.c, folder.c, tinyimagenet_c.c) ---
// Every image is decoded to RGB (grayscale and CMYK JPEGs included), converted to gray
// when asked, and resized (bilinear, rcv_image_resize_bilinear) to size x size when it
// has another size; boxes are scaled with it. The decoded set is kept in a packed cache
// file (src/data/pack.c) and memory-mapped on later opens.
typedef struct {
    int size;              // output side in pixels; 0 = Tiny ImageNet's 64, or the first image's size (folder)
    int gray;              // 1: one channel (PIL's convert("L")), 0: RGB
    int skip_bad;          // a corrupt image is skipped with a warning instead of failing the load
    int no_cache;          // decode every time, write no cache
    const char *cache_dir; // NULL: $RCV_CACHE_DIR, else $XDG_CACHE_HOME/robustcv, else ~/.cache/robustcv
} rcv_source_opts;
void rcv_source_opts_defaults(rcv_source_opts *o);

typedef enum { RCV_SPLIT_TRAIN, RCV_SPLIT_VAL, RCV_SPLIT_TEST } rcv_split;

// Tiny ImageNet (tiny-imagenet-200): classes are the WordNet ids of wnids.txt (or of the
// train/ directories) sorted by name, as torchvision's ImageFolder orders them; class names
// from words.txt. TRAIN: train/<wnid>/images/*.JPEG with boxes from train/<wnid>/<wnid>_boxes.txt;
// VAL: val/images with labels and boxes from val/val_annotations.txt (in that file's order);
// TEST: test/images, unlabeled (labels -1, no boxes).
int rcv_tinyimagenet_load(rcv_dataset *d, const char *root, rcv_split split, const rcv_source_opts *o);
// root/<class>/*.{jpg,jpeg,png} (any case), classes sorted by name like ImageFolder. Images of
// `classes_from` (a directory of the same layout, or NULL) define the class list when given,
// so a val tree with a missing class keeps the train tree's labels.
int rcv_folder_load(rcv_dataset *d, const char *root, const char *classes_from, const rcv_source_opts *o);
// Tiny-ImageNet-C: root/<corruption>/<severity>/<wnid>/*.JPEG, classes sorted by wnid.
int rcv_tinyimagenet_c_load(rcv_dataset *d, const char *root, const char *corruption, int severity,
                            const rcv_source_opts *o);

// Data source specs shared by every command (src/data/source.c):
//   fashion-mnist[:DIR]
//   tiny-imagenet:PATH[:size=N][:gray][:skip-bad][:no-cache][:cache=DIR]   (test split = val/)
//   folder:PATH[:options]     train = PATH/train, test = PATH/val or PATH/test, else PATH for both
//   tiny-imagenet-c:PATH:CORRUPTION:SEVERITY[:options]   (test split only)
int rcv_data_open(const char *spec, int train, rcv_dataset *d);

// Images idx[0..n) scaled to [0,1]: x (n, h, w, c) floats; labels (n) (may be NULL).
void rcv_dataset_batch(const rcv_dataset *d, const int *idx, int n, float *x, int32_t *labels);
// Random permutation of 0..n-1 (rcv_rng_permutation).
void rcv_dataset_shuffle(rcv_rng *r, int *perm, int n);
// Per-channel mean and (population) standard deviation of the pixels in [0,1]; mean/std have c
// entries.
void rcv_dataset_mean_std(const rcv_dataset *d, float *mean, float *std);
// Images per class: counts has n_classes entries.
void rcv_dataset_class_counts(const rcv_dataset *d, int *counts);
// Boxes (x0, y0, x1, y1) in pixels of a w x h image -> fractions of the image size, each
// coordinate clamped to [0, 1]: the targets of a NAME+box model ("boxes" input). n boxes from
// px into out (out may equal px).
void rcv_boxes_normalize(const float *px, int n, int w, int h, float *out);

#endif
