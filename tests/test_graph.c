// Graph engine: planning, topological forward, gradient accumulation rules.
#include "robustcv/graph.h"
#include "robustcv/ops.h"
#include "testutil.h"

#include <math.h>
#include <string.h>

int main(void) {
    rcv_graph *g = rcv_graph_new();
    int x = rcv_input(g, "x", 2, 3, 3);
    int bad = rcv_conv2d(g, "c", x, 4, 5, 1, 0, 1, 1, 0);
    CHECK(bad < 0, "conv with 5x5 kernel on 3x3 input must fail");
    int c = rcv_conv2d(g, "c", x, 4, 3, 1, 1, 1, 1, 1);
    CHECK(c >= 0 && g->nodes[c].shape.c == 4 && g->nodes[c].shape.h == 3, "conv shape");
    CHECK(rcv_graph_find_param(g, "c.weight") >= 0 && rcv_graph_find_param(g, "c.bias") >= 0, "conv params named");
    CHECK(rcv_graph_param_count(g) == 4 * 2 * 9 + 4, "param count %zu", rcv_graph_param_count(g));
    int p = rcv_maxpool2d(g, "p", c, 2, 2, 0, 1);
    CHECK(g->nodes[p].shape.h == 2, "ceil_mode pool: 3 -> 2, got %d", g->nodes[p].shape.h);
    rcv_graph_free(g);

    // backward_from with a caller's seed equals backward with the same scale; a seed on the
    // logits equals the chain rule through cross-entropy done by hand (softmax - onehot) / N.
    g = rcv_graph_new();
    x = rcv_input(g, "x", 3, 2, 2);
    rcv_graph_require_grad(g, x);
    int f = rcv_flatten(g, "f", x);
    int z = rcv_linear(g, "fc", f, 4, 1);
    int y = rcv_labels(g, "y");
    int l = rcv_cross_entropy(g, "loss", z, y, 0.0f);
    CHECK(rcv_graph_plan(g, 2, RCV_BACKEND_REF) == 0, "plan");
    fill_uniform(g->params, g->n_param_floats, 3, -0.5f, 0.5f);
    fill_uniform(g->nodes[x].out, 2 * 12, 4, 0, 1);
    g->nodes[y].idata[0] = 1, g->nodes[y].idata[1] = 3;
    rcv_graph_set_training(g, 1);
    rcv_graph_forward(g);
    size_t np = g->n_param_floats;
    float ga[64], gb[64], xa[24];
    rcv_graph_zero_grad(g);
    rcv_graph_backward(g, l, 2.0f);
    memcpy(ga, g->grads, np * sizeof(float));
    memcpy(xa, g->nodes[x].grad, sizeof xa);
    rcv_graph_zero_grad(g);
    float two = 2.0f;
    CHECK(rcv_graph_backward_from(g, l, &two) == 0, "backward_from(loss)");
    CHECK(max_abs_err(g->grads, ga, np) == 0, "backward_from(loss, 2) == backward(loss, 2)");
    float seed[8];
    const float *zz = g->nodes[z].out;
    for (int i = 0; i < 2; i++) {
        float m = zz[i * 4], s = 0;
        for (int j = 1; j < 4; j++) m = zz[i * 4 + j] > m ? zz[i * 4 + j] : m;
        for (int j = 0; j < 4; j++) s += expf(zz[i * 4 + j] - m);
        for (int j = 0; j < 4; j++)
            seed[i * 4 + j] = 2.0f * (expf(zz[i * 4 + j] - m) / s - (j == g->nodes[y].idata[i])) / 2;
    }
    rcv_graph_zero_grad(g);
    CHECK(rcv_graph_backward_from(g, z, seed) == 0, "backward_from(logits)");
    memcpy(gb, g->grads, np * sizeof(float));
    CHECK(max_rel_err(gb, ga, np, 1e-6) < 1e-5, "seeded logits grads %.3g", max_rel_err(gb, ga, np, 1e-6));
    CHECK(max_rel_err(g->nodes[x].grad, xa, 24, 1e-6) < 1e-5, "seeded input grads");
    CHECK(rcv_graph_backward_from(g, y, seed) != 0, "labels have no gradient: error");
    rcv_graph_free(g);
    return test_done();
}
