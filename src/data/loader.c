// The threaded loader. Work is handed out in small runs of samples in batch order; a
// worker may run at most DEPTH batches ahead of the consumer, each batch being built in
// its own slot, so the consumer copies out a finished batch while later ones are filled.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/loader.h"

#define DEPTH 3 // batches in flight: one being consumed, two being prepared
#define CHUNK 8 // samples claimed at a time (fewer lock round trips)

struct rcv_loader {
    const rcv_dataset *d;
    int batch, n_steps, threads;
    int *perm;
    rcv_sample_fn fn;
    void *ctx;
    rcv_rng rng;
    float lut[256];
    size_t per; // floats per image
    float *x[DEPTH];
    int32_t *lab[DEPTH];
    float *box[DEPTH];
    int done[DEPTH];  // samples finished in the slot's batch
    long next_task;   // next sample position (s * batch + i) to hand out
    int consumed;     // batches returned by rcv_loader_next
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready;
    pthread_t *th;
    int n_started;
};

// Sample at epoch position t into row i of x/lab/box. x: (h, w, c).
static void load_sample(rcv_loader *L, long t, float *x, int32_t *lab, float *box) {
    const rcv_dataset *d = L->d;
    int idx = L->perm[t];
    const uint8_t *src = d->pixels + (size_t)idx * L->per;
    for (size_t j = 0; j < L->per; j++) x[j] = L->lut[src[j]];
    *lab = d->labels[idx];
    if (d->boxes) memcpy(box, d->boxes + 4 * (size_t)idx, 4 * sizeof(float));
    if (L->fn) {
        rcv_rng r = rcv_rng_fork(&L->rng, (uint64_t)t);
        L->fn(L->ctx, &r, x, d->h, d->w, d->c, d->boxes ? box : NULL, d->boxes ? 1 : 0);
    }
}

static void load_range(rcv_loader *L, long t0, int cnt, int slot) {
    for (long t = t0; t < t0 + cnt; t++) {
        int i = (int)(t % L->batch);
        load_sample(L, t, L->x[slot] + (size_t)i * L->per, L->lab[slot] + i, L->box[slot] + 4 * (size_t)i);
    }
}

static void *worker(void *arg) {
    rcv_loader *L = arg;
    long total = (long)L->n_steps * L->batch;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && L->next_task < total && L->next_task / L->batch >= L->consumed + DEPTH)
            pthread_cond_wait(&L->cv_work, &L->mu);
        if (L->stop || L->next_task >= total) break;
        long t0 = L->next_task;
        long left = L->batch - t0 % L->batch; // a run never crosses into the next batch's slot
        int cnt = (int)(left < CHUNK ? left : CHUNK);
        L->next_task += cnt;
        int slot = (int)((t0 / L->batch) % DEPTH);
        pthread_mutex_unlock(&L->mu);
        load_range(L, t0, cnt, slot);
        pthread_mutex_lock(&L->mu);
        L->done[slot] += cnt;
        if (L->done[slot] == L->batch) pthread_cond_broadcast(&L->cv_ready);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

int rcv_loader_open(rcv_loader **out, const rcv_dataset *d, int batch, const int *perm, int n_steps, rcv_sample_fn fn,
                    void *ctx, const rcv_rng *rng, int threads) {
    *out = NULL;
    if (batch <= 0 || n_steps < 0 || threads < 0)
        return rcv_fail("loader: batch %d, steps %d, threads %d; expected batch > 0, steps >= 0, threads >= 0", batch,
                        n_steps, threads);
    long total = (long)n_steps * batch;
    if (!perm && total > d->n)
        return rcv_fail("loader: %d steps of %d need %ld images, %s has %d", n_steps, batch, total, d->source, d->n);
    rcv_loader *L = rcv_xcalloc(1, sizeof *L);
    L->d = d;
    L->batch = batch;
    L->n_steps = n_steps;
    L->fn = fn;
    L->ctx = ctx;
    L->rng = *rng;
    L->per = (size_t)d->h * d->w * d->c;
    for (int v = 0; v < 256; v++) L->lut[v] = (float)v / 255.0f; // as torchvision's ToTensor
    L->perm = rcv_xmalloc((size_t)(total ? total : 1) * sizeof(int));
    for (long t = 0; t < total; t++) {
        L->perm[t] = perm ? perm[t] : (int)t;
        if (L->perm[t] < 0 || L->perm[t] >= d->n) {
            int bad = L->perm[t];
            free(L->perm);
            free(L);
            return rcv_fail("loader: sample %ld is image %d, %s has %d", t, bad, d->source, d->n);
        }
    }
    int slots = threads ? DEPTH : 1;
    for (int k = 0; k < slots; k++) {
        L->x[k] = rcv_alloc_aligned((size_t)batch * L->per * sizeof(float));
        L->lab[k] = rcv_xmalloc((size_t)batch * sizeof(int32_t));
        L->box[k] = rcv_xmalloc((size_t)batch * 4 * sizeof(float));
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv_work, NULL);
    pthread_cond_init(&L->cv_ready, NULL);
    L->threads = threads;
    if (threads) {
        L->th = rcv_xmalloc((size_t)threads * sizeof(pthread_t));
        for (int i = 0; i < threads; i++) {
            if (pthread_create(&L->th[i], NULL, worker, L)) {
                rcv_loader_close(L);
                return rcv_fail("loader: cannot start thread %d of %d", i + 1, threads);
            }
            L->n_started++;
        }
    }
    *out = L;
    return 0;
}

int rcv_loader_next(rcv_loader *L, float *x, int32_t *labels, float *boxes) {
    if (L->consumed >= L->n_steps) return rcv_fail("loader: all %d batches have been read", L->n_steps);
    int slot = 0;
    if (!L->threads) {
        load_range(L, (long)L->consumed * L->batch, L->batch, 0);
    } else {
        slot = L->consumed % DEPTH;
        pthread_mutex_lock(&L->mu);
        while (L->done[slot] < L->batch) pthread_cond_wait(&L->cv_ready, &L->mu);
        pthread_mutex_unlock(&L->mu);
    }
    memcpy(x, L->x[slot], (size_t)L->batch * L->per * sizeof(float));
    if (labels) memcpy(labels, L->lab[slot], (size_t)L->batch * sizeof(int32_t));
    if (boxes && L->d->boxes) memcpy(boxes, L->box[slot], (size_t)L->batch * 4 * sizeof(float));
    pthread_mutex_lock(&L->mu);
    L->done[slot] = 0;
    L->consumed++; // frees the slot for batch consumed + DEPTH - 1
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

void rcv_loader_close(rcv_loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->n_started; i++) pthread_join(L->th[i], NULL);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_ready);
    for (int k = 0; k < DEPTH; k++) {
        free(L->x[k]);
        free(L->lab[k]);
        free(L->box[k]);
    }
    free(L->th);
    free(L->perm);
    free(L);
}
