// Checkpoint metadata -> model building (rcv_ckpt_load_model, then its info: epoch, step, rng,
// classes). Input: metadata lines "key=value" ("\n" inside a value, written as the two characters
// backslash n, is a newline). The harness writes a checkpoint holding those strings and the tensors
// of a 1x8x8, 3-class smallcnn, so metadata that matches that model loads completely and metadata
// that declares something else must be refused cleanly, without allocating what it declares.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/json.h"
#include "robustcv/models.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"

// The reference model's tensors as safetensors header entries (the text between the outer braces)
// and data section, made once with rcv_st_write; each input's checkpoint is then assembled here
// with plain writes (rcv_st_write fsyncs, which would make every execution wait for the disk).
static char *entries;
static uint8_t *tensor_data;
static size_t entries_len, data_len;

static void make_reference(void) {
    rcv_model ref;
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    c.in_c = 1, c.in_h = c.in_w = 8, c.n_classes = 3;
    if (rcv_model_build(&ref, "smallcnn", &c)) abort();
    rcv_st_writer *w = rcv_st_writer_new();
    rcv_st_add_graph(w, ref.g);
    const char *p = fuzz_write("ref.safetensors", "", 0);
    if (rcv_st_write(w, p)) abort();
    rcv_st_writer_free(w);
    rcv_model_free(&ref);
    FILE *f = fopen(p, "rb");
    uint8_t len8[8];
    if (!f || fread(len8, 1, 8, f) != 8) abort();
    size_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    char *hdr = malloc(hlen + 1);
    if (fread(hdr, 1, hlen, f) != hlen) abort();
    hdr[hlen] = 0;
    fseek(f, 0, SEEK_END);
    data_len = (size_t)ftell(f) - 8 - hlen;
    fseek(f, (long)(8 + hlen), SEEK_SET);
    tensor_data = malloc(data_len);
    if (fread(tensor_data, 1, data_len, f) != data_len) abort();
    fclose(f);
    // "{...}" plus padding spaces: keep what lies between the outer braces.
    char *open = strchr(hdr, '{'), *close = strrchr(hdr, '}');
    if (!open || !close) abort();
    *close = 0;
    entries = open + 1;
    entries_len = strlen(entries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!entries) make_reference();
    char *text = fuzz_strndup(data, size);
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
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
        rcv_json_key(&w, line);
        rcv_json_string(&w, v);
        n_meta++;
    }
    rcv_json_end_object(&w);
    const char *meta = rcv_json_text(&w);
    size_t hlen = strlen("{\"__metadata__\":") + strlen(meta) + 1 + entries_len + 1;
    uint8_t *file = malloc(8 + hlen + data_len);
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)(hlen >> (8 * i));
    snprintf((char *)file + 8, hlen + 1, "{\"__metadata__\":%s,%s}", meta, entries);
    memcpy(file + 8 + hlen, tensor_data, data_len);
    const char *p = fuzz_write("ckpt.safetensors", file, 8 + hlen + data_len);
    free(file);
    rcv_json_writer_free(&w);
    rcv_model m;
    rcv_ckpt_info info;
    if (rcv_ckpt_load_model(p, &m, &info) == 0) {
        rcv_ckpt_info_free(&info);
        rcv_model_free(&m);
    }
    free(text);
    return 0;
}
