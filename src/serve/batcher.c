// The batcher: one thread owns every model. Infer jobs for the same model are packed into one
// forward pass until max-batch images are waiting or the oldest has waited max-delay; explain
// and attack jobs run one at a time between batches.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "robustcv/attack.h"
#include "robustcv/error.h"
#include "robustcv/rng.h"
#include "robustcv/train.h"
#include "serve/serve.h"

double serve_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// Logits (n, K) of x (n, H, W, C) for served model `mi`: one checkpoint's logits, or for the
// ensemble log(mean_m softmax(z_m)) (what rcv_classifier attacks, probability averaging).
typedef struct {
    const float *x;
    size_t per;
} fill_ctx;
static void fill_rows(void *ctx, int s, int nb, float *x) {
    const fill_ctx *f = ctx;
    memcpy(x, f->x + (size_t)s * f->per, (size_t)nb * f->per * sizeof(float));
}

// The smallest planned instance that holds n images (the largest for more: chunks of it).
static int member_logits(serve_state *s, serve_ckpt *c, fill_ctx *fc, int n, float *out) {
    int i = 0;
    while (i + 1 < c->n_inst && c->inst_batch[i] < n) i++;
    return rcv_logits_batched(&c->inst[i], n, c->inst_batch[i], s->cfg.backend, fill_rows, fc, out);
}

static int model_logits(serve_state *s, int mi, const float *x, int n, float *out) {
    const serve_model *sm = &s->models[mi];
    int k = s->n_classes;
    fill_ctx fc = {x, (size_t)s->in_c * s->in_h * s->in_w};
    if (sm->n_members == 1) {
        return member_logits(s, &s->ck[sm->member[0]], &fc, n, out);
    }
    double *acc = rcv_xcalloc((size_t)n * k, sizeof(double));
    float *z = rcv_xmalloc((size_t)n * k * sizeof(float));
    int rc = 0;
    for (int a = 0; a < sm->n_members && !rc; a++) {
        rc = member_logits(s, &s->ck[sm->member[a]], &fc, n, z);
        for (int i = 0; i < n && !rc; i++) {
            const float *zi = z + (size_t)i * k;
            double mx = zi[0], t = 0;
            for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
            for (int j = 0; j < k; j++) t += exp((double)zi[j] - mx);
            for (int j = 0; j < k; j++) acc[(size_t)i * k + j] += exp((double)zi[j] - mx) / t;
        }
    }
    for (size_t i = 0; i < (size_t)n * k; i++) out[i] = (float)log(acc[i] / sm->n_members);
    free(acc);
    free(z);
    return rc;
}

static void run_infer(serve_state *s, serve_job **jobs, int nj) {
    int n = 0;
    for (int a = 0; a < nj; a++) n += jobs[a]->n;
    size_t per = (size_t)s->in_c * s->in_h * s->in_w, k = (size_t)s->n_classes;
    const float *x = jobs[0]->x;
    float *xb = NULL, *z = jobs[0]->logits;
    if (nj > 1) {
        xb = rcv_xmalloc((size_t)n * per * sizeof(float));
        z = rcv_xmalloc((size_t)n * k * sizeof(float));
        for (int a = 0, o = 0; a < nj; o += jobs[a]->n, a++)
            memcpy(xb + (size_t)o * per, jobs[a]->x, (size_t)jobs[a]->n * per * sizeof(float));
        x = xb;
    }
    int rc = model_logits(s, jobs[0]->model, x, n, z);
    serve_metrics_batch(n);
    for (int a = 0, o = 0; a < nj; o += jobs[a]->n, a++) {
        serve_job *j = jobs[a];
        j->rc = rc;
        j->batch_size = n;
        if (rc) snprintf(j->err, sizeof j->err, "%s", rcv_error());
        else if (nj > 1) memcpy(j->logits, z + (size_t)o * k, (size_t)j->n * k * sizeof(float));
    }
    if (nj > 1) {
        free(xb);
        free(z);
    }
}

