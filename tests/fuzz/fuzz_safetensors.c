// safetensors files (rcv_st_open: header length, JSON header, dtypes, offsets, shapes), every tensor
// read as float32 and as int64, then loaded by name into a small model (non-strict, so a file with
// some of its tensors exercises the shape checks). Input: the whole file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/models.h"
#include "robustcv/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rcv_model m;
    static int built;
    if (!built) {
        rcv_model_cfg c;
        rcv_model_cfg_defaults(&c);
        c.in_c = 1, c.in_h = c.in_w = 8, c.n_classes = 3;
        if (rcv_model_build(&m, "smallcnn", &c)) abort();
        built = 1;
    }
    const char *p = fuzz_write("x.safetensors", data, size);
    rcv_safetensors st;
    if (rcv_st_open(&st, p)) return 0;
    for (int i = 0; i < st.n; i++) {
        const rcv_st_tensor *t = &st.t[i];
        if (t->end < t->begin || t->end > st.data_len || t->numel * rcv_dtype_size(t->dtype) != t->end - t->begin) {
            fprintf(stderr, "tensor %s: [%zu, %zu) of %zu data bytes, %zu elements\n", t->name, t->begin, t->end,
                    st.data_len, t->numel);
            abort();
        }
        if (rcv_st_find(&st, t->name) == NULL) abort();
        float *f = malloc((t->numel ? t->numel : 1) * sizeof(float));
        int64_t *q = malloc((t->numel ? t->numel : 1) * sizeof(int64_t));
        (void)rcv_st_read_f32(&st, t->name, f, t->numel);
        (void)rcv_st_read_i64(&st, t->name, q, t->numel);
        (void)rcv_st_read_f32(&st, t->name, f, t->numel ? t->numel - 1 : 0); // a wrong count: an error
        free(q);
        free(f);
    }
    for (int i = 0; i < st.n_meta; i++) (void)rcv_st_meta(&st, st.meta_key[i]);
    int missing = 0;
    (void)rcv_st_load_graph(&st, m.g, 0, (int)(size & 1), size & 2 ? "fc." : NULL, &missing);
    rcv_st_close(&st);
    return 0;
}
