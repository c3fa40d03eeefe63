// Small helpers shared by the cpu backend's C-loop kernels.
#ifndef RCV_CPU_UTIL_H
#define RCV_CPU_UTIL_H

#include <stddef.h>

#include "robustcv/graph.h"

// Below this many elements a loop stays on one thread (fork/join costs more).
#define RCV_PAR_MIN 32768

// d = v (acc == 0) or d += v (acc == 1): the in_beta rule for input gradients.
// Scalar form, for small or irregular loops.
#define RCV_PUT(d, v, acc)   \
    do {                     \
        if (acc) (d) += (v); \
        else (d) = (v);      \
    } while (0)

// The same rule over a range, as two branch-free loops (a test inside one loop
// keeps gcc from vectorizing it): for i in [0, n): d[i] (=|+=) expr.
// RCV_PAR_PUT runs OpenMP threads + SIMD (n > 32768 = RCV_PAR_MIN; a _Pragma string
// cannot name the macro); RCV_SIMD_PUT one thread.
#define RCV_PAR_PUT(acc, n, d, i, expr)                                                          \
    do {                                                                                         \
        size_t n_ = (n);                                                                         \
        if (acc) {                                                                               \
            _Pragma("omp parallel for simd if (n_ > 32768) schedule(static)")                    \
            for (size_t i = 0; i < n_; i++) (d)[i] += (expr);                                    \
        } else {                                                                                 \
            _Pragma("omp parallel for simd if (n_ > 32768) schedule(static)")                    \
            for (size_t i = 0; i < n_; i++) (d)[i] = (expr);                                     \
        }                                                                                        \
    } while (0)
#define RCV_SIMD_PUT(acc, n, d, i, expr)                   \
    do {                                                   \
        int n_ = (n);                                      \
        if (acc) {                                         \
            _Pragma("omp simd") for (int i = 0; i < n_; i++) (d)[i] += (expr); \
        } else {                                           \
            _Pragma("omp simd") for (int i = 0; i < n_; i++) (d)[i] = (expr);  \
        }                                                  \
    } while (0)

// How b broadcasts against a in add/mul: same shape, (N, C, 1, 1) over space, (N, 1, H, W) over channels.
typedef enum { RCV_BC_SAME, RCV_BC_SPATIAL, RCV_BC_CHANNEL } rcv_bc;
static inline rcv_bc rcv_bc_of(rcv_shape a, rcv_shape b) {
    if (a.c == b.c && a.h == b.h && a.w == b.w) return RCV_BC_SAME;
    if (b.h == 1 && b.w == 1) return RCV_BC_SPATIAL;
    return RCV_BC_CHANNEL;
}

// rcv_kernels.layout of ops that work element by element, or per channel on the
// (N*C/16, 16, H, W) view, so their output and inputs share either layout (rcv_layout_kind).
static inline rcv_layout_kind rcv_cpu_layout_tied(const rcv_graph *g, const rcv_node *n) {
    (void)g, (void)n;
    return RCV_LAYOUT_TIED;
}
// The same for binary ops, when nothing broadcasts.
static inline rcv_layout_kind rcv_cpu_layout_same(const rcv_graph *g, const rcv_node *n) {
    for (int i = 0; i < n->n_in; i++) {
        rcv_shape a = g->nodes[n->in[i]].shape;
        if (a.c != n->shape.c || a.h != n->shape.h || a.w != n->shape.w) return RCV_LAYOUT_NHWC;
    }
    return RCV_LAYOUT_TIED;
}

#endif