// Top-k classes by logit (ties to the lower index) of one row.
static void top_k(const float *z, int k, int t, int32_t *out) {
    for (int a = 0; a < t; a++) {
        int best = -1;
        for (int j = 0; j < k; j++) {
            int used = 0;
            for (int b = 0; b < a; b++) used |= out[b] == j;
            if (!used && (best < 0 || z[j] > z[best])) best = j;
        }
        out[a] = best;
    }
}

static int run_explain(serve_state *s, serve_job *j) {
    const serve_model *sm = &s->models[j->model];
    int k = s->n_classes, hw = s->in_h * s->in_w;
    size_t per = (size_t)s->in_c * hw;
    if (model_logits(s, j->model, j->x, j->n, j->logits)) return -1;
    for (int i = 0; i < j->n; i++) top_k(j->logits + (size_t)i * k, k, j->top_k, j->classes + (size_t)i * j->top_k);
    size_t nmap = (size_t)j->n * j->top_k * hw;
    memset(j->maps, 0, nmap * sizeof(float));
    float *one = rcv_xmalloc((size_t)hw * sizeof(float));
    int rc = 0;
    for (int a = 0; a < sm->n_members && !rc; a++) {
        serve_ckpt *c = &s->ck[sm->member[a]];
        if (c->tool_mode != 1) {
            rcv_explainer_free(&c->ex);
            c->tool_mode = 0;
            if (rcv_explainer_init(&c->ex, &c->tool, RCV_CAM_GRADCAM, NULL, 1, s->cfg.backend)) { rc = -1; break; }
            c->tool_mode = 1;
        }
        for (int i = 0; i < j->n && !rc; i++)
            for (int t = 0; t < j->top_k && !rc; t++) {
                int32_t cls = j->classes[(size_t)i * j->top_k + t];
                rc = rcv_explainer_run(&c->ex, j->x + (size_t)i * per, 1, &cls, one);
                float *dst = j->maps + ((size_t)i * j->top_k + t) * hw;
                for (int p = 0; p < hw; p++) dst[p] += one[p] / sm->n_members; // the members' mean map
            }
    }
    free(one);
    return rc;
}

static int run_attack(serve_state *s, serve_job *j) {
    const serve_model *sm = &s->models[j->model];
    int k = s->n_classes;
    if (model_logits(s, j->model, j->x, j->n, j->logits)) return -1;
    rcv_model *mods[SERVE_MAX_MODELS];
    for (int a = 0; a < sm->n_members; a++) {
        serve_ckpt *c = &s->ck[sm->member[a]];
        if (c->tool_mode == 1) rcv_explainer_free(&c->ex);
        if (c->tool_mode != 2) {
            c->tool_mode = 0;
            if (rcv_attack_prepare(&c->tool, 1, s->cfg.backend)) return -1;
            c->tool_mode = 2;
        }
        mods[a] = &c->tool;
    }
    int32_t *y = rcv_xmalloc((size_t)j->n * sizeof(int32_t));
    for (int i = 0; i < j->n; i++) top_k(j->logits + (size_t)i * k, k, 1, y + i); // attack the predicted class
    rcv_rng rng;
    rcv_rng_init(&rng, j->seed);
    rcv_classifier f = {mods, sm->n_members, 0, &rng};
    rcv_pgd_cfg pc;
    rcv_pgd_defaults(&pc, RCV_NORM_LINF);
    pc.eps = j->eps;
    if (j->attack_pgd) {
        pc.steps = j->steps;
        pc.alpha = 2.5f * j->eps / j->steps; // Madry et al.'s step: 2.5 eps / steps
        pc.random_start = 1;
    } else { // FGSM: one step of size eps from x, no random start
        pc.steps = 1;
        pc.alpha = j->eps;
        pc.random_start = 0;
    }
    int rc = rcv_classifier_check(&f);
    if (!rc && j->attack_pgd == 2) { // AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square) at eps
        rcv_autoattack_cfg ac;
        rcv_autoattack_defaults(&ac, RCV_NORM_LINF);
        ac.eps = j->eps;
        ac.seed = j->seed;
        if (s->cfg.aa_n_iter > 0) ac.n_iter = s->cfg.aa_n_iter;
        if (s->cfg.aa_n_queries > 0) ac.n_queries = s->cfg.aa_n_queries;
        rcv_autoattack_result ar;
        rc = rcv_autoattack(&f, j->x, y, j->n, &ac, j->x_adv, NULL, &ar);
    } else if (!rc)
        rc = rcv_attack_pgd_classifier(&f, j->x, y, j->n, &pc, &rng, j->x_adv);
    if (!rc) rcv_classifier_logits(&f, j->x_adv, j->n, j->adv_logits);
    free(y);
    return rc;
}

