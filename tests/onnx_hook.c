// Test hook of tests/test_onnx.sh (not a test by itself): writes zoo checkpoints with random
// weights and gives their logits, robustcv's own inference path, for inputs the oracle chose.
//
//   onnx_hook init MODEL C H W CLASSES SMALL_INPUT GAMMA SEED OUT.safetensors
//     builds MODEL at (C, H, W) with a random per-channel normalization, draws random batchnorm
//     weights and biases (and linear/conv biases), then sets every batchnorm's running statistics
//     to those of 32 random images (one training-mode forward with momentum 1), so that eval-mode
//     activations stay O(1) through the deepest models, adds mean^2 to each running variance (see
//     below), and saves the checkpoint.
//   onnx_hook logits CKPT IN.f32 N OUT.f32 [IN.f32 N OUT.f32 ...]
//     for each triple, IN: N images (N, C, H, W) float32 in [0, 1], NCHW as ONNX takes them. OUT: logits (N, K)
//     float32, then boxes (N, 4) for a NAME+box model; eval mode, cpu backend.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/train.h"

static int die(const char *what) {
    fprintf(stderr, "onnx_hook: %s: %s\n", what, rcv_error());
    return 1;
}

static void fill(rcv_graph *g, int p, rcv_rng *r, float lo, float hi) {
    rcv_rng_fill_uniform(r, rcv_param_data(g, p), g->param_info[p].numel, lo, hi);
}

static int init(char **a) {
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    c.in_c = atoi(a[1]), c.in_h = atoi(a[2]), c.in_w = atoi(a[3]), c.n_classes = atoi(a[4]);
    c.small_input = atoi(a[5]);
    c.gamma = strtof(a[6], NULL);
    c.seed = strtoull(a[7], NULL, 10);
    rcv_rng r;
    rcv_rng_init(&r, c.seed + 1000);
    for (int k = 0; k < c.in_c; k++) c.mean[k] = 0.3f + 0.4f * rcv_rng_uniform(&r), c.std[k] = 0.15f + 0.2f * rcv_rng_uniform(&r);
    rcv_model m;
    if (rcv_model_build(&m, a[0], &c)) return die(a[0]);
    rcv_graph *g = m.g;
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_BATCHNORM2D) {
            fill(g, n->param[0], &r, 0.5f, 1.5f);
            fill(g, n->param[1], &r, -0.2f, 0.2f);
            n->attr.bn.momentum = 1.0f;
        } else if ((n->op == RCV_OP_CONV2D || n->op == RCV_OP_LINEAR) && n->param[1] >= 0) {
            fill(g, n->param[1], &r, -0.1f, 0.1f);
        }
    }
    int b = 32;
    if (rcv_graph_plan(g, b, RCV_BACKEND_CPU)) return die("plan");
    rcv_graph_set_training(g, 1);
    // Images that differ as wholes (brightness, contrast per image and channel), not only in pixel
    // noise: deep features of pure noise images are nearly equal, and batchnorm statistics taken
    // from them amplify float rounding by orders of magnitude.
    float *x = g->nodes[m.input].out; // (N, H, W, C)
    size_t hw = (size_t)c.in_h * c.in_w;
    for (int i = 0; i < b; i++)
        for (int k = 0; k < c.in_c; k++) {
            float lo = 0.6f * rcv_rng_uniform(&r), span = (1 - lo) * rcv_rng_uniform(&r);
            for (size_t p = 0; p < hw; p++) x[((size_t)i * hw + p) * c.in_c + k] = lo + span * rcv_rng_uniform(&r);
        }
    memset(g->nodes[m.labels].idata, 0, (size_t)b * sizeof(int32_t));
    if (m.boxes >= 0) rcv_rng_fill_uniform(&r, g->nodes[m.boxes].out, (size_t)b * 4, 0, 1);
    rcv_graph_forward(g);
    // running_var += running_mean^2: a channel whose values barely vary around a large mean would
    // otherwise divide float rounding (|mean| * 1e-7) by its tiny spread, and a deep random network
    // (the bottleneck ResNets) stacks those gains until two correct fp32 runtimes differ at 1e-3.
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op != RCV_OP_BATCHNORM2D) continue;
        float *mu = rcv_param_data(g, n->buf[0]), *var = rcv_param_data(g, n->buf[1]);
        for (size_t k = 0; k < g->param_info[n->buf[1]].numel; k++) var[k] += mu[k] * mu[k];
    }
    if (rcv_ckpt_save(a[8], &m, NULL, NULL)) return die(a[8]);
    rcv_model_free(&m);
    return 0;
}

// One checkpoint load, then each (IN, N, OUT) triple: plan for N, forward, write.
static int logits(char **a, int n_runs) {
    rcv_model m;
    if (rcv_ckpt_load_model(a[0], &m, NULL)) return die(a[0]);
    int C = m.cfg.in_c, H = m.cfg.in_h, W = m.cfg.in_w, K = m.cfg.n_classes, rc = 0;
    rcv_graph_require_out(m.g, m.logits);
    if (m.box >= 0) rcv_graph_require_out(m.g, m.box);
    for (int r = 0; r < n_runs && !rc; r++) {
        const char *inp = a[1 + 3 * r], *outp = a[3 + 3 * r];
        int n = atoi(a[2 + 3 * r]);
        uint8_t *raw;
        size_t len;
        if (rcv_file_read(inp, &raw, &len)) return die(inp);
        if (n < 1 || len != (size_t)n * C * H * W * sizeof(float)) {
            fprintf(stderr, "onnx_hook: %s: %zu bytes, expected %d x %d x %d x %d floats\n", inp, len, n, C, H, W);
            return 1;
        }
        if (rcv_graph_plan(m.g, n, RCV_BACKEND_CPU)) return die("plan");
        rcv_graph_set_training(m.g, 0);
        const float *x = (const float *)raw;
        float *in = m.g->nodes[m.input].out; // (N, H, W, C)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < C; k++)
                for (int y = 0; y < H; y++)
                    for (int z = 0; z < W; z++)
                        in[(((size_t)i * H + y) * W + z) * C + k] = x[(((size_t)i * C + k) * H + y) * W + z];
        free(raw);
        memset(m.g->nodes[m.labels].idata, 0, (size_t)n * sizeof(int32_t));
        if (m.boxes >= 0) memset(m.g->nodes[m.boxes].out, 0, (size_t)n * 4 * sizeof(float));
        rcv_graph_infer(m.g); // what predict / serve run: batchnorm folded into the convolutions
        FILE *f = fopen(outp, "wb");
        if (!f) {
            fprintf(stderr, "onnx_hook: cannot write %s\n", outp);
            return 1;
        }
        fwrite(m.g->nodes[m.logits].out, sizeof(float), (size_t)n * K, f);
        if (m.box >= 0) fwrite(m.g->nodes[m.box].out, sizeof(float), (size_t)n * 4, f);
        rc = fclose(f) ? 1 : 0;
    }
    rcv_model_free(&m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 11 && !strcmp(argv[1], "init")) return init(argv + 2);
    if (argc >= 6 && (argc - 3) % 3 == 0 && !strcmp(argv[1], "logits")) return logits(argv + 2, (argc - 3) / 3);
    fprintf(stderr, "usage: onnx_hook init MODEL C H W CLASSES SMALL_INPUT GAMMA SEED OUT.safetensors\n"
                    "       onnx_hook logits CKPT IN.f32 N OUT.f32 [IN.f32 N OUT.f32 ...]\n");
    return 2;
}
