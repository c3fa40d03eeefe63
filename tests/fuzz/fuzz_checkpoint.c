// Checkpoint metadata -> model building (rcv_ckpt_load_model, then its info: epoch, step, rng,
// classes). Input: metadata lines "key=value" ("\n" inside a value, written as the two characters
// backslash n, is a newline). The harness writes a checkpoint holding those strings and the tensors
// of a 1x8x8, 3-class smallcnn, so metadata that matches that model loads completely and metadata
// that declares something else must be refused cleanly, without allocating what it declares.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/models.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rcv_model ref;
    static int built;
    if (!built) {
        rcv_model_cfg c;
        rcv_model_cfg_defaults(&c);
        c.in_c = 1, c.in_h = c.in_w = 8, c.n_classes = 3;
        if (rcv_model_build(&ref, "smallcnn", &c)) abort();
        built = 1;
    }
    char *text = fuzz_strndup(data, size);
    rcv_st_writer *w = rcv_st_writer_new();
    rcv_st_add_graph(w, ref.g);
    int n_meta = 0;
    for (char *save, *line = strtok_r(text, "\n", &save); line && n_meta < 64; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        char *v = eq + 1, *o = v;
        for (char *s = v; *s; s++) { // "\n" -> newline
            if (s[0] == '\\' && s[1] == 'n') *o++ = '\n', s++;
            else *o++ = *s;
        }
        *o = 0;
        rcv_st_add_meta(w, line, v);
        n_meta++;
    }
    const char *p = fuzz_write("ckpt.safetensors", "", 0);
    if (rcv_st_write(w, p) == 0) {
        rcv_model m;
        rcv_ckpt_info info;
        if (rcv_ckpt_load_model(p, &m, &info) == 0) {
            rcv_ckpt_info_free(&info);
            rcv_model_free(&m);
        }
    }
    rcv_st_writer_free(w);
    free(text);
    return 0;
}
