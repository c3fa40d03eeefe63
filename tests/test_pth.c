// PyTorch .pth import (src/io/pth.c, zip.c, pickle.c): torchvision's resnet18, densenet169 and
// vgg19_bn state dicts written by Debian's torch.save (tests/oracle/pth_ref.py) load through the
// --init code path (rcv_transfer_apply) and, strictly by name, through rcv_st_load_graph, and give
// torchvision's eval-mode logits on the same 64x64 input. Then every truncation and many byte
// corruptions of small archives fail cleanly or load (never crash; ASan in CI), and the hostile
// archives are refused with messages naming what was refused.
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/pth.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"
#include "testutil.h"

#define N 2
#define H 64
#define K 1000

static void logits_of(rcv_model *m, const rcv_safetensors *ref, float *z) {
    rcv_graph_plan(m->g, N, RCV_BACKEND_CPU);
    rcv_graph_set_training(m->g, 0);
    rcv_st_read_f32(ref, "input", m->g->nodes[m->input].out, (size_t)N * H * H * 3);
    rcv_graph_forward(m->g);
    memcpy(z, m->g->nodes[m->logits].out, (size_t)N * K * sizeof(float));
}

static int build(rcv_model *m, const char *name) {
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    c.in_h = c.in_w = H;
    c.n_classes = K;
    c.no_init = 1; // every tensor comes from the file (strictly checked below)
    int rc = rcv_model_build(m, name, &c);
    CHECK(rc == 0, "build %s: %s", name, rcv_error());
    return rc;
}

static void test_model(const char *dir, const char *name) {
    char pth[512], refp[512];
    snprintf(pth, sizeof pth, "%s/%s.pth", dir, name);
    snprintf(refp, sizeof refp, "%s/%s.ref.safetensors", dir, name);
    rcv_safetensors ref;
    if (rcv_st_open(&ref, refp)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    float want[N * K], got[N * K];
    CHECK(rcv_st_read_f32(&ref, "logits", want, N * K) == 0, "%s", rcv_error());

    // 1. --init FILE.pth: what `robustcv train --init` runs.
    rcv_model m;
    if (build(&m, name) == 0) {
        rcv_finetune_cfg t;
        memset(&t, 0, sizeof t);
        snprintf(t.init, sizeof t.init, "%s", pth);
        CHECK(rcv_transfer_apply(&m, &t, 1, 1) == 0, "%s --init: %s", name, rcv_error());
        logits_of(&m, &ref, got);
        double e = max_rel_err(got, want, N * K, 1e-30), a = max_abs_err(got, want, N * K);
        printf("%-12s --init %s: logits max abs err %.2e, relative to max |logit| %.2e\n", name, pth, a, e);
        CHECK(e <= 1e-5, "%s logits vs torchvision: relative %g", name, e);
        rcv_model_free(&m);
    }
    // 2. Strict by-name load: every model tensor in the file with the same shape, nothing extra.
    if (build(&m, name) == 0) {
        rcv_safetensors st;
        CHECK(rcv_pth_open(&st, pth, NULL) == 0, "%s: %s", pth, rcv_error());
        CHECK(rcv_st_load_graph(&st, m.g, 1, 0, NULL, NULL) == 0, "%s strict load: %s", name, rcv_error());
        printf("%-12s strict load of %d tensors: ok\n", name, st.n);
        float z2[N * K];
        logits_of(&m, &ref, z2);
        CHECK(max_abs_err(z2, got, N * K) == 0, "%s: strict load and --init give different logits", name);
        rcv_st_close(&st);
        rcv_model_free(&m);
    }
    rcv_st_close(&ref);
}

// Every prefix of the file, and each byte of it set to three values: each open must fail with a
// message or succeed, and never crash or read outside (the sanitizer build checks the latter).
static void test_damage(const char *path) {
    uint8_t *buf;
    size_t len;
    if (rcv_file_read(path, &buf, &len)) {
        CHECK(0, "%s", rcv_error());
        return;
    }
    int fails = 0, oks = 0, silent = 0;
    for (size_t n = 0; n < len; n++) {
        rcv_safetensors st;
        rcv_error_clear();
        if (rcv_pth_open_mem(&st, buf, n, path, NULL) == 0) oks++, rcv_st_close(&st);
        else fails++, silent += rcv_error()[0] == 0;
    }
    CHECK(oks == 0 && silent == 0, "%s: %d truncations loaded, %d failed without a message", path, oks, silent);
    static const uint8_t vals[] = {0x00, 0xff, 0x80};
    int flip_ok = 0, flip_fail = 0;
    for (size_t i = 0; i < len; i++)
        for (int v = 0; v < 3; v++) {
            uint8_t old = buf[i];
            if (old == vals[v]) continue;
            buf[i] = vals[v];
            rcv_safetensors st;
            rcv_error_clear();
            if (rcv_pth_open_mem(&st, buf, len, path, NULL) == 0) {
                flip_ok++;
                for (int k = 0; k < st.n; k++) // the data a caller may read stays inside the buffer
                    CHECK(st.t[k].end <= st.data_len && st.t[k].begin <= st.t[k].end, "tensor %d out of range", k);
                rcv_st_close(&st);
            } else {
                flip_fail++;
                silent += rcv_error()[0] == 0;
            }
            buf[i] = old;
        }
    CHECK(silent == 0, "%s: %d failures without a message", path, silent);
    printf("%s: %zu truncations all refused; %d byte changes refused, %d still load (padding, names, values)\n", path,
           len, flip_fail, flip_ok);
    free(buf);
}

static void expect_fail(const char *dir, const char *file, const char *a, const char *b) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    rcv_safetensors st;
    int rc = rcv_pth_open(&st, p, NULL);
    CHECK(rc == -1 && strstr(rcv_error(), a) && (!b || strstr(rcv_error(), b)), "%s: rc %d, message: %s", file, rc,
          rc ? rcv_error() : "(loaded)");
    if (rc == 0) rcv_st_close(&st);
}

