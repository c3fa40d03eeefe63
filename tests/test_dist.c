// Data-parallel pieces that one process can check (the 2-rank runs are in test_mpi.sh):
// synchronised batchnorm on one rank equals the ordinary batch-statistics batchnorm (its
// own tests compare it with PyTorch) on the cpu and ref backends, with and without the
// BN+ReLU fusion: logits, every parameter gradient, the input gradient, running stats.
// And the one-rank collectives are identities.
#include <stdlib.h>
#include <string.h>

#include "robustcv/dist.h"
#include "robustcv/models.h"
#include "testutil.h"

typedef struct {
    float *logits, *grads, *dx, *buffers;
} snap;

// One training step's forward + backward on fixed data; returns what it produced.
static snap run_step(rcv_model *m, const float *x0, const int32_t *y0, const float *buf0, int batch) {
    rcv_graph *g = m->g;
    memcpy(g->buffers, buf0, g->n_buffer_floats * sizeof(float));
    size_t nx = rcv_numel(g->nodes[m->input].shape), nz = rcv_numel(g->nodes[m->logits].shape);
    memcpy(g->nodes[m->input].out, x0, nx * sizeof(float));
    memcpy(g->nodes[m->labels].idata, y0, (size_t)batch * sizeof(int32_t));
    rcv_graph_set_training(g, 1);
    rcv_graph_forward(g);
    rcv_graph_zero_grad(g);
    rcv_graph_backward(g, m->loss, 1.0f);
    snap s;
    s.logits = malloc(nz * sizeof(float));
    s.grads = malloc(g->n_param_floats * sizeof(float));
    s.dx = malloc(nx * sizeof(float));
    s.buffers = malloc(g->n_buffer_floats * sizeof(float));
    memcpy(s.logits, g->nodes[m->logits].out, nz * sizeof(float));
    memcpy(s.grads, g->grads, g->n_param_floats * sizeof(float));
    memcpy(s.dx, g->nodes[m->input].grad, nx * sizeof(float));
    memcpy(s.buffers, g->buffers, g->n_buffer_floats * sizeof(float));
    return s;
}

static void snap_free(snap *s) {
    free(s->logits), free(s->grads), free(s->dx), free(s->buffers);
}

// A stand-in for two ranks holding identical data: every sum (and count) doubles, so the
// statistics, and so logits and gradients, must not change; counts the calls.
static int twin_calls;
static void twin_allreduce(rcv_graph *g, double *x, size_t n) {
    (void)g;
    twin_calls++;
    for (size_t i = 0; i < n; i++) x[i] *= 2;
}

