// safetensors, JSON and atomic writes: round trips, files written by an independent Python
// writer (tests/oracle/write_safetensors.py) read back exactly, files we write checked by that
// script and loaded into PyTorch modules, and every kind of corrupt file rejected with a message
// naming the file.
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"
#include "robustcv/ops.h"
#include "robustcv/safetensors.h"
#include "testutil.h"

#define PY "/usr/bin/python3 tests/oracle/write_safetensors.py"

static const char *dir;

static float formula(int p, size_t j) { return (float)((int)((j * 7 + (size_t)p * 13) % 101) - 50) / 16.0f; }

static int count_tmp_files(const char *d) {
    DIR *dp = opendir(d);
    int n = 0;
    if (!dp) return -1;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(dp);
    return n;
}

// --- JSON ---

static void test_json(void) {
    rcv_json_value v;
    const char *txt = " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"x\\\"y\\\\z\\n\\u00e9\\ud83d\\ude00\","
                      " \"big\": 9007199254740993, \"o\": {}} ";
    CHECK(rcv_json_parse(txt, strlen(txt), &v) == 0, "%s", rcv_error());
    const rcv_json_value *a = rcv_json_get(&v, "a");
    CHECK(a && a->type == RCV_JSON_ARRAY && a->n == 5, "array");
    if (a && a->n == 5) {
        CHECK(a->items[0].is_int && a->items[0].i64 == 1, "int");
        CHECK(!a->items[1].is_int && a->items[1].num == -2500.0, "float %g", a->items[1].num);
        CHECK(a->items[2].type == RCV_JSON_BOOL && a->items[2].boolean == 1, "true");
        CHECK(a->items[4].type == RCV_JSON_NULL, "null");
    }
    const rcv_json_value *s = rcv_json_get(&v, "s");
    CHECK(s && !strcmp(s->str, "x\"y\\z\n\xc3\xa9\xf0\x9f\x98\x80"), "string escapes: %s", s ? s->str : "");
    const rcv_json_value *big = rcv_json_get(&v, "big");
    CHECK(big && big->is_int && big->i64 == 9007199254740993LL, "exact int64 beyond 2^53");
    CHECK(rcv_json_get(&v, "o") && rcv_json_get(&v, "o")->type == RCV_JSON_OBJECT, "empty object");
    rcv_json_free(&v);

    const char *bad[] = {"{\"a\": 1,}", "[1 2]", "{\"a\" 1}", "\"abc", "tru", "[1,", "{} x", "01", "\"\\q\"", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = rcv_json_parse(bad[i], strlen(bad[i]), &v);
        CHECK(rc == -1 && strstr(rcv_error(), "JSON error at byte"), "bad JSON '%s' accepted or unclear: %s", bad[i],
              rcv_error());
        rcv_json_free(&v);
    }
    // jansson's position, line, column and text, for a mistake on the second line.
    CHECK(rcv_json_parse("{\"a\": 1,\n \"b\" 2}", 16, &v) == -1 && strstr(rcv_error(), "byte 14 (line 2, column 6)") &&
              strstr(rcv_error(), "':' expected"),
          "error position: %s", rcv_error());
    rcv_json_free(&v);
    char deep[200];
    memset(deep, '[', sizeof deep);
    CHECK(rcv_json_parse(deep, sizeof deep, &v) == -1 && strstr(rcv_error(), "nesting"), "depth limit: %s",
          rcv_error());
    rcv_json_free(&v);

    // Writer: Python's json reads back exactly what we meant.
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "epoch");
    rcv_json_int(&w, 3);
    rcv_json_key(&w, "loss");
    rcv_json_number(&w, 0.1);
    rcv_json_key(&w, "acc");
    rcv_json_number(&w, 1.0 / 3.0);
    rcv_json_key(&w, "nan");
    rcv_json_number(&w, NAN);
    rcv_json_key(&w, "name \"q\"");
    rcv_json_string(&w, "tab\there\nnl\x01");
    rcv_json_key(&w, "latin1");
    rcv_json_string(&w, "caf\xe9 \xc3\xa9"); // not UTF-8: the bad byte becomes U+FFFD
    rcv_json_key(&w, "list");
    rcv_json_begin_array(&w);
    rcv_json_number(&w, 1e-8);
    rcv_json_bool(&w, 1);
    rcv_json_begin_object(&w);
    rcv_json_end_object(&w);
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    CHECK(!strstr(rcv_json_text(&w), "0.10000000000000001"), "shortest repr: %s", rcv_json_text(&w));
    char path[512];
    snprintf(path, sizeof path, "%s/m.jsonl", dir);
    CHECK(rcv_json_append_line(path, &w) == 0, "%s", rcv_error());
    CHECK(rcv_json_append_line(path, &w) == 0, "%s", rcv_error());
    int rc = test_sh("/usr/bin/python3 -c \"import json,sys; L=[json.loads(l) for l in open('%s')]; "
                     "want={'epoch':3,'loss':0.1,'acc':1/3,'nan':None,'name \\\"q\\\"':'tab\\there\\nnl\\x01','latin1':'caf\\ufffd \\xe9',"
                     "'list':[1e-8,True,{}]}; sys.exit(0 if L==[want,want] else print(L) or 1)\"",
                     path);
    CHECK(rc == 0, "python json reads the writer's output (rc %d): %s", rc, rcv_json_text(&w));
    // Round trip through our own parser too.
    CHECK(rcv_json_parse(rcv_json_text(&w), w.out.len, &v) == 0, "%s", rcv_error());
    CHECK(rcv_json_get(&v, "acc") && rcv_json_get(&v, "acc")->num == 1.0 / 3.0, "number round trip");
    rcv_json_free(&v);
    rcv_json_writer_free(&w);
}

