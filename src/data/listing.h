// Internal to src/data: a source's list of image files with labels and boxes, before
// decoding, and the step that turns it into an rcv_dataset (decode in parallel, or map
// the packed cache when one made from the same files exists).
#ifndef RCV_DATA_LISTING_H
#define RCV_DATA_LISTING_H

#include <stdint.h>

#include "robustcv/data.h"

typedef struct {
    int n, cap;
    char **paths;        // n image files
    int32_t *labels;     // n
    int with_boxes;      // set by the source before adding
    float *boxes;        // n x 4 in the original image's pixels (with_boxes)
    int n_classes;
    char **class_ids;    // n_classes (may be NULL)
    char **class_names;  // n_classes
    int n_meta;
    char **meta;         // annotation files whose contents define labels/boxes: fingerprinted too
} rcv_listing;

void rcv_listing_add(rcv_listing *l, const char *path, int32_t label, const float *box);
void rcv_listing_add_meta(rcv_listing *l, const char *path);
void rcv_listing_free(rcv_listing *l);

// Decodes the listed images into d, or maps the cache file made from the same files.
// `key` identifies the source and split ("tiny-imagenet|/abs/root|train"), `label` is a
// short readable name for the cache file, `source` goes into d->source. Takes over the
// listing's class names and ids (the listing is freed either way).
int rcv_listing_load(rcv_listing *l, const char *key, const char *label, const char *source,
                     const rcv_source_opts *o, rcv_dataset *d);

// Sorted (strcmp) entries of dir: directories (want_dirs) or image files (.jpg, .jpeg, .png in
// any case). Hidden entries are skipped. -1 names dir when it cannot be read.
int rcv_list_dir(const char *dir, int want_dirs, char ***names, int *n);
void rcv_free_names(char **names, int n);
int rcv_is_dir(const char *path);
int rcv_is_file(const char *path);

// Packed cache (pack.c). 64-bit hash of bytes, chained through `seed`.
uint64_t rcv_hash64(const void *p, size_t n, uint64_t seed);
// Writes d atomically (temporary + fsync + rename).
int rcv_pack_write(const char *path, const rcv_dataset *d, uint64_t fingerprint);
// 0: d maps the cache; 1: no cache, or one made from other files (rebuild quietly);
// -1: the file is corrupt or truncated (message set; rebuild with a warning).
int rcv_pack_open(const char *path, uint64_t fingerprint, const char *source, rcv_dataset *d);

// A --data spec split into its parts without opening anything (source.c; rcv_data_open uses it).
// path, corruption and cache_dir point into buf.
typedef enum { RCV_DATA_FASHION_MNIST, RCV_DATA_TINY_IMAGENET, RCV_DATA_FOLDER, RCV_DATA_TINY_IMAGENET_C } rcv_data_kind;
typedef struct {
    rcv_data_kind kind;
    const char *path, *corruption;
    int severity;
    rcv_source_opts o;
    char buf[4096];
    char *f[16];
} rcv_data_spec;
int rcv_data_spec_parse(const char *spec, int train, rcv_data_spec *s);
#endif