// Pickles that cost more than their size would be refused at the limit, with the limit named.
static void test_limits(void) {
    size_t reps = (1u << 20) + 8, len = 0;
    uint8_t *p = malloc(2 + 2 * reps + 8);
    p[len++] = 0x80, p[len++] = 2;
    for (size_t i = 0; i < reps; i++) p[len++] = ')', p[len++] = '0'; // EMPTY_TUPLE, POP
    p[len++] = '}', p[len++] = '.';
    rcv_pickle pk;
    CHECK(rcv_pickle_load(&pk, p, len, "objects") == -1 && strstr(rcv_error(), "more than 1048576 objects"),
          "object limit: %s", rcv_error());
    free(p);
    // A list appended to itself 2^22 times (BINGET 0, APPEND): no new objects, but entries.
    reps = (1u << 22) + 8, len = 0;
    p = malloc(5 + 3 * reps + 8);
    p[len++] = 0x80, p[len++] = 2, p[len++] = ']', p[len++] = 'q', p[len++] = 0;
    for (size_t i = 0; i < reps; i++) p[len++] = 'h', p[len++] = 0, p[len++] = 'a';
    p[len++] = '.';
    CHECK(rcv_pickle_load(&pk, p, len, "items") == -1 && strstr(rcv_error(), "container entries"), "item limit: %s",
          rcv_error());
    free(p);
    // The stack: 2^20 + 1 references pushed.
    reps = (1u << 20) + 8, len = 0;
    p = malloc(5 + 2 * reps + 8);
    p[len++] = 0x80, p[len++] = 2, p[len++] = '}', p[len++] = 'q', p[len++] = 0;
    for (size_t i = 0; i < reps; i++) p[len++] = 'h', p[len++] = 0;
    p[len++] = '.';
    CHECK(rcv_pickle_load(&pk, p, len, "stack") == -1 && strstr(rcv_error(), "stack deeper"), "stack limit: %s",
          rcv_error());
    free(p);
    // MARK nesting, and a memo index beyond the pickle.
    uint8_t marks[80] = {0x80, 2};
    memset(marks + 2, '(', 70);
    marks[72] = '.';
    CHECK(rcv_pickle_load(&pk, marks, 73, "marks") == -1 && strstr(rcv_error(), "MARKs nested deeper than 64"),
          "mark limit: %s", rcv_error());
    const uint8_t memo[] = {0x80, 2, '}', 'r', 0xff, 0xff, 0xff, 0x7f, '.'};
    CHECK(rcv_pickle_load(&pk, memo, sizeof memo, "memo") == -1 && strstr(rcv_error(), "memo index larger"),
          "memo index: %s", rcv_error());
    // A well-formed state dict pickle with no tensors parses (the limits leave real pickles alone).
    const uint8_t ok[] = {0x80, 2, 'c', 'c', 'o', 'l', 'l', 'e', 'c', 't', 'i', 'o', 'n', 's', '\n', 'O', 'r', 'd', 'e', 'r',
                          'e', 'd', 'D', 'i', 'c', 't', '\n', ')', 'R', '.'};
    CHECK(rcv_pickle_load(&pk, ok, sizeof ok, "ok") == 0 && pk.root->type == PK_DICT, "OrderedDict(): %s", rcv_error());
    rcv_pickle_free(&pk);
}

