// Graph engine: planning, topological forward, gradient accumulation rules.
#include "robustcv/graph.h"
#include "robustcv/ops.h"
#include "testutil.h"

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
    return test_done();
}