// --- our writer, our reader ---

static void test_roundtrip(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    rcv_st_writer *w = rcv_st_writer_new();
    float f[6] = {1.5f, -2.25f, 3e-20f, 1e20f, 0.0f, -0.0f};
    int64_t sf[2] = {2, 3};
    rcv_st_add(w, "f", RCV_DT_F32, 2, sf, f);
    uint8_t u[3] = {0, 128, 255};
    int64_t su[1] = {3};
    rcv_st_add(w, "u", RCV_DT_U8, 1, su, u);
    int64_t i64 = -5000000000LL;
    rcv_st_add(w, "n", RCV_DT_I64, 0, NULL, &i64);
    double d[3] = {0.1, -1e300, 7};
    rcv_st_add(w, "d", RCV_DT_F64, 1, su, d);
    f[0] = 99; // the writer copied the data
    rcv_st_add_meta(w, "k", "v \"quoted\"");
    rcv_st_add_meta(w, "k", "v2 \"quoted\""); // replaces
    CHECK(rcv_st_write(w, path) == 0, "%s", rcv_error());
    rcv_st_writer_free(w);
    CHECK(count_tmp_files(dir) == 0, "temporary files left behind");

    rcv_safetensors st;
    CHECK(rcv_st_open(&st, path) == 0, "%s", rcv_error());
    if (st.file) {
        CHECK(st.n == 4, "tensor count %d", st.n);
        CHECK(rcv_st_meta(&st, "k") && !strcmp(rcv_st_meta(&st, "k"), "v2 \"quoted\""), "meta");
        CHECK(rcv_st_meta(&st, "absent") == NULL, "absent meta");
        const rcv_st_tensor *t = rcv_st_find(&st, "f");
        CHECK(t && t->dtype == RCV_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "f header");
        float back[6];
        CHECK(rcv_st_read_f32(&st, "f", back, 6) == 0, "%s", rcv_error());
        f[0] = 1.5f;
        CHECK(!memcmp(back, f, sizeof f), "f values");
        CHECK(rcv_st_read_f32(&st, "f", back, 5) == -1 && strstr(rcv_error(), "rt.safetensors") &&
                  strstr(rcv_error(), "[2, 3]"),
              "numel mismatch: %s", rcv_error());
        CHECK(rcv_st_read_f32(&st, "zz", back, 1) == -1 && strstr(rcv_error(), "'zz'"), "absent: %s", rcv_error());
        float uf[3];
        CHECK(rcv_st_read_f32(&st, "u", uf, 3) == 0 && uf[0] == 0 && uf[1] == 128 && uf[2] == 255, "u8");
        int64_t n;
        CHECK(rcv_st_read_i64(&st, "n", &n, 1) == 0 && n == -5000000000LL, "i64 scalar");
        t = rcv_st_find(&st, "n");
        CHECK(t && t->ndim == 0 && t->numel == 1, "scalar shape []");
        double dd[3];
        t = rcv_st_find(&st, "d");
        if (t) memcpy(dd, rcv_st_data(&st, t), sizeof dd);
        CHECK(t && !memcmp(dd, d, sizeof d), "f64 raw");
        // 8-byte tensors first: n and d aligned.
        CHECK(rcv_st_find(&st, "n")->begin % 8 == 0 && rcv_st_find(&st, "d")->begin % 8 == 0, "alignment");
        CHECK((size_t)(st.data - st.file) % 8 == 0, "header padded to 8");
        rcv_st_close(&st);
    }

    // Writer misuse is reported by write, and nothing is written.
    w = rcv_st_writer_new();
    rcv_st_add(w, "a", RCV_DT_F32, 1, su, f);
    rcv_st_add(w, "a", RCV_DT_F32, 1, su, f);
    char p2[512];
    snprintf(p2, sizeof p2, "%s/dup.safetensors", dir);
    CHECK(rcv_st_write(w, p2) == -1 && strstr(rcv_error(), "added twice") && access(p2, F_OK) != 0, "dup: %s",
          rcv_error());
    rcv_st_writer_free(w);
}