int main(void) {
    test_limits();
    const char *dir = test_tmpdir("pth");
    int rc = test_sh("/usr/bin/python3 tests/oracle/pth_ref.py cases %s %s/MARKER", dir, dir);
    if (rc == 77 || rc == 127) {
        printf("SKIP: /usr/bin/python3 with torch and torchvision is not available\n");
        return test_done();
    }
    CHECK(rc == 0, "pth_ref.py cases exited %d", rc);
    if (rc == 0) {
        char p[512];
        snprintf(p, sizeof p, "%s/small.pth", dir);
        test_damage(p);
        snprintf(p, sizeof p, "%s/zip64.pth", dir);
        test_damage(p);
        snprintf(p, sizeof p, "%s/deflate.pth", dir);
        test_damage(p);
        expect_fail(dir, "evil_system.pth", "posix.system", "not allowed");
        expect_fail(dir, "evil_eval.pth", "eval", "not allowed");
        expect_fail(dir, "evil_inst.pth", "INST", "not allowed");
        expect_fail(dir, "badop.pth", "opcode 0xff", NULL);
        expect_fail(dir, "legacy.pth", "legacy", "_use_new_zipfile_serialization=True");
        expect_fail(dir, "truncated.pth", "end-of-central-directory", NULL);
        expect_fail(dir, "corrupt_cd.pth", "central directory", NULL);
        expect_fail(dir, "bad_offset.pth", "local header offset", NULL);
        expect_fail(dir, "short_storage.pth", "storage '0' claims 54 F32 elements", NULL);
        expect_fail(dir, "past_storage.pth", "reaches element 8 of storage", NULL);
        snprintf(p, sizeof p, "%s/MARKER", dir);
        FILE *f = fopen(p, "r");
        CHECK(f == NULL, "%s exists: something in a hostile pickle was run", p);
        if (f) fclose(f);
    }
    const char *names[] = {"resnet18", "densenet169", "vgg19_bn"};
    int quick = test_quick(); // sanitizer runs: resnet18 only
    rc = test_sh("/usr/bin/python3 tests/oracle/pth_ref.py models %s %s", dir, quick ? "resnet18" : "");
    CHECK(rc == 0, "pth_ref.py models exited %d", rc);
    for (int i = 0; rc == 0 && i < (quick ? 1 : 3); i++) {
        test_model(dir, names[i]);
        char p[512];
        snprintf(p, sizeof p, "%s/%s.pth", dir, names[i]);
        remove(p);
    }
    test_sh("rm -rf %s", dir);
    return test_done();
}
