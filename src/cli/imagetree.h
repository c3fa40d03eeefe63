// Walking image trees for the dataset-writing verbs (denoise, corrupt): a sorted recursive
// listing of regular files, image-name tests, and mkdir -p.
#ifndef RCV_CLI_IMAGETREE_H
#define RCV_CLI_IMAGETREE_H

typedef struct {
    char **rel; // paths relative to the root, sorted
    int n;
} rcv_filelist;

// Regular files under root (recursively, sorted by relative path). -1 names the directory.
int rcv_filelist_scan(const char *root, rcv_filelist *l);
void rcv_filelist_free(rcv_filelist *l);
// .jpg/.jpeg/.png, any case.
int rcv_is_image_name(const char *name);
int rcv_is_jpeg_name(const char *name);
// mkdir -p of the directory part of `path` (everything before the last '/'). -1 names it.
int rcv_mkdirs_for(const char *path);
// Copies a file byte for byte (atomically at dst).
int rcv_copy_file(const char *src, const char *dst);

#endif