// --- a file written by the Python oracle ---

// The oracle's output for each mode ("== write", "== sd_write"), captured by run_oracle_writes.
static char *oracle_out[2];

static void run_oracle_writes(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, PY " write %s/py.safetensors sd_write %s/torch.safetensors", dir, dir);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen");
    if (!p) return;
    static char line[1 << 16];
    size_t len[2] = {0, 0};
    int k = -1;
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "== ", 3)) { k = !strncmp(line, "== write", 8) ? 0 : 1; continue; }
        if (k < 0) continue;
        size_t n = strlen(line);
        oracle_out[k] = realloc(oracle_out[k], len[k] + n + 1);
        memcpy(oracle_out[k] + len[k], line, n + 1);
        len[k] += n;
    }
    int rc = pclose(p);
    CHECK(rc == 0 && oracle_out[0] && oracle_out[1], "oracle writes failed (%d)", rc);
}

static void test_python_file(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/py.safetensors", dir);
    rcv_safetensors st;
    int opened = 0, n_lines = 0;
    char *lsave = NULL;
    for (char *line = oracle_out[0] ? strtok_r(oracle_out[0], "\n", &lsave) : NULL; line;
         line = strtok_r(NULL, "\n", &lsave)) {
        if (!opened) {
            CHECK(rcv_st_open(&st, path) == 0, "%s", rcv_error());
            opened = 1;
            if (!st.file) break;
        }
        n_lines++;
        char *save, *name = strtok_r(line, " ", &save), *dt = strtok_r(NULL, " ", &save);
        double want[64];
        int64_t iwant[64];
        int n = 0;
        for (char *tok; (tok = strtok_r(NULL, " ", &save)) && n < 64; n++) {
            want[n] = strtod(tok, NULL);
            iwant[n] = strtoll(tok, NULL, 10);
        }
        const rcv_st_tensor *t = rcv_st_find(&st, name);
        CHECK(t && !strcmp(rcv_dtype_name(t->dtype), dt) && t->numel == (size_t)n, "%s: dtype/numel", name);
        if (!t || t->numel != (size_t)n) continue;
        float got[64];
        CHECK(rcv_st_read_f32(&st, name, got, (size_t)n) == 0, "%s", rcv_error());
        int bad = 0;
        for (int i = 0; i < n; i++) bad += !(got[i] == (float)want[i] || (isinf(got[i]) && isinf(want[i])));
        CHECK(bad == 0, "%s: %d values differ from PyTorch's (first: %g vs %g)", name, bad, got[0], want[0]);
        if (t->dtype == RCV_DT_I64) {
            int64_t gi[64];
            CHECK(rcv_st_read_i64(&st, name, gi, (size_t)n) == 0 && !memcmp(gi, iwant, (size_t)n * 8),
                  "%s: exact int64", name);
        }
    }
    CHECK(n_lines == 9, "oracle printed %d tensors", n_lines);
    if (opened && st.file) {
        CHECK(rcv_st_meta(&st, "epoch") && !strcmp(rcv_st_meta(&st, "epoch"), "3"), "metadata");
        const rcv_st_tensor *t = rcv_st_find(&st, "h.scalar");
        CHECK(t && t->ndim == 0 && t->numel == 1, "scalar");
        rcv_st_close(&st);
    }
}

