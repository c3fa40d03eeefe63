// Data-parallel training over several GPUs: NCCL averages the contiguous gradient buffer
// (g->dgrads, one allreduce per step, llm.c's layout pays off here) and broadcasts rank 0's
// parameters at the start. Two ways to get communicators:
//   - one process per GPU (rcv_nccl_init_env): rank/world from the environment, which
//     mpirun (Open MPI) or any launcher sets; the NCCL unique id travels through a file on a
//     filesystem every rank sees, so no MPI library is linked;
//   - one process driving several GPUs (rcv_nccl_init_devices, ncclCommInitAll).
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/cuda/cu_ctx.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"

struct rcv_nccl {
    int n;             // communicators held by this process
    ncclComm_t *comms;
    int *devs;
};

static int nccl_fail(const char *what, ncclResult_t r) {
    return rcv_fail("nccl: %s: %s", what, ncclGetErrorString(r));
}

// First of the environment variables that is set, as an integer; dflt when none is.
static int env_int(const char *a, const char *b, const char *c, int dflt) {
    const char *names[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        const char *v = names[i] ? getenv(names[i]) : NULL;
        if (v && *v) return atoi(v);
    }
    return dflt;
}

rcv_nccl *rcv_nccl_init_env(int *rank, int *world, int *device) {
    int r = env_int("RCV_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", 0);
    int w = env_int("RCV_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", 1);
    int local = env_int("RCV_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", NULL, r);
    if (w < 1 || r < 0 || r >= w) {
        rcv_fail("nccl: rank %d of world size %d (RCV_RANK/RCV_WORLD_SIZE), expected 0 <= rank < size", r, w);
        return NULL;
    }
    int count = rcv_cuda_device_count();
    if (count < 0) return NULL;
    int dev = local % count;
    const char *idpath = getenv("RCV_NCCL_ID");
    if (w > 1 && (!idpath || !*idpath)) {
        rcv_fail("nccl: world size %d needs RCV_NCCL_ID, a fresh file path every rank can read (shared filesystem)", w);
        return NULL;
    }
    ncclUniqueId id;
    ncclResult_t nr;
    if (r == 0) {
        if ((nr = ncclGetUniqueId(&id)) != ncclSuccess) { nccl_fail("ncclGetUniqueId", nr); return NULL; }
        if (w > 1 && rcv_file_write_atomic(idpath, &id, sizeof id)) return NULL;
    } else {
        // Wait up to two minutes for rank 0's file (written atomically, so never half read).
        int ok = 0;
        for (int t = 0; t < 1200 && !ok; t++) {
            uint8_t *data = NULL;
            size_t len = 0;
            if (access(idpath, R_OK) == 0 && rcv_file_read(idpath, &data, &len) == 0 && len == sizeof id) {
                memcpy(&id, data, sizeof id);
                ok = 1;
            }
            free(data);
            if (!ok) {
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (!ok) {
            rcv_fail("nccl: rank %d: no NCCL id in %s after 120 s (is rank 0 running?)", r, idpath);
            return NULL;
        }
    }
    if (cudaSetDevice(dev) != cudaSuccess) {
        rcv_fail("nccl: cudaSetDevice(%d) failed", dev);
        return NULL;
    }
    rcv_nccl *c = rcv_xcalloc(1, sizeof *c);
    c->n = 1;
    c->comms = rcv_xcalloc(1, sizeof *c->comms);
    c->devs = rcv_xcalloc(1, sizeof *c->devs);
    c->devs[0] = dev;
    if ((nr = ncclCommInitRank(&c->comms[0], w, id, r)) != ncclSuccess) {
        nccl_fail("ncclCommInitRank", nr);
        free(c->comms);
        free(c->devs);
        free(c);
        return NULL;
    }
    *rank = r;
    *world = w;
    *device = dev;
    return c;
}

rcv_nccl *rcv_nccl_init_devices(const int *devs, int n) {
    if (n < 1) {
        rcv_fail("nccl: %d devices, expected at least 1", n);
        return NULL;
    }
    int count = rcv_cuda_device_count();
    if (count < 0) return NULL;
    for (int i = 0; i < n; i++)
        if (devs[i] < 0 || devs[i] >= count) {
            rcv_fail("nccl: device %d requested, this machine has %d", devs[i], count);
            return NULL;
        }
    rcv_nccl *c = rcv_xcalloc(1, sizeof *c);
    c->n = n;
    c->comms = rcv_xcalloc((size_t)n, sizeof *c->comms);
    c->devs = rcv_xmalloc((size_t)n * sizeof *c->devs);
    memcpy(c->devs, devs, (size_t)n * sizeof *devs);
    ncclResult_t nr = ncclCommInitAll(c->comms, n, c->devs);
    if (nr != ncclSuccess) {
        nccl_fail("ncclCommInitAll", nr);
        free(c->comms);
        free(c->devs);
        free(c);
        return NULL;
    }
    return c;
}

static int check_graphs(rcv_nccl *c, rcv_graph **gs, int n) {
    if (n != c->n) return rcv_fail("nccl: %d graphs for %d communicators", n, c->n);
    for (int i = 0; i < n; i++) {
        if (!gs[i]->dgrads || gs[i]->backend != RCV_BACKEND_CUDA)
            return rcv_fail("nccl: graph %d is not planned on the cuda backend", i);
        if (gs[i]->n_param_floats != gs[0]->n_param_floats)
            return rcv_fail("nccl: graph %d has %zu parameter floats, graph 0 has %zu", i, gs[i]->n_param_floats,
                            gs[0]->n_param_floats);
        if (cu_of(gs[i])->device != c->devs[i])
            return rcv_fail("nccl: graph %d is planned on device %d, its communicator is on device %d", i,
                            cu_of(gs[i])->device, c->devs[i]);
    }
    return 0;
}

int rcv_nccl_allreduce_grads(rcv_nccl *c, rcv_graph **gs, int n) {
    if (check_graphs(c, gs, n)) return -1;
    ncclResult_t nr = ncclGroupStart();
    for (int i = 0; i < n && nr == ncclSuccess; i++) {
        cudaSetDevice(c->devs[i]);
        nr = ncclAllReduce(gs[i]->dgrads, gs[i]->dgrads, gs[i]->n_param_floats, ncclFloat, ncclAvg, c->comms[i],
                           cu_of(gs[i])->stream);
    }
    ncclResult_t ne = ncclGroupEnd();
    if (nr != ncclSuccess) return nccl_fail("ncclAllReduce", nr);
    if (ne != ncclSuccess) return nccl_fail("ncclGroupEnd", ne);
    return 0;
}

int rcv_nccl_broadcast_params(rcv_nccl *c, rcv_graph **gs, int n) {
    if (check_graphs(c, gs, n)) return -1;
    ncclResult_t nr = ncclGroupStart();
    for (int i = 0; i < n && nr == ncclSuccess; i++) {
        rcv_graph *g = gs[i];
        cudaStream_t s = cu_of(g)->stream;
        cudaSetDevice(c->devs[i]);
        nr = ncclBroadcast(g->dparams, g->dparams, g->n_param_floats, ncclFloat, 0, c->comms[i], s);
        if (nr == ncclSuccess && g->n_buffer_floats)
            nr = ncclBroadcast(g->dbuffers, g->dbuffers, g->n_buffer_floats, ncclFloat, 0, c->comms[i], s);
        if (nr == ncclSuccess && g->n_ibuffers)
            nr = ncclBroadcast(g->dibuffers, g->dibuffers, g->n_ibuffers, ncclInt64, 0, c->comms[i], s);
    }
    ncclResult_t ne = ncclGroupEnd();
    if (nr != ncclSuccess) return nccl_fail("ncclBroadcast", nr);
    if (ne != ncclSuccess) return nccl_fail("ncclGroupEnd", ne);
    return 0;
}

void rcv_nccl_free(rcv_nccl *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++)
        if (c->comms[i]) ncclCommDestroy(c->comms[i]);
    free(c->comms);
    free(c->devs);
    free(c);
}
