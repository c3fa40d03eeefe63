// robustcv serve: an Open Inference Protocol v2 (KServe) REST server on libmicrohttpd.
//
//   http.c     the daemon (thread pool + epoll), bodies with a size cap, routing, responses
//   oip.c      the protocol's JSON: metadata, health, infer, and our explain / attack extensions
//   batcher.c  one thread that runs the models: infer jobs batched across requests (max-batch
//              images or max-delay), explain / attack jobs one at a time, a bounded queue
//   metrics.c  Prometheus text: requests, errors by status, latency and batch-size histograms
//   codec.c    base64 and PNG in memory
//   load.c     checkpoints into a serve_state (the CLI and tests/fuzz/fuzz_serve.c)
//   page.c     the web page at / (page.html embedded at build time)
// Only the batcher thread touches a model's graph; HTTP threads parse, queue and wait.
#ifndef RCV_SERVE_H
#define RCV_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "robustcv/explain.h"
#include "robustcv/image.h"
#include "robustcv/models.h"

#define SERVE_MAX_MODELS 16

// A served model: one checkpoint, or the ensemble of all of them (members).
typedef struct {
    char name[128];          // checkpoint stem, or "ensemble"
    char path[1024];         // checkpoint file ("" for the ensemble)
    int n_members;           // 1, or the checkpoints of the ensemble
    int member[SERVE_MAX_MODELS]; // indices into serve_state.ck
} serve_model;

// One loaded checkpoint: the model planned for batches of 1, 4, 16, ... and max-batch images (a
// forward pass runs on the smallest that holds the batch, zero-padded), and once more for explain
// and attack, which re-plan it. All hold the same weights.
#define SERVE_MAX_INST 8
typedef struct {
    rcv_model inst[SERVE_MAX_INST];
    int inst_batch[SERVE_MAX_INST], n_inst;
    rcv_model tool;
    int tool_mode;           // 0 none, 1 explainer planned, 2 attack planned
    rcv_explainer ex;        // Grad-CAM on `tool`, batch 1 (tool_mode 1)
    char **classes;          // n_classes names (NULL entries allowed)
    int n_classes;
    double load_seconds;
} serve_ckpt;

typedef struct {
    const char *host;
    int port, max_batch, max_delay_ms, queue, http_threads, threads; // threads: OpenMP, 0 = default
    size_t max_request;      // bytes
    rcv_backend backend;
    // AutoAttack's iterations per attack and Square's queries (0: its defaults, 100 and 5000).
    // Not a flag: tests/fuzz/fuzz_serve.c lowers them so that every input stays fast.
    int aa_n_iter, aa_n_queries;
} serve_cfg;

// --- jobs (batcher.c) ---
typedef enum { JOB_INFER = 0, JOB_EXPLAIN, JOB_ATTACK } job_kind;

typedef struct serve_job {
    job_kind kind;
    int model;               // index into serve_state.models
    int n;                   // images
    float *x;                // (n, H, W, C) in [0, 1]
    float *logits;           // out: (n, K)
    // explain: top_k maps per image; attack: one adversarial image
    int top_k;
    int32_t *classes;        // out: explain (n, top_k) classes
    float *maps;             // out: explain (n, top_k, H, W)
    int attack_pgd, steps;   // attack: FGSM (0), PGD (1) or AutoAttack standard (2); PGD's steps
    float eps;
    unsigned long long seed;
    float *x_adv;            // out: attack (n, H, W, C)
    float *adv_logits;       // out: attack (n, K)
    int rc;                  // out: 0 or -1 with err
    char err[512];
    int done;
    int batch_size;          // out: images in the forward pass that served it
    void (*on_done)(void *); // called by the batcher when the job is done (the job may be freed then)
    void *done_arg;
    double t_enqueue;
    struct serve_job *next;
} serve_job;

typedef struct {
    serve_cfg cfg;
    serve_ckpt ck[SERVE_MAX_MODELS];
    int n_ck;
    serve_model models[SERVE_MAX_MODELS + 1];
    int n_models;
    int in_c, in_h, in_w, n_classes; // shared by every served model
    // queue
    pthread_mutex_t mu;
    pthread_cond_t cv_work;
    serve_job *head, *tail;
    int queued, stop;        // queued: places reserved (jobs queued or about to be)
    int stopping;            // SIGINT / SIGTERM seen: new jobs get 503
    int in_flight;           // requests waiting for a job (connections suspended); atomic
    pthread_t thread;
    double t_start;
} serve_state;

double serve_now(void); // monotonic seconds

int serve_batcher_start(serve_state *s);
void serve_batcher_stop(serve_state *s);
// A place in the queue: -1 (answer 503) when cfg.queue places are taken or the server is stopping.
int serve_reserve(serve_state *s);
// Queues a job into a reserved place; j->on_done(j->done_arg) runs when it is done.
void serve_enqueue(serve_state *s, serve_job *j);

// --- metrics.c ---
void serve_metrics_init(void);
void serve_metrics_request(int status, double seconds);
void serve_metrics_batch(int n);
// Prometheus text exposition (malloc'ed).
char *serve_metrics_text(const serve_state *s);

// --- codec.c ---
char *serve_base64_encode(const uint8_t *data, size_t n); // malloc'ed, NUL-terminated
// Standard alphabet, padding optional, whitespace skipped. -1 on any other byte.
int serve_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n);
// A PNG's or JPEG's size from its header, before decoding: -1 with a message when over max_pixels
// (a small file can declare a huge image). Other data passes (the decoder judges it).
int serve_image_check(const uint8_t *data, size_t n, long max_pixels);
// 8-bit PNG (c = 1, 3 or 4) into malloc'ed memory. 0 or -1 with a message.
int serve_png_encode(const rcv_image *img, uint8_t **out, size_t *out_n);

// --- oip.c --- a response: status, content type, malloc'ed body.
typedef struct {
    int status;
    const char *type;
    const char *allow;       // 405: the methods the path takes
    char *body;
    size_t len;
} serve_reply;
// How a request waits for the batcher without holding an HTTP thread: suspend(arg) before its job
// is queued, resume(arg) from the batcher when the job is done (libmicrohttpd's connection
// suspend / resume).
typedef struct {
    void (*suspend)(void *arg);
    void (*resume)(void *arg);
    void *arg;
} serve_wait;
typedef struct serve_pending serve_pending;
// Answers a request in r; or, for infer / explain / attack, queues its job, calls wt->suspend and
// returns with *pending set (r->status 0): serve_finish then writes the answer once resumed.
void serve_handle(serve_state *s, const char *method, const char *url, const char *body, size_t len, const serve_wait *wt,
                  serve_reply *r, serve_pending **pending);
void serve_finish(serve_state *s, serve_pending *q, serve_reply *r);
void serve_pending_free(serve_pending *q);
void serve_reply_error(serve_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// --- load.c ---
// Loads a checkpoint (one instance per planned batch size, plus the tool instance) as a served model
// named after the file's stem. 0, or -1 with a message (also when its input shape or class count
// differs from the first checkpoint's).
int serve_load_ckpt(serve_state *s, const char *path);
void serve_add_ensemble(serve_state *s); // the model "ensemble": every checkpoint loaded so far
void serve_free_models(serve_state *s);

// --- http.c ---
int serve_run(serve_state *s); // until SIGINT / SIGTERM

// --- page.c ---
extern const char serve_page_html[];
extern const size_t serve_page_html_len;

#endif