// --- files we write, read by the Python oracle ---

static void test_python_reads_ours(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/ours.safetensors", dir);
    rcv_st_writer *w = rcv_st_writer_new();
    float wf[60];
    for (size_t j = 0; j < 60; j++) wf[j] = formula(0, j);
    int64_t s3[3] = {3, 4, 5};
    rcv_st_add(w, "w.f32", RCV_DT_F32, 3, s3, wf);
    int64_t xi[3] = {-(1LL << 40), 0, (1LL << 40) + 1}, s1[1] = {3};
    rcv_st_add(w, "x.i64", RCV_DT_I64, 1, s1, xi);
    uint16_t yh[7], zb[9];
    for (size_t j = 0; j < 7; j++) yh[j] = rcv_float_to_half(formula(1, j));
    for (size_t j = 0; j < 9; j++) zb[j] = rcv_float_to_bf16(formula(2, j));
    int64_t s7[1] = {7}, s9[1] = {9};
    rcv_st_add(w, "y.f16", RCV_DT_F16, 1, s7, yh);
    rcv_st_add(w, "z.bf16", RCV_DT_BF16, 1, s9, zb);
    int64_t sc = 12345678901LL;
    rcv_st_add(w, "s.i64", RCV_DT_I64, 0, NULL, &sc);
    // Rounding cases: random magnitudes across the half range, ties, overflow, subnormals, NaN.
    enum { NR = 4096 };
    static float src[NR];
    static uint16_t rh[NR], rb[NR];
    fill_uniform(src, NR, 5, -1, 1);
    for (int i = 0; i < NR; i++) src[i] = ldexpf(src[i], (i % 48) - 30);
    float special[] = {65504.0f, 65520.0f, 65519.0f, 1e6f, 5.96e-8f, 2.98e-8f, 2.99e-8f, 1.0f + 1.0f / 2048,
                       1.0f + 3.0f / 2048, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -0.0f, INFINITY, -INFINITY, 3.4e38f, 1.0f + 1.0f / 128};
    // Exact ties for both formats (round to nearest even must pick the even neighbour).
    for (int i = 0; i < 512; i++) {
        uint32_t hi = 0x3000u + (uint32_t)i * 37u; // bf16 tie: low 16 bits 0x8000
        uint32_t bits = (hi << 16) | 0x8000u;
        memcpy(&src[NR - 1024 + i], &bits, 4);
        // half tie: exponent within half's normal range, low 13 mantissa bits 0x1000
        bits = ((uint32_t)(112 + 1 + i % 29) << 23) | ((uint32_t)i * 8191u & 0x7FE000u) | 0x1000u;
        memcpy(&src[NR - 512 + i], &bits, 4);
    }
    memcpy(src, special, sizeof special);
    for (int i = 0; i < NR; i++) { rh[i] = rcv_float_to_half(src[i]); rb[i] = rcv_float_to_bf16(src[i]); }
    int64_t sn[1] = {NR};
    rcv_st_add(w, "rnd.src", RCV_DT_F32, 1, sn, src);
    rcv_st_add(w, "rnd.f16", RCV_DT_F16, 1, sn, rh);
    rcv_st_add(w, "rnd.bf16", RCV_DT_BF16, 1, sn, rb);
    int64_t se[2] = {0, 3};
    rcv_st_add(w, "empty", RCV_DT_F32, 2, se, wf);
    rcv_st_add_meta(w, "model", "test");
    rcv_st_add_meta(w, "epoch", "7");
    CHECK(rcv_st_write(w, path) == 0, "%s", rcv_error());
    rcv_st_writer_free(w); // checked by the oracle in run_oracle_checks

    // Our half decoder agrees with our encoder on every finite half value.
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7C00) == 0x7C00) continue;
        if (rcv_float_to_half(rcv_half_to_float((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "half round trip differs for %d values", bad);
}

// --- state_dict of a graph ---

// conv1 (3->4, 3x3 or k x k, no bias) -> bn1 -> pool -> fc (4->5) [-> fc2]
static rcv_graph *twin(int k, int with_fc, int with_fc2) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 3, 8, 8);
    x = rcv_conv2d(g, "conv1", x, 4, k, 1, 0, 1, 1, 0);
    x = rcv_batchnorm2d(g, "bn1", x, 1e-5f, 0.1f);
    x = rcv_global_avgpool(g, "pool", x);
    if (with_fc) x = rcv_linear(g, "fc", x, 5, 1);
    if (with_fc2) x = rcv_linear(g, "fc2", x, 2, 1);
    rcv_graph_seal_params(g);
    return g;
}