static void check_sync_bn(rcv_backend be, int keep_grads) {
    const char *tag = be == RCV_BACKEND_CPU ? (keep_grads ? "cpu" : "cpu+fused relu") : "ref";
    rcv_model_cfg c;
    rcv_model_cfg_defaults(&c);
    c.in_c = 1, c.in_h = c.in_w = 8, c.n_classes = 5, c.seed = 11;
    rcv_model m;
    if (rcv_model_build(&m, "smallcnn", &c)) {
        CHECK(0, "smallcnn build");
        return;
    }
    rcv_graph *g = m.g;
    int batch = 6;
    g->keep_grads = keep_grads;
    rcv_graph_require_grad(g, m.input);
    CHECK(rcv_graph_plan(g, batch, be) == 0, "%s plan", tag);
    size_t nx = rcv_numel(g->nodes[m.input].shape);
    float *x0 = malloc(nx * sizeof(float)), *buf0 = malloc(g->n_buffer_floats * sizeof(float));
    fill_uniform(x0, nx, 5, 0.0f, 1.0f);
    int32_t y0[6] = {0, 1, 2, 3, 4, 1};
    memcpy(buf0, g->buffers, g->n_buffer_floats * sizeof(float));
    int fused = 0;
    for (int i = 0; i < g->n_nodes; i++) fused += g->nodes[i].fused_relu;
    CHECK(keep_grads || be != RCV_BACKEND_CPU || fused == 5, "%s: %d BN+ReLU fusions, expected 5", tag, fused);

    snap a = run_step(&m, x0, y0, buf0, batch);
    rcv_dist_sync_bn(g, 1);
    snap b = run_step(&m, x0, y0, buf0, batch);
    rcv_dist_sync_bn(g, 0);
    size_t nz = (size_t)batch * c.n_classes;
    double e_z = max_rel_err(b.logits, a.logits, nz, 1e-6);
    double e_dx = max_rel_err(b.dx, a.dx, nx, 1e-6);
    double e_buf = max_rel_err(b.buffers, a.buffers, g->n_buffer_floats, 1e-6);
    double e_g = 0;
    for (int p = 0; p < g->n_params; p++) {
        const rcv_param *pi = &g->param_info[p];
        if (pi->kind != RCV_PARAM) continue;
        double e = max_rel_err(b.grads + pi->offset, a.grads + pi->offset, pi->numel, 1e-6);
        CHECK(e < 1e-5, "%s: sync-bn gradient of %s off by %.2e", tag, pi->name, e);
        if (e > e_g) e_g = e;
    }
    CHECK(e_z < 1e-5, "%s: sync-bn logits off by %.2e", tag, e_z);
    CHECK(e_dx < 1e-5, "%s: sync-bn input gradient off by %.2e", tag, e_dx);
    CHECK(e_buf < 1e-5, "%s: sync-bn running stats off by %.2e", tag, e_buf);
    printf("sync-bn on 1 rank vs batch-statistics bn (%s): logits %.1e, param grads %.1e, input grad %.1e, "
           "running stats %.1e\n", tag, e_z, e_g, e_dx, e_buf);

    twin_calls = 0;
    g->bn_allreduce = twin_allreduce;
    snap t = run_step(&m, x0, y0, buf0, batch);
    g->bn_allreduce = NULL;
    double t_z = max_rel_err(t.logits, a.logits, nz, 1e-6), t_g = max_rel_err(t.grads, a.grads, g->n_param_floats, 1e-6);
    double t_dx = max_rel_err(t.dx, a.dx, nx, 1e-6);
    // 5 BNs: one reduction in forward, one in backward each.
    CHECK(twin_calls == 10, "%s: %d sync-bn reductions, expected 10", tag, twin_calls);
    CHECK(t_z < 1e-5 && t_g < 1e-5 && t_dx < 1e-5, "%s: two identical ranks: logits %.2e grads %.2e dx %.2e", tag,
          t_z, t_g, t_dx);
    printf("  two identical simulated ranks: logits %.1e, grads %.1e, input grad %.1e\n", t_z, t_g, t_dx);
    snap_free(&t);
    snap_free(&a), snap_free(&b);
    free(x0), free(buf0);
    rcv_model_free(&m);
}

int main(int argc, char **argv) {
    CHECK(rcv_dist_init(&argc, &argv) == 0, "dist init");
    CHECK(rcv_dist_rank() == 0 && rcv_dist_size() == 1, "one rank outside mpirun: %d of %d", rcv_dist_rank(),
          rcv_dist_size());
    double d[3] = {1.5, -2, 3};
    int64_t i[2] = {7, -9};
    float f[2] = {0.25f, 4};
    rcv_dist_allreduce_f64(d, 3), rcv_dist_allreduce_i64(i, 2), rcv_dist_allreduce_f32(f, 2);
    CHECK(d[0] == 1.5 && d[1] == -2 && d[2] == 3 && i[0] == 7 && i[1] == -9 && f[0] == 0.25f && f[1] == 4,
          "one-rank sums are the values");
    CHECK(rcv_dist_any(0) == 0 && rcv_dist_any(3) == 1, "any");

    check_sync_bn(RCV_BACKEND_CPU, 0);
    check_sync_bn(RCV_BACKEND_CPU, 1);
    check_sync_bn(RCV_BACKEND_REF, 1);
    rcv_dist_finalize();
    return test_done();
}
