// Data-parallel training over MPI: process ranks, collectives, gradient allreduce in
// buckets overlapped with the backward pass, and synchronised batchnorm.
//
// Built with MPI (CMake found it: RCV_HAVE_MPI in src/dist/dist.c) the functions use
// MPI_COMM_WORLD when the program was launched by mpirun; otherwise (no MPI, or a
// plain launch) the same API runs as one rank: size 1, collectives are copies.
// Callers never test for MPI: a one-rank run takes the same code path.
//
// Threads: only the calling (main) thread makes MPI calls (MPI_THREAD_FUNNELED);
// OpenMP threads inside kernels never do.
#ifndef RCV_DIST_H
#define RCV_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/graph.h"

// Initialises MPI when launched under mpirun (OMPI_COMM_WORLD_SIZE / PMI_SIZE / PMIX_RANK
// in the environment), else sets up one rank. Idempotent. 0 or -1 with a message.
int rcv_dist_init(int *argc, char ***argv);
void rcv_dist_finalize(void);
// Ends every rank with `code` (MPI_Abort): a rank that fails alone would otherwise leave
// the others waiting in their next collective. With one rank: exit(code).
void rcv_dist_abort(int code);
int rcv_dist_rank(void);
int rcv_dist_size(void);
int rcv_dist_local_size(void); // ranks on this machine (for the default thread count)
int rcv_dist_have_mpi(void);   // 1 when built with MPI

// In-place sums over all ranks (every rank gets the result).
void rcv_dist_allreduce_f32(float *x, size_t n);
void rcv_dist_allreduce_f64(double *x, size_t n);
void rcv_dist_allreduce_i64(int64_t *x, size_t n);
void rcv_dist_barrier(void);
void rcv_dist_bcast(void *buf, size_t bytes, int root);
// 1 if `failed` is non-zero on any rank: lets every rank stop together when one fails
// (rank 0 writing a checkpoint) instead of the others hanging in the next collective.
int rcv_dist_any(int failed);

// Gradient allreduce of g->grads in buckets of about bucket_bytes (contiguous runs of
// parameters in registration order). Installs a backward hook on g: a bucket's
// MPI_Iallreduce starts as soon as the backward pass has run every node owning one of
// its parameters, so communication overlaps the rest of the backward pass.
// rcv_grad_sync_finish waits for all, starts any bucket not yet started (parameters that
// got no gradient), and divides by the rank count: each rank's gradient is of its local
// mean loss, so the result is the gradient of the global mean loss. With one rank no
// hook is installed and finish does nothing.
typedef struct rcv_grad_sync rcv_grad_sync;
rcv_grad_sync *rcv_grad_sync_new(rcv_graph *g, size_t bucket_bytes);
void rcv_grad_sync_finish(rcv_grad_sync *s);
int rcv_grad_sync_buckets(const rcv_grad_sync *s); // number of buckets (0 with one rank)
void rcv_grad_sync_free(rcv_grad_sync *s);          // removes the hook

// Synchronised batchnorm: training-mode batch statistics (and their backward sums) are
// reduced over all ranks, so N ranks x batch B normalise exactly like one rank x N*B.
// on = 0 restores per-rank statistics.
void rcv_dist_sync_bn(rcv_graph *g, int on);

// Averages the float buffers (batchnorm running statistics) over ranks: without sync-bn
// each rank's running statistics follow its own shard; PyTorch DDP broadcasts rank 0's,
// averaging keeps every rank's contribution.
void rcv_dist_average_buffers(rcv_graph *g);

#endif
