// safetensors files (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}},
// then the raw little-endian data. Readers validate everything (header JSON, dtypes, offsets
// inside the file, shapes matching byte counts) and name the file in errors. Writers write a
// temporary file in the same directory, fsync it, rename it over the target and fsync the
// directory: a crash leaves either the old file or the new one, never half of one.
#ifndef RCV_SAFETENSORS_H
#define RCV_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/graph.h"

typedef enum { RCV_DT_F32, RCV_DT_F16, RCV_DT_BF16, RCV_DT_F64, RCV_DT_I64, RCV_DT_I32, RCV_DT_U8, RCV_DT_BOOL } rcv_dtype;
const char *rcv_dtype_name(rcv_dtype dt); // "F32", ...
size_t rcv_dtype_size(rcv_dtype dt);

typedef struct {
    char *name;
    rcv_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    size_t begin, end; // byte offsets into the data section
} rcv_st_tensor;

typedef struct {
    char *path;
    uint8_t *file;    // whole file (read into memory)
    size_t file_len;
    const uint8_t *data; // start of the data section
    size_t data_len;
    rcv_st_tensor *t;
    int n;
    char **meta_key, **meta_val;
    int n_meta;
} rcv_safetensors;

int rcv_st_open(rcv_safetensors *st, const char *path);
void rcv_st_close(rcv_safetensors *st);
const rcv_st_tensor *rcv_st_find(const rcv_safetensors *st, const char *name);
const void *rcv_st_data(const rcv_safetensors *st, const rcv_st_tensor *t);
const char *rcv_st_meta(const rcv_safetensors *st, const char *key); // NULL if absent
// Copies tensor `name` into out as float32 (converting F16/BF16/F64/I64/I32/U8), after checking that its
// element count is `numel`. -1 with a message naming file, tensor and the counts otherwise.
int rcv_st_read_f32(const rcv_safetensors *st, const char *name, float *out, size_t numel);
// Same for integers (I64/I32/U8/BOOL as is; float dtypes must hold whole numbers).
int rcv_st_read_i64(const rcv_safetensors *st, const char *name, int64_t *out, size_t numel);
// n elements of dtype dt at src (any alignment) to float32.
void rcv_st_convert_f32(rcv_dtype dt, const void *src, float *out, size_t n);
// IEEE half and bfloat16 conversions (round to nearest even; NaN and inf kept).
float rcv_half_to_float(uint16_t h);
uint16_t rcv_float_to_half(float f);
uint16_t rcv_float_to_bf16(float f);

typedef struct rcv_st_writer rcv_st_writer;
rcv_st_writer *rcv_st_writer_new(void);
// Adds a tensor; the data is copied, so the caller's buffer may change afterwards.
void rcv_st_add(rcv_st_writer *w, const char *name, rcv_dtype dt, int ndim, const int64_t *shape, const void *data);
void rcv_st_add_meta(rcv_st_writer *w, const char *key, const char *val);
// Atomic, see above. Tensors appear in the header in insertion order; their data is laid out
// 8-byte dtypes first, then 4, 2 and 1 (each aligned, no holes). A misuse of rcv_st_add (duplicate
// name, bad dtype) is reported here and nothing is written.
int rcv_st_write(rcv_st_writer *w, const char *path);
void rcv_st_writer_free(rcv_st_writer *w);

// A graph's state_dict: every parameter and buffer under its torchvision name
// (F32; num_batches_tracked as I64), so PyTorch's load_state_dict accepts it.
void rcv_st_add_graph(rcv_st_writer *w, const rcv_graph *g);
// Loads parameters and buffers by name. Shapes must match exactly. strict: every
// graph tensor must be present; otherwise missing ones are listed in *missing
// (count) and left unchanged. Unknown names in the file are ignored when
// `ignore_unexpected`, else an error. skip_prefix (may be NULL): names starting with it are not loaded
// (e.g. "fc." to re-initialise the classifier).
int rcv_st_load_graph(const rcv_safetensors *st, rcv_graph *g, int strict, int ignore_unexpected,
                      const char *skip_prefix, int *missing);

#endif
