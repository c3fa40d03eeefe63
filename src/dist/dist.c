// Ranks and collectives (MPI when built with it and launched by mpirun, else one
// rank), gradient buckets allreduced during backward, and the sync-bn hook.
// See include/robustcv/dist.h.
#include "robustcv/dist.h"

#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"

#ifdef RCV_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local_size = 1, g_inited = 0;

// ---- transport: MPI ----------------------------------------------------------------
#ifdef RCV_HAVE_MPI

static int g_mpi = 0; // MPI_Init ran (launched by mpirun)

typedef MPI_Request req_t;

static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int rcv_dist_init(int *argc, char ***argv) {
    if (g_inited) return 0;
    g_inited = 1;
    if (!launched_by_mpirun()) return 0;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return rcv_fail("MPI_Init_thread failed");
    g_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &g_local_size);
    MPI_Comm_free(&local);
    return 0;
}

void rcv_dist_finalize(void) {
    if (g_mpi) MPI_Finalize();
    g_mpi = 0;
    g_rank = 0, g_size = g_local_size = 1;
}

int rcv_dist_have_mpi(void) { return 1; }

void rcv_dist_abort(int code) {
    if (g_mpi && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

#define REDUCE(x, n, type)                                                                        \
    do {                                                                                          \
        /* MPI counts are int: reduce in chunks of at most 2^30 elements. */                     \
        for (size_t o_ = 0; g_mpi && g_size > 1 && o_ < (n); o_ += (size_t)1 << 30) {             \
            size_t c_ = (n) - o_ < ((size_t)1 << 30) ? (n) - o_ : ((size_t)1 << 30);              \
            MPI_Allreduce(MPI_IN_PLACE, (x) + o_, (int)c_, type, MPI_SUM, MPI_COMM_WORLD);        \
        }                                                                                         \
    } while (0)

void rcv_dist_allreduce_f32(float *x, size_t n) { REDUCE(x, n, MPI_FLOAT); }
void rcv_dist_allreduce_f64(double *x, size_t n) { REDUCE(x, n, MPI_DOUBLE); }
void rcv_dist_allreduce_i64(int64_t *x, size_t n) { REDUCE(x, n, MPI_INT64_T); }

void rcv_dist_barrier(void) {
    if (g_mpi) MPI_Barrier(MPI_COMM_WORLD);
}

void rcv_dist_bcast(void *buf, size_t bytes, int root) {
    for (size_t o = 0; g_mpi && g_size > 1 && o < bytes; o += (size_t)1 << 30) {
        size_t c = bytes - o < ((size_t)1 << 30) ? bytes - o : ((size_t)1 << 30);
        MPI_Bcast((char *)buf + o, (int)c, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

int rcv_dist_any(int failed) {
    int f = failed != 0;
    if (g_mpi && g_size > 1) MPI_Allreduce(MPI_IN_PLACE, &f, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return f;
}

// Non-blocking sum of a bucket (n < 2^31 floats: buckets are bounded by the option).
static void iallreduce_f32(float *x, size_t n, req_t *r) {
    MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r);
}
// OpenMPI progresses non-blocking collectives only inside MPI calls: poke it from the
// backward hook so a bucket moves while later nodes compute.
static void progress(req_t *r, int n) {
    int done;
    if (n > 0) MPI_Testall(n, r, &done, MPI_STATUSES_IGNORE);
}
static void wait_all(req_t *r, int n) {
    if (n > 0) MPI_Waitall(n, r, MPI_STATUSES_IGNORE);
}

#else // ---- transport: one rank -------------------------------------------------------

typedef int req_t;

int rcv_dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    g_inited = 1;
    return 0;
}
void rcv_dist_finalize(void) {}
int rcv_dist_have_mpi(void) { return 0; }
void rcv_dist_abort(int code) { exit(code); }
// With one rank the sum over ranks is the value itself.
void rcv_dist_allreduce_f32(float *x, size_t n) { (void)x, (void)n; }
void rcv_dist_allreduce_f64(double *x, size_t n) { (void)x, (void)n; }
void rcv_dist_allreduce_i64(int64_t *x, size_t n) { (void)x, (void)n; }
void rcv_dist_barrier(void) {}
void rcv_dist_bcast(void *buf, size_t bytes, int root) { (void)buf, (void)bytes, (void)root; }
int rcv_dist_any(int failed) { return failed != 0; }
static void iallreduce_f32(float *x, size_t n, req_t *r) { (void)x, (void)n, *r = 0; }
static void progress(req_t *r, int n) { (void)r, (void)n; }
static void wait_all(req_t *r, int n) { (void)r, (void)n; }

#endif

int rcv_dist_rank(void) { return g_rank; }
int rcv_dist_size(void) { return g_size; }
int rcv_dist_local_size(void) { return g_local_size; }

// ---- gradient buckets ----------------------------------------------------------------

typedef struct {
    size_t lo, hi;  // float range of g->grads
    int min_node;   // earliest owner node: the bucket is final once backward has run it
} bucket;

struct rcv_grad_sync {
    rcv_graph *g;
    bucket *b;      // sorted by min_node, descending: the order backward completes them
    req_t *req;
    int nb, next;   // buckets started so far this step
};

static int by_min_node_desc(const void *a, const void *b) {
    const bucket *x = a, *y = b;
    if (x->min_node != y->min_node) return y->min_node - x->min_node;
    return x->lo > y->lo ? -1 : x->lo < y->lo; // ties: higher offsets first (stable across ranks)
}

static void start_ready(rcv_grad_sync *s, int node) {
    while (s->next < s->nb && s->b[s->next].min_node >= node) {
        bucket *k = &s->b[s->next];
        iallreduce_f32(s->g->grads + k->lo, k->hi - k->lo, &s->req[s->next]);
        s->next++;
    }
    progress(s->req, s->next);
}

static void on_backward_node(void *ctx, rcv_graph *g, int node) {
    (void)g;
    start_ready(ctx, node);
}

rcv_grad_sync *rcv_grad_sync_new(rcv_graph *g, size_t bucket_bytes) {
    rcv_grad_sync *s = rcv_xcalloc(1, sizeof *s);
    s->g = g;
    if (g_size <= 1) return s;
    rcv_graph_seal_params(g);
    size_t cap = bucket_bytes / sizeof(float);
    if (cap < 16) cap = 16;
    if (cap > ((size_t)1 << 30)) cap = (size_t)1 << 30;
    s->b = rcv_xcalloc((size_t)g->n_params + 1, sizeof *s->b);
    // Walk parameters in offset order (registration order), cutting a bucket once it
    // holds cap floats; a bucket always ends on a tensor boundary (padding included).
    bucket cur = {0, 0, g->n_nodes};
    for (int i = 0; i < g->n_params; i++) {
        const rcv_param *p = &g->param_info[i];
        if (p->kind != RCV_PARAM) continue;
        size_t end = p->offset + ((p->numel + 15) & ~(size_t)15);
        if (cur.hi > cur.lo && end - cur.lo > cap) {
            s->b[s->nb++] = cur;
            cur = (bucket){cur.hi, cur.hi, g->n_nodes};
        }
        cur.hi = end;
        if (p->node < cur.min_node) cur.min_node = p->node;
    }
    if (cur.hi > cur.lo) s->b[s->nb++] = cur;
    qsort(s->b, (size_t)s->nb, sizeof *s->b, by_min_node_desc);
    s->req = rcv_xcalloc((size_t)s->nb + 1, sizeof *s->req);
    g->on_backward_node = on_backward_node;
    g->hook_ctx = s;
    return s;
}

void rcv_grad_sync_finish(rcv_grad_sync *s) {
    if (!s || g_size <= 1) return;
    start_ready(s, -1); // buckets whose owners backward did not reach
    wait_all(s->req, s->nb);
    s->next = 0;
    float inv = 1.0f / (float)g_size;
    float *gr = s->g->grads;
    size_t n = s->g->n_param_floats;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) gr[i] *= inv;
}

int rcv_grad_sync_buckets(const rcv_grad_sync *s) { return s ? s->nb : 0; }

void rcv_grad_sync_free(rcv_grad_sync *s) {
    if (!s) return;
    if (s->g->hook_ctx == s) {
        s->g->on_backward_node = NULL;
        s->g->hook_ctx = NULL;
    }
    free(s->b);
    free(s->req);
    free(s);
}

// ---- sync-bn, buffers ------------------------------------------------------------------

static void bn_allreduce(rcv_graph *g, double *x, size_t n) {
    (void)g;
    rcv_dist_allreduce_f64(x, n);
}

void rcv_dist_sync_bn(rcv_graph *g, int on) { g->bn_allreduce = on ? bn_allreduce : NULL; }

void rcv_dist_average_buffers(rcv_graph *g) {
    if (g_size <= 1 || !g->n_buffer_floats) return;
    rcv_dist_allreduce_f32(g->buffers, g->n_buffer_floats);
    for (size_t i = 0; i < g->n_buffer_floats; i++) g->buffers[i] /= (float)g_size;
}