static void *batcher_main(void *arg) {
    serve_state *s = arg;
    serve_job *batch[1024];
    // omp_set_num_threads is per thread: the models run here, so --threads is applied here.
    if (s->cfg.threads > 0) omp_set_num_threads(s->cfg.threads);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && !s->head) pthread_cond_wait(&s->cv_work, &s->mu);
        if (!s->head) break; // stopping, nothing left
        serve_job *first = s->head;
        if (first->kind == JOB_INFER && s->cfg.max_batch > 1) {
            double deadline = first->t_enqueue + s->cfg.max_delay_ms * 1e-3;
            for (;;) {
                int waiting = 0;
                for (serve_job *q = s->head; q; q = q->next)
                    if (q->kind == JOB_INFER && q->model == first->model) waiting += q->n;
                if (waiting >= s->cfg.max_batch || s->stop) break;
                double now = serve_now();
                if (now >= deadline) break;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                double wait = deadline - now;
                ts.tv_sec += (time_t)wait;
                ts.tv_nsec += (long)((wait - (time_t)wait) * 1e9);
                if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&s->cv_work, &s->mu, &ts);
            }
        }
        // Take the first job, and for infer every queued infer job of its model that still fits.
        int nb = 0, imgs = 0;
        serve_job **pp = &s->head, *prev = NULL;
        while (*pp && nb < 1024) {
            serve_job *q = *pp;
            int take = q == first || (first->kind == JOB_INFER && q->kind == JOB_INFER && q->model == first->model &&
                                      imgs + q->n <= s->cfg.max_batch);
            if (take) {
                batch[nb++] = q;
                imgs += q->n;
                *pp = q->next;
                if (s->tail == q) s->tail = prev;
                s->queued--;
            } else {
                prev = q;
                pp = &q->next;
            }
        }
        pthread_mutex_unlock(&s->mu);
        if (first->kind == JOB_INFER) run_infer(s, batch, nb);
        else {
            first->batch_size = first->n;
            first->rc = first->kind == JOB_EXPLAIN ? run_explain(s, first) : run_attack(s, first);
            if (first->rc) snprintf(first->err, sizeof first->err, "%s", rcv_error());
        }
        // Callbacks collected first: once resumed, a request may free its job.
        void (*cb[1024])(void *);
        void *cb_arg[1024];
        for (int a = 0; a < nb; a++) cb[a] = batch[a]->on_done, cb_arg[a] = batch[a]->done_arg;
        pthread_mutex_lock(&s->mu);
        for (int a = 0; a < nb; a++) batch[a]->done = 1;
        pthread_mutex_unlock(&s->mu);
        for (int a = 0; a < nb; a++)
            if (cb[a]) cb[a](cb_arg[a]);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int serve_batcher_start(serve_state *s) {
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    if (pthread_create(&s->thread, NULL, batcher_main, s)) return rcv_fail("serve: cannot start the batcher thread");
    return 0;
}

void serve_batcher_stop(serve_state *s) {
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
}

int serve_reserve(serve_state *s) {
    pthread_mutex_lock(&s->mu);
    int ok = !s->stop && !s->stopping && s->queued < s->cfg.queue;
    if (ok) s->queued++;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

void serve_enqueue(serve_state *s, serve_job *j) {
    pthread_mutex_lock(&s->mu);
    j->done = 0;
    j->next = NULL;
    j->t_enqueue = serve_now();
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
}