static void fill_formula(rcv_graph *g) {
    for (int p = 0; p < g->n_params; p++) {
        rcv_param *pi = &g->param_info[p];
        if (pi->kind == RCV_BUFFER_I64) g->ibuffers[pi->offset] = 12345678901LL;
        else
            for (size_t j = 0; j < pi->numel; j++) rcv_param_data(g, p)[j] = formula(p, j);
    }
}

static void test_state_dict(void) {
    char ours[512], theirs[512];
    snprintf(ours, sizeof ours, "%s/model.safetensors", dir);
    snprintf(theirs, sizeof theirs, "%s/torch.safetensors", dir);

    // Ours into PyTorch (load_state_dict strict).
    rcv_graph *g = twin(3, 1, 0);
    CHECK(g->n_params == 8, "twin has %d tensors", g->n_params);
    fill_formula(g);
    rcv_st_writer *w = rcv_st_writer_new();
    rcv_st_add_graph(w, g);
    CHECK(rcv_st_write(w, ours) == 0, "%s", rcv_error()); // loaded into PyTorch in run_oracle_checks
    rcv_st_writer_free(w);

    // PyTorch's into ours.
    static float want[8][256];
    static int64_t want_nbt;
    int nl = 0;
    char *lsave = NULL;
    for (char *line = oracle_out[1] ? strtok_r(oracle_out[1], "\n", &lsave) : NULL; line;
         line = strtok_r(NULL, "\n", &lsave)) {
        char *save, *name = strtok_r(line, " ", &save);
        strtok_r(NULL, " ", &save);
        int pi = rcv_graph_find_param(g, name);
        CHECK(pi >= 0, "torch tensor %s unknown to the twin", name);
        int n = 0;
        for (char *tok; (tok = strtok_r(NULL, " ", &save)) && n < 256; n++) {
            if (pi >= 0) want[pi][n] = (float)strtod(tok, NULL);
            if (strstr(name, "num_batches")) want_nbt = strtoll(tok, NULL, 10);
        }
        nl++;
    }
    CHECK(nl == 8, "oracle sd_write printed %d tensors", nl);
    rcv_safetensors st;
    CHECK(rcv_st_open(&st, theirs) == 0, "%s", rcv_error());
    if (st.file) {
        int missing = -1;
        CHECK(rcv_st_load_graph(&st, g, 1, 0, NULL, &missing) == 0 && missing == 0, "%s", rcv_error());
        for (int i = 0; i < g->n_params; i++) {
            rcv_param *pi = &g->param_info[i];
            if (pi->kind == RCV_BUFFER_I64)
                CHECK(g->ibuffers[pi->offset] == want_nbt && want_nbt == (1LL << 33) + 5, "num_batches_tracked");
            else
                CHECK(!memcmp(rcv_param_data(g, i), want[i], pi->numel * 4), "%s differs from PyTorch's", pi->name);
        }

        // Shape mismatch: message in PyTorch's terms, graph untouched.
        rcv_graph *g5 = twin(5, 1, 0);
        fill_formula(g5);
        CHECK(rcv_st_load_graph(&st, g5, 1, 0, NULL, NULL) == -1 && strstr(rcv_error(), "torch.safetensors") &&
                  strstr(rcv_error(), "'conv1.weight' has shape [4, 3, 3, 3], the model expects [4, 3, 5, 5]"),
              "shape mismatch: %s", rcv_error());
        CHECK(rcv_param_data(g5, 1)[0] == formula(1, 0), "a failed load changed the graph");
        rcv_graph_free(g5);

        // Missing tensors: strict fails naming them; non-strict counts them.
        rcv_graph *g2 = twin(3, 1, 1);
        fill_formula(g2);
        CHECK(rcv_st_load_graph(&st, g2, 1, 0, NULL, NULL) == -1 && strstr(rcv_error(), "fc2.weight") &&
                  strstr(rcv_error(), "missing"),
              "strict missing: %s", rcv_error());
        int miss = 0;
        CHECK(rcv_st_load_graph(&st, g2, 0, 0, NULL, &miss) == 0 && miss == 2, "non-strict: %d %s", miss,
              rcv_error());
        CHECK(rcv_param_data(g2, 0)[0] == want[0][0], "loaded");
        int fc2w = rcv_graph_find_param(g2, "fc2.weight");
        CHECK(rcv_param_data(g2, fc2w)[0] == formula(fc2w, 0), "missing ones unchanged");
        rcv_graph_free(g2);

        // Unexpected tensors.
        rcv_graph *g0 = twin(3, 0, 0);
        CHECK(rcv_st_load_graph(&st, g0, 1, 0, NULL, NULL) == -1 && strstr(rcv_error(), "fc.weight") &&
                  strstr(rcv_error(), "not in the model"),
              "unexpected: %s", rcv_error());
        CHECK(rcv_st_load_graph(&st, g0, 1, 1, NULL, NULL) == 0, "ignore_unexpected: %s", rcv_error());
        rcv_graph_free(g0);

        // skip_prefix: re-initialise the classifier.
        rcv_graph *gs = twin(3, 1, 0);
        fill_formula(gs);
        int fcw = rcv_graph_find_param(gs, "fc.weight");
        CHECK(rcv_st_load_graph(&st, gs, 1, 0, "fc.", NULL) == 0, "%s", rcv_error());
        CHECK(rcv_param_data(gs, fcw)[0] == formula(fcw, 0) && rcv_param_data(gs, 0)[0] == want[0][0], "skip_prefix");
        rcv_graph_free(gs);
        rcv_st_close(&st);
    }
    rcv_graph_free(g);
}

// --- corrupt files ---

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(p, 1, n, f); fclose(f); }
}

// 8-byte length (hlen_override if nonzero) + header + data_len zero bytes.
static void write_st(const char *path, const char *header, size_t data_len, uint64_t hlen_override) {
    size_t h = strlen(header);
    uint64_t hl = hlen_override ? hlen_override : h;
    uint8_t *b = calloc(8 + h + data_len, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + 8, header, h);
    write_bytes(path, b, 8 + h + data_len);
    free(b);
}

static void expect_bad(const char *name, const char *header, size_t data_len, uint64_t hlen, const char *needle) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    write_st(path, header, data_len, hlen);
    rcv_safetensors st;
    int rc = rcv_st_open(&st, path);
    CHECK(rc == -1 && strstr(rcv_error(), path) && strstr(rcv_error(), needle), "%s: rc %d, message: %s", name, rc,
          rc ? rcv_error() : "(none)");
    if (rc == 0) rcv_st_close(&st);
    CHECK(st.file == NULL && st.t == NULL, "%s: state not cleared on failure", name);
}

static void test_corrupt(void) {
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    expect_bad("good_but_short", ok, 8, 0, "exceed the data section of 8 bytes");
    expect_bad("hlen_too_big", ok, 16, 1000, "header length 1000 exceeds the file size");
    expect_bad("bad_json", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", 16, 0, "not valid JSON");
    expect_bad("bad_json2", "{\"a\":{\"dtype\":F32}}", 16, 0, "JSON error at byte 14");
    expect_bad("offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,100]}}", 64, 0,
               "tensor 'a' data_offsets [0, 100] exceed the data section of 64 bytes");
    expect_bad("offsets_rev", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 64, 0, "end before");
    expect_bad("dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, 0, "dtype \"F8\", expected one of");
    expect_bad("shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, 0,
               "shape [3] of F32 (3 elements x 4 bytes), but data_offsets [0, 16] hold 16 bytes");
    expect_bad("neg_shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, 0, "not a non-negative");
    expect_bad("overlap",
               "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               16, 0, "overlap");
    expect_bad("missing_field", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, 0, "lacks \"data_offsets\"");
    expect_bad("not_object", "[1,2]", 0, 0, "expected an object");
    expect_bad("duplicate",
               "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
               2, 0, "twice");
    expect_bad("meta", "{\"__metadata__\":{\"x\":1}}", 0, 0, "expected a string");
    expect_bad("ndim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, 0, "at most 8");
    expect_bad("overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, 0,
               "hold 4 bytes");

    char path[512];
    snprintf(path, sizeof path, "%s/tiny.safetensors", dir);
    write_bytes(path, "abc", 3);
    rcv_safetensors st;
    CHECK(rcv_st_open(&st, path) == -1 && strstr(rcv_error(), path) && strstr(rcv_error(), "3 bytes"), "tiny: %s",
          rcv_error());
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    CHECK(rcv_st_open(&st, path) == -1 && strstr(rcv_error(), path) && strstr(rcv_error(), "No such file"),
          "absent: %s", rcv_error());

    // A real file truncated at every length: never accepted, never a crash.
    char good[512];
    snprintf(good, sizeof good, "%s/rt.safetensors", dir);
    uint8_t *buf;
    size_t len;
    if (rcv_file_read(good, &buf, &len) == 0) {
        int accepted = 0;
        for (size_t cut = 0; cut < len; cut++) {
            write_bytes(path, buf, cut);
            if (rcv_st_open(&st, path) == 0) { accepted++; rcv_st_close(&st); }
            else if (!strstr(rcv_error(), path)) accepted += 1000;
        }
        CHECK(accepted == 0, "truncated files accepted or unnamed: %d", accepted);
        // Random byte flips in the header: errors or valid files, never a crash (ASan run).
        uint64_t s = 99;
        for (int it = 0; it < 300; it++) {
            uint8_t *c = malloc(len);
            memcpy(c, buf, len);
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = 8 + (s >> 33) % (len > 200 ? 200 : len - 8);
            if (pos < len) c[pos] = (uint8_t)(s >> 20);
            write_bytes(path, c, len);
            if (rcv_st_open(&st, path) == 0) rcv_st_close(&st);
            free(c);
        }
        free(buf);
    }
}

// --- atomicity ---

static void test_atomic(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/keep.safetensors", dir);
    float v1[2] = {1, 2}, v2[2] = {3, 4}, back[2];
    int64_t s2[1] = {2};
    rcv_st_writer *w = rcv_st_writer_new();
    rcv_st_add(w, "v", RCV_DT_F32, 1, s2, v1);
    CHECK(rcv_st_write(w, path) == 0, "%s", rcv_error());
    rcv_st_writer_free(w);

    // Overwrite succeeds and leaves no temporary.
    w = rcv_st_writer_new();
    rcv_st_add(w, "v", RCV_DT_F32, 1, s2, v2);
    CHECK(rcv_st_write(w, path) == 0, "%s", rcv_error());
    CHECK(count_tmp_files(dir) == 0, "temporaries left after overwrite");

    // The temporary cannot be created (a directory sits at its name): clean failure, old file intact.
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    mkdir(tmp, 0755);
    rcv_st_writer *w3 = rcv_st_writer_new();
    rcv_st_add(w3, "v", RCV_DT_F32, 1, s2, v1);
    CHECK(rcv_st_write(w3, path) == -1 && strstr(rcv_error(), path), "blocked temporary: %s", rcv_error());
    rmdir(tmp);
    rcv_safetensors st;
    CHECK(rcv_st_open(&st, path) == 0 && rcv_st_read_f32(&st, "v", back, 2) == 0 && back[0] == 3 && back[1] == 4,
          "existing file damaged: %s", rcv_error());
    rcv_st_close(&st);

    // A missing directory.
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", dir);
    CHECK(rcv_st_write(w3, bad) == -1 && strstr(rcv_error(), bad), "missing dir: %s", rcv_error());

    // An unwritable directory (only meaningful when not root).
    if (geteuid() != 0) {
        chmod(dir, 0555);
        CHECK(rcv_st_write(w3, path) == -1 && strstr(rcv_error(), path), "read-only dir: %s", rcv_error());
        chmod(dir, 0755);
        CHECK(rcv_st_open(&st, path) == 0 && rcv_st_read_f32(&st, "v", back, 2) == 0 && back[0] == 3,
              "existing file damaged");
        rcv_st_close(&st);
    }
    CHECK(count_tmp_files(dir) == 0, "temporaries left after failures");
    rcv_st_writer_free(w);
    rcv_st_writer_free(w3);

    // The generic helper.
    char txt[512];
    snprintf(txt, sizeof txt, "%s/report.md", dir);
    CHECK(rcv_file_write_atomic(txt, "hello\n", 6) == 0, "%s", rcv_error());
    uint8_t *b;
    size_t n;
    CHECK(rcv_file_read(txt, &b, &n) == 0 && n == 6 && !memcmp(b, "hello\n", 6), "read back");
    free(b);
}

// Files we wrote, read by the oracle: format and values, and PyTorch's load_state_dict(strict=True).
static void run_oracle_checks(void) {
    int rc = test_sh(PY " check %s/ours.safetensors sd_check %s/model.safetensors >/dev/null", dir, dir);
    CHECK(rc == 0, "the Python oracle rejected our files (rc %d)", rc);
}

int main(void) {
    dir = test_tmpdir("safetensors");
    test_json();
    test_roundtrip();
    run_oracle_writes();
    test_python_file();
    test_python_reads_ours();
    test_state_dict();
    run_oracle_checks();
    free(oracle_out[0]);
    free(oracle_out[1]);
    test_corrupt();
    test_atomic();
    test_sh("rm -rf %s", dir);
    return test_done();
}
