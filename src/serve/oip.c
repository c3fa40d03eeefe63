// The Open Inference Protocol v2 over REST (KServe's "Open Inference Protocol" spec):
//   GET  /v2                                  server metadata {name, version, extensions}
//   GET  /v2/health/live, /v2/health/ready    {"live": true}, {"ready": true}
//   GET  /v2/models/{m}[/versions/1]          model metadata {name, versions, platform, inputs, outputs}
//   GET  /v2/models/{m}[/versions/1]/ready    {"name": m, "ready": true}
//   POST /v2/models/{m}[/versions/1]/infer    inference request -> response
// and our extensions (listed in the server metadata):
//   POST /v2/repository/index                 the model repository extension: [{name, version, state}]
//   POST /v2/models/{m}/explain               Grad-CAM overlays (PNG, base64) of the top-k classes
//   POST /v2/models/{m}/attack                FGSM / PGD (L-inf) on the image: new prediction, images
//   GET  /metrics                             Prometheus text;   GET /  the web page
// Errors: {"error": "..."} with 400 / 404 / 405 / 413 / 500 / 503.
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/json.h"
#include "robustcv/train.h"
#include "serve/serve.h"

#define SERVE_VERSION "0.1.0"
#define MAX_IMAGES 1024   // images per infer request
#define MAX_TOOL_IMAGES 8 // images per explain / attack request
#define MAX_IMAGE_PIXELS (4096L * 4096) // decoded size of one BYTES image

static void reply_json(serve_reply *r, int status, rcv_json_writer *w) {
    r->status = status;
    r->type = "application/json";
    r->len = w->out.len;
    r->body = rcv_xmalloc(w->out.len + 1);
    memcpy(r->body, rcv_json_text(w), w->out.len + 1);
    rcv_json_writer_free(w);
}

void serve_reply_error(serve_reply *r, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memset(r, 0, sizeof *r);
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "error");
    rcv_json_string(&w, msg);
    rcv_json_end_object(&w);
    reply_json(r, status, &w);
}

// Shortest decimal that reads back to the same float.
static void put_float(rcv_json_writer *w, float f) {
    if (!isfinite(f)) { rcv_json_null(w); return; }
    char b[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)f);
        if ((float)strtod(b, NULL) == f) break;
    }
    rcv_json_raw(w, b);
}

static void put_shape(rcv_json_writer *w, int a, int b) {
    rcv_json_key(w, "shape");
    rcv_json_begin_array(w);
    rcv_json_int(w, a);
    if (b >= 0) rcv_json_int(w, b);
    rcv_json_end_array(w);
}

static void tensor_meta(rcv_json_writer *w, const char *name, const char *dtype, const int *shape, int nd) {
    rcv_json_begin_object(w);
    rcv_json_key(w, "name");
    rcv_json_string(w, name);
    rcv_json_key(w, "datatype");
    rcv_json_string(w, dtype);
    rcv_json_key(w, "shape");
    rcv_json_begin_array(w);
    for (int i = 0; i < nd; i++) rcv_json_int(w, shape[i]);
    rcv_json_end_array(w);
    rcv_json_end_object(w);
}

static void server_metadata(serve_reply *r) {
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "name");
    rcv_json_string(&w, "robustcv");
    rcv_json_key(&w, "version");
    rcv_json_string(&w, SERVE_VERSION);
    rcv_json_key(&w, "extensions");
    rcv_json_begin_array(&w);
    rcv_json_string(&w, "model_repository");
    rcv_json_string(&w, "explain");
    rcv_json_string(&w, "attack");
    rcv_json_string(&w, "metrics");
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    reply_json(r, 200, &w);
}

static void model_metadata(serve_state *s, int mi, serve_reply *r) {
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "name");
    rcv_json_string(&w, s->models[mi].name);
    rcv_json_key(&w, "versions");
    rcv_json_begin_array(&w);
    rcv_json_string(&w, "1");
    rcv_json_end_array(&w);
    rcv_json_key(&w, "platform");
    rcv_json_string(&w, "robustcv");
    rcv_json_key(&w, "inputs");
    rcv_json_begin_array(&w);
    int in[4] = {-1, s->in_c, s->in_h, s->in_w}, img[1] = {-1}, out[2] = {-1, s->n_classes};
    tensor_meta(&w, "input", "FP32", in, 4);
    tensor_meta(&w, "image", "BYTES", img, 1);
    rcv_json_end_array(&w);
    rcv_json_key(&w, "outputs");
    rcv_json_begin_array(&w);
    tensor_meta(&w, "logits", "FP32", out, 2);
    tensor_meta(&w, "probabilities", "FP32", out, 2);
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    reply_json(r, 200, &w);
}

static void simple_bool(serve_reply *r, const char *name, const char *key) {
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_object(&w);
    if (name) {
        rcv_json_key(&w, "name");
        rcv_json_string(&w, name);
    }
    rcv_json_key(&w, key);
    rcv_json_bool(&w, 1);
    rcv_json_end_object(&w);
    reply_json(r, 200, &w);
}

static void repository_index(serve_state *s, serve_reply *r) {
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    rcv_json_begin_array(&w);
    for (int i = 0; i < s->n_models; i++) {
        rcv_json_begin_object(&w);
        rcv_json_key(&w, "name");
        rcv_json_string(&w, s->models[i].name);
        rcv_json_key(&w, "version");
        rcv_json_string(&w, "1");
        rcv_json_key(&w, "state");
        rcv_json_string(&w, "READY");
        rcv_json_end_object(&w);
    }
    rcv_json_end_array(&w);
    reply_json(r, 200, &w);
}

// --- requests ---

typedef struct {
    json_t *root;
    float *x; // (n, H, W, C)
    int n;
    rcv_image *shown; // n images as the model sees them (8-bit), for explain / attack pictures
    const char *id;
} parsed_req;

static void parsed_free(parsed_req *p) {
    if (p->shown)
        for (int i = 0; i < p->n; i++) rcv_image_free(&p->shown[i]);
    free(p->shown);
    free(p->x);
    json_decref(p->root);
    memset(p, 0, sizeof *p);
}

// Flattens `data` (numbers, or arrays nested at most 4 deep) into dst[0..want). Returns the count
// found (may exceed want: then nothing past want is written), -1 on a non-number.
static long flatten(const json_t *d, float *dst, long want, long at, int depth, char *err, size_t en) {
    if (json_is_array(d)) {
        if (depth >= 4) {
            snprintf(err, en, "\"data\" is nested deeper than the 4 dimensions of the shape");
            return -1;
        }
        size_t i;
        json_t *v;
        json_array_foreach(d, i, v) {
            at = flatten(v, dst, want, at, depth + 1, err, en);
            if (at < 0) return -1;
        }
        return at;
    }
    if (!json_is_number(d)) {
        snprintf(err, en, "\"data\" element %ld is %s, expected a number (FP32)", at,
                 json_is_string(d) ? "a string" : json_is_boolean(d) ? "a boolean" : json_is_null(d) ? "null" : "an object");
        return -1;
    }
    double v = json_number_value(d);
    if (!isfinite(v) || fabs(v) > 3.4e38) {
        snprintf(err, en, "\"data\" element %ld is %g, outside FP32", at, v);
        return -1;
    }
    if (at < want) dst[at] = (float)v;
    return at + 1;
}

// Parses an inference request body into images; on failure fills r (400) and returns -1.
static int parse_request(serve_state *s, const char *body, size_t len, int max_images, parsed_req *p, serve_reply *r) {
    memset(p, 0, sizeof *p);
    json_error_t e;
    p->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!p->root) {
        serve_reply_error(r, 400, "malformed JSON at byte %d (line %d, column %d): %s", e.position > 0 ? e.position - 1 : 0,
                          e.line, e.column, e.text);
        return -1;
    }
    json_t *id = json_object_get(p->root, "id");
    if (id && !json_is_string(id)) {
        serve_reply_error(r, 400, "\"id\" must be a string");
        return -1;
    }
    p->id = id ? json_string_value(id) : NULL;
    json_t *params = json_object_get(p->root, "parameters");
    if (params && !json_is_object(params)) { // the protocol's $parameters is an object
        serve_reply_error(r, 400, "\"parameters\" must be an object");
        return -1;
    }
    json_t *inputs = json_object_get(p->root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) != 1) {
        serve_reply_error(r, 400, "\"inputs\" must be an array of one tensor (\"input\": FP32 [N, %d, %d, %d], or "
                                  "\"image\": BYTES [N] of base64 PNG/JPEG); got %s",
                          s->in_c, s->in_h, s->in_w,
                          !inputs ? "none" : json_is_array(inputs) ? "another count of tensors" : "not an array");
        return -1;
    }
    json_t *t = json_array_get(inputs, 0);
    json_t *dt = json_object_get(t, "datatype"), *shape = json_object_get(t, "shape"), *data = json_object_get(t, "data");
    if (!json_is_object(t) || !json_is_string(json_object_get(t, "name")) || !json_is_string(dt) ||
        !json_is_array(shape) || !json_is_array(data)) {
        serve_reply_error(r, 400, "the input tensor needs \"name\" (string), \"datatype\" (string), \"shape\" (array) "
                                  "and \"data\" (array)");
        return -1;
    }
    long dims[8];
    size_t nd = json_array_size(shape);
    for (size_t i = 0; i < nd && i < 8; i++) {
        json_t *v = json_array_get(shape, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 30)) {
            serve_reply_error(r, 400, "\"shape\"[%zu] is not a non-negative integer", i);
            return -1;
        }
        dims[i] = (long)json_integer_value(v);
    }
    const char *dts = json_string_value(dt);
    size_t per = (size_t)s->in_c * s->in_h * s->in_w;
    int want_images = max_images <= MAX_TOOL_IMAGES; // explain / attack draw the image they saw
    if (!strcmp(dts, "FP32")) {
        if (nd != 4 || dims[1] != s->in_c || dims[2] != s->in_h || dims[3] != s->in_w || dims[0] < 1) {
            char got[128] = "[";
            for (size_t i = 0; i < nd && i < 8; i++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%ld", i ? ", " : "", dims[i]);
            strcat(got, nd > 8 ? ", ...]" : "]");
            serve_reply_error(r, 400, "input shape %s, expected [N, %d, %d, %d] (N >= 1; N, C, H, W)", got, s->in_c,
                              s->in_h, s->in_w);
            return -1;
        }
        if (dims[0] > max_images) {
            serve_reply_error(r, 400, "input shape has N = %ld images, at most %d per request here", dims[0], max_images);
            return -1;
        }
        p->n = (int)dims[0];
        long want = (long)(p->n * per);
        char err[256];
        // Counted before anything is allocated: the shape alone never sizes an allocation.
        long got = flatten(data, NULL, 0, 0, 0, err, sizeof err);
        if (got != want) {
            if (got >= 0) serve_reply_error(r, 400, "\"data\" holds %ld numbers, shape [%d, %d, %d, %d] needs %ld", got, p->n, s->in_c, s->in_h, s->in_w, want);
            else serve_reply_error(r, 400, "%s", err);
            return -1;
        }
        float *nchw = rcv_xmalloc((size_t)want * sizeof(float));
        flatten(data, nchw, want, 0, 0, err, sizeof err);
        p->x = rcv_xmalloc((size_t)want * sizeof(float));
        int hw = s->in_h * s->in_w;
        for (int i = 0; i < p->n; i++)
            for (int c = 0; c < s->in_c; c++)
                for (int q = 0; q < hw; q++)
                    p->x[(size_t)i * per + (size_t)q * s->in_c + c] = nchw[(size_t)i * per + (size_t)c * hw + q];
        free(nchw);
        if (want_images) {
            p->shown = rcv_xcalloc((size_t)p->n, sizeof *p->shown);
            for (int i = 0; i < p->n; i++) {
                float *xc = rcv_xmalloc(per * sizeof(float));
                for (size_t q = 0; q < per; q++) xc[q] = p->x[i * per + q] < 0 ? 0 : p->x[i * per + q] > 1 ? 1 : p->x[i * per + q];
                rcv_image_from_float(xc, s->in_w, s->in_h, s->in_c, &p->shown[i]);
                free(xc);
            }
        }
        return 0;
    }
    if (!strcmp(dts, "BYTES")) {
        size_t n = json_array_size(data);
        if (nd != 1 || (size_t)dims[0] != n || n < 1) {
            serve_reply_error(r, 400, "a BYTES input has shape [N] with N = the number of strings in \"data\" (%zu), N >= 1", n);
            return -1;
        }
        if ((long)n > max_images) {
            serve_reply_error(r, 400, "%zu images, at most %d per request here", n, max_images);
            return -1;
        }
        p->n = (int)n;
        p->x = rcv_xmalloc(n * per * sizeof(float));
        p->shown = rcv_xcalloc(n, sizeof *p->shown);
        rcv_model_cfg cfg = s->ck[0].inst[0].cfg;
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(data, i);
            if (!json_is_string(v)) {
                serve_reply_error(r, 400, "BYTES \"data\"[%zu] is not a string (expected base64 of a PNG or JPEG)", i);
                return -1;
            }
            uint8_t *raw;
            size_t rn;
            if (serve_base64_decode(json_string_value(v), json_string_length(v), &raw, &rn)) {
                serve_reply_error(r, 400, "BYTES \"data\"[%zu]: %s", i, rcv_error());
                return -1;
            }
            char name[64];
            snprintf(name, sizeof name, "image %zu", i);
            rcv_image img;
            if (serve_image_check(raw, rn, MAX_IMAGE_PIXELS)) {
                free(raw);
                serve_reply_error(r, 400, "BYTES \"data\"[%zu]: %s", i, rcv_error());
                return -1;
            }
            if (rcv_image_decode(raw, rn, name, &img)) {
                free(raw);
                serve_reply_error(r, 400, "undecodable image: %s", rcv_error());
                return -1;
            }
            free(raw);
            rcv_image_to_input(&img, &cfg, p->x + i * per, &p->shown[i]); // exactly `robustcv predict`'s path
            rcv_image_free(&img);
        }
        return 0;
    }
    serve_reply_error(r, 400, "input datatype \"%s\", expected \"FP32\" (a tensor [N, %d, %d, %d]) or \"BYTES\" "
                              "(base64 PNG/JPEG images)", dts, s->in_c, s->in_h, s->in_w);
    return -1;
}

static void softmax_row(const float *z, int k, float *p) {
    double mx = z[0], t = 0;
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < k; j++) t += exp((double)z[j] - mx);
    for (int j = 0; j < k; j++) p[j] = (float)(exp((double)z[j] - mx) / t);
}

static void begin_response(rcv_json_writer *w, serve_state *s, int mi, const parsed_req *p) {
    rcv_json_begin_object(w);
    rcv_json_key(w, "model_name");
    rcv_json_string(w, s->models[mi].name);
    rcv_json_key(w, "model_version");
    rcv_json_string(w, "1");
    if (p->id) {
        rcv_json_key(w, "id");
        rcv_json_string(w, p->id);
    }
}

static void begin_tensor(rcv_json_writer *w, const char *name, const char *dtype, int a, int b) {
    rcv_json_begin_object(w);
    rcv_json_key(w, "name");
    rcv_json_string(w, name);
    rcv_json_key(w, "datatype");
    rcv_json_string(w, dtype);
    put_shape(w, a, b);
    rcv_json_key(w, "data");
    rcv_json_begin_array(w);
}
static void end_tensor(rcv_json_writer *w) {
    rcv_json_end_array(w);
    rcv_json_end_object(w);
}

// A request waiting for the batcher: its parsed input, the job, and what the answer needs.
struct serve_pending {
    char op;          // 'i' infer, 'e' explain, 'a' attack
    int mi, want, t, steps;
    double alpha, eps;
    const char *method;
    parsed_req p;
    serve_job j;
};

void serve_pending_free(serve_pending *q) {
    if (!q) return;
    free(q->j.logits);
    free(q->j.classes);
    free(q->j.maps);
    free(q->j.adv_logits);
    free(q->j.x_adv);
    parsed_free(&q->p);
    free(q);
}

// Reserves a queue place (else 503), lets the caller suspend its connection, and queues the job:
// r->status 0 means "pending", answered by serve_finish once the job's on_done has run.
static void queue_job(serve_state *s, serve_pending *q, const serve_wait *wt, serve_reply *r) {
    if (serve_reserve(s)) {
        serve_reply_error(r, 503, "the queue is full (%d jobs waiting; --queue) or the server is stopping; retry later",
                          s->cfg.queue);
        return;
    }
    q->j.on_done = wt->resume;
    q->j.done_arg = wt->arg;
    wt->suspend(wt->arg);
    serve_enqueue(s, &q->j);
    r->status = 0;
}

static int job_failed(const serve_job *j, serve_reply *r) {
    if (!j->rc) return 0;
    serve_reply_error(r, 500, "%s", j->err);
    return 1;
}

// Which of "logits" / "probabilities" the request's optional "outputs" asks for (bit 0, bit 1).
static int requested_outputs(const json_t *root, serve_reply *r) {
    json_t *outs = json_object_get(root, "outputs");
    if (!outs) return 3;
    if (!json_is_array(outs)) {
        serve_reply_error(r, 400, "\"outputs\" must be an array of {\"name\": ...}");
        return -1;
    }
    int m = 0;
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n && !strcmp(n, "logits")) m |= 1;
        else if (n && !strcmp(n, "probabilities")) m |= 2;
        else {
            serve_reply_error(r, 400, "\"outputs\"[%zu] names \"%s\", expected \"logits\" or \"probabilities\"", i,
                              n ? n : "(no name)");
            return -1;
        }
    }
    return m ? m : 3;
}

static void infer_start(serve_state *s, serve_pending *q, const char *body, size_t len, const serve_wait *wt,
                        serve_reply *r) {
    if (parse_request(s, body, len, MAX_IMAGES, &q->p, r)) return;
    if ((q->want = requested_outputs(q->p.root, r)) < 0) return;
    q->j = (serve_job){.kind = JOB_INFER, .model = q->mi, .n = q->p.n, .x = q->p.x};
    q->j.logits = rcv_xmalloc((size_t)q->p.n * s->n_classes * sizeof(float));
    queue_job(s, q, wt, r);
}

static void infer_finish(serve_state *s, serve_pending *q, serve_reply *r) {
    const serve_job *j = &q->j;
    int k = s->n_classes, n = q->p.n;
    if (job_failed(j, r)) return;
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    begin_response(&w, s, q->mi, &q->p);
    rcv_json_key(&w, "parameters");
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "batch_size");
    rcv_json_int(&w, j->batch_size);
    rcv_json_end_object(&w);
    rcv_json_key(&w, "outputs");
    rcv_json_begin_array(&w);
    if (q->want & 1) {
        begin_tensor(&w, "logits", "FP32", n, k);
        for (size_t i = 0; i < (size_t)n * k; i++) put_float(&w, j->logits[i]);
        end_tensor(&w);
    }
    if (q->want & 2) {
        float *pr = rcv_xmalloc((size_t)k * sizeof(float));
        begin_tensor(&w, "probabilities", "FP32", n, k);
        for (int i = 0; i < n; i++) {
            softmax_row(j->logits + (size_t)i * k, k, pr);
            for (int c = 0; c < k; c++) put_float(&w, pr[c]);
        }
        end_tensor(&w);
        free(pr);
    }
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    reply_json(r, 200, &w);
}

static const char *class_name(serve_state *s, int mi, int c) {
    const serve_ckpt *ck = &s->ck[s->models[mi].member[0]];
    return ck->classes && c < ck->n_classes && ck->classes[c] ? ck->classes[c] : "";
}

static void put_png_b64(rcv_json_writer *w, const rcv_image *img) {
    uint8_t *png;
    size_t n;
    if (serve_png_encode(img, &png, &n)) { rcv_json_null(w); return; }
    char *b = serve_base64_encode(png, n);
    rcv_json_string(w, b);
    free(b);
    free(png);
}

// Top-k of a logit row: classes (by probability), probabilities, class names.
static void put_topk(rcv_json_writer *w, serve_state *s, int mi, const float *logits, int n, int t, const char *prefix) {
    int k = s->n_classes;
    int32_t *cls = rcv_xmalloc((size_t)n * t * sizeof(int32_t));
    float *pr = rcv_xmalloc((size_t)n * k * sizeof(float));
    for (int i = 0; i < n; i++) {
        softmax_row(logits + (size_t)i * k, k, pr + (size_t)i * k);
        for (int a = 0; a < t; a++) {
            int best = -1;
            for (int c = 0; c < k; c++) {
                int used = 0;
                for (int b = 0; b < a; b++) used |= cls[(size_t)i * t + b] == c;
                if (!used && (best < 0 || logits[(size_t)i * k + c] > logits[(size_t)i * k + best])) best = c;
            }
            cls[(size_t)i * t + a] = best;
        }
    }
    char name[64];
    snprintf(name, sizeof name, "%sclasses", prefix);
    begin_tensor(w, name, "INT32", n, t);
    for (int i = 0; i < n * t; i++) rcv_json_int(w, cls[i]);
    end_tensor(w);
    snprintf(name, sizeof name, "%sprobabilities", prefix);
    begin_tensor(w, name, "FP32", n, t);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < t; a++) put_float(w, pr[(size_t)i * k + cls[(size_t)i * t + a]]);
    end_tensor(w);
    snprintf(name, sizeof name, "%slabels", prefix);
    begin_tensor(w, name, "BYTES", n, t);
    for (int i = 0; i < n * t; i++) rcv_json_string(w, class_name(s, mi, cls[i]));
    end_tensor(w);
    free(cls);
    free(pr);
}

static int param_int(const json_t *root, const char *key, int def, int lo, int hi, int *out, serve_reply *r) {
    json_t *v = json_object_get(json_object_get(root, "parameters"), key);
    *out = def;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        serve_reply_error(r, 400, "parameters.%s must be an integer in [%d, %d]", key, lo, hi);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}
static int param_num(const json_t *root, const char *key, double def, double lo, double hi, double *out, serve_reply *r) {
    json_t *v = json_object_get(json_object_get(root, "parameters"), key);
    *out = def;
    if (!v) return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi) {
        serve_reply_error(r, 400, "parameters.%s must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static void explain_start(serve_state *s, serve_pending *q, const char *body, size_t len, const serve_wait *wt,
                          serve_reply *r) {
    if (parse_request(s, body, len, MAX_TOOL_IMAGES, &q->p, r)) return;
    int k = s->n_classes, kmax = k < 10 ? k : 10, n = q->p.n;
    if (param_int(q->p.root, "top_k", kmax < 5 ? kmax : 5, 1, kmax, &q->t, r) ||
        param_num(q->p.root, "alpha", 0.5, 0, 1, &q->alpha, r))
        return;
    q->j = (serve_job){.kind = JOB_EXPLAIN, .model = q->mi, .n = n, .x = q->p.x, .top_k = q->t};
    q->j.logits = rcv_xmalloc((size_t)n * k * sizeof(float));
    q->j.classes = rcv_xmalloc((size_t)n * q->t * sizeof(int32_t));
    q->j.maps = rcv_xmalloc((size_t)n * q->t * s->in_h * s->in_w * sizeof(float));
    queue_job(s, q, wt, r);
}

static void explain_finish(serve_state *s, serve_pending *q, serve_reply *r) {
    const serve_job *j = &q->j;
    int n = q->p.n, t = q->t, hw = s->in_h * s->in_w;
    if (job_failed(j, r)) return;
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    begin_response(&w, s, q->mi, &q->p);
    rcv_json_key(&w, "parameters");
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "method");
    rcv_json_string(&w, "gradcam");
    rcv_json_key(&w, "top_k");
    rcv_json_int(&w, t);
    rcv_json_end_object(&w);
    rcv_json_key(&w, "outputs");
    rcv_json_begin_array(&w);
    put_topk(&w, s, q->mi, j->logits, n, t, "");
    begin_tensor(&w, "overlays", "BYTES", n, t);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < t; a++) {
            rcv_image ov;
            rcv_cam_overlay(&q->p.shown[i], j->maps + ((size_t)i * t + a) * hw, (float)q->alpha, &ov);
            put_png_b64(&w, &ov);
            rcv_image_free(&ov);
        }
    end_tensor(&w);
    begin_tensor(&w, "images", "BYTES", n, -1);
    for (int i = 0; i < n; i++) put_png_b64(&w, &q->p.shown[i]);
    end_tensor(&w);
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    reply_json(r, 200, &w);
}

static void attack_start(serve_state *s, serve_pending *q, const char *body, size_t len, const serve_wait *wt,
                         serve_reply *r) {
    if (parse_request(s, body, len, MAX_TOOL_IMAGES, &q->p, r)) return;
    int k = s->n_classes, n = q->p.n, seed;
    json_t *mv = json_object_get(json_object_get(q->p.root, "parameters"), "method");
    const char *method = mv ? json_string_value(mv) : "fgsm";
    if (!method || (strcmp(method, "fgsm") && strcmp(method, "pgd") && strcmp(method, "autoattack"))) {
        serve_reply_error(r, 400, "parameters.method must be \"fgsm\", \"pgd\" or \"autoattack\"");
        return;
    }
    q->method = !strcmp(method, "pgd") ? "pgd" : !strcmp(method, "autoattack") ? "autoattack" : "fgsm";
    if (q->method[0] == 'a' && k < 4) { // else the batcher's job fails: a 500 for a request it can never serve
        serve_reply_error(r, 400, "parameters.method \"autoattack\" needs a model with at least 4 classes (APGD-T and "
                                  "FAB-T rank the logits), this one has %d: use \"fgsm\" or \"pgd\"", k);
        return;
    }
    if (param_num(q->p.root, "eps", 8.0 / 255, 0, 1, &q->eps, r) ||
        param_int(q->p.root, "steps", 10, 1, 200, &q->steps, r) || param_int(q->p.root, "seed", 0, 0, 1 << 30, &seed, r))
        return;
    size_t per = (size_t)s->in_c * s->in_h * s->in_w;
    // The attacks keep their images in [0, 1]: from a pixel outside it the answer would lie
    // outside the eps ball (BYTES images are in range by construction).
    for (size_t i = 0; i < (size_t)n * per; i++)
        if (!(q->p.x[i] >= 0 && q->p.x[i] <= 1)) {
            serve_reply_error(r, 400, "FP32 input image %zu holds %g, outside the pixel range [0, 1] that an attack keeps "
                                      "to", i / per, (double)q->p.x[i]);
            return;
        }
    q->j = (serve_job){.kind = JOB_ATTACK, .model = q->mi, .n = n, .x = q->p.x, .eps = (float)q->eps,
                       .steps = q->steps, .attack_pgd = q->method[0] == 'p' ? 1 : q->method[0] == 'a' ? 2 : 0, .seed = (unsigned long long)seed};
    q->j.logits = rcv_xmalloc((size_t)n * k * sizeof(float));
    q->j.adv_logits = rcv_xmalloc((size_t)n * k * sizeof(float));
    q->j.x_adv = rcv_xmalloc((size_t)n * per * sizeof(float));
    queue_job(s, q, wt, r);
}

static void attack_finish(serve_state *s, serve_pending *q, serve_reply *r) {
    const serve_job *j = &q->j;
    const float *x = q->p.x;
    int k = s->n_classes, n = q->p.n;
    double eps = q->eps;
    size_t per = (size_t)s->in_c * s->in_h * s->in_w;
    if (job_failed(j, r)) return;
    rcv_json_writer w;
    rcv_json_writer_init(&w);
    begin_response(&w, s, q->mi, &q->p);
    // A comparison, not fmax: aarch64 GCC 12's vectoriser stops with an internal compiler error
    // on an fmax reduction over floats widened to double. NaNs are skipped either way.
    double linf = 0;
    for (size_t i = 0; i < (size_t)n * per; i++) {
        double d = fabs((double)j->x_adv[i] - x[i]);
        linf = d > linf ? d : linf;
    }
    rcv_json_key(&w, "parameters");
    rcv_json_begin_object(&w);
    rcv_json_key(&w, "method");
    rcv_json_string(&w, q->method);
    rcv_json_key(&w, "eps");
    rcv_json_number(&w, eps);
    rcv_json_key(&w, "steps");
    rcv_json_int(&w, j->attack_pgd == 1 ? q->steps : j->attack_pgd == 2 ? (s->cfg.aa_n_iter > 0 ? s->cfg.aa_n_iter : 100) : 1);
    rcv_json_key(&w, "linf");
    rcv_json_number(&w, linf);
    rcv_json_end_object(&w);
    rcv_json_key(&w, "outputs");
    rcv_json_begin_array(&w);
    int t = k < 5 ? k : 5;
    put_topk(&w, s, q->mi, j->logits, n, t, "clean_");
    put_topk(&w, s, q->mi, j->adv_logits, n, t, "adversarial_");
    begin_tensor(&w, "adversarial_logits", "FP32", n, k);
    for (size_t i = 0; i < (size_t)n * k; i++) put_float(&w, j->adv_logits[i]);
    end_tensor(&w);
    float *buf = rcv_xmalloc(per * sizeof(float));
    begin_tensor(&w, "adversarial", "BYTES", n, -1);
    for (int i = 0; i < n; i++) {
        rcv_image im;
        rcv_image_from_float(j->x_adv + (size_t)i * per, s->in_w, s->in_h, s->in_c, &im);
        put_png_b64(&w, &im);
        rcv_image_free(&im);
    }
    end_tensor(&w);
    // The perturbation magnified: 0.5 + delta / (2 eps), so -eps..eps spans black..white.
    begin_tensor(&w, "perturbation", "BYTES", n, -1);
    for (int i = 0; i < n; i++) {
        for (size_t c = 0; c < per; c++) {
            double d = 0.5 + (j->x_adv[i * per + c] - x[i * per + c]) / (2 * (eps > 0 ? eps : 1));
            buf[c] = (float)(d < 0 ? 0 : d > 1 ? 1 : d);
        }
        rcv_image im;
        rcv_image_from_float(buf, s->in_w, s->in_h, s->in_c, &im);
        put_png_b64(&w, &im);
        rcv_image_free(&im);
    }
    end_tensor(&w);
    free(buf);
    rcv_json_end_array(&w);
    rcv_json_end_object(&w);
    reply_json(r, 200, &w);
}

void serve_finish(serve_state *s, serve_pending *q, serve_reply *r) {
    memset(r, 0, sizeof *r);
    if (q->op == 'i') infer_finish(s, q, r);
    else if (q->op == 'e') explain_finish(s, q, r);
    else attack_finish(s, q, r);
}

static int find_model(serve_state *s, const char *name, size_t n) {
    for (int i = 0; i < s->n_models; i++)
        if (strlen(s->models[i].name) == n && !memcmp(s->models[i].name, name, n)) return i;
    return -1;
}

static void method_not_allowed(serve_reply *r, const char *method, const char *url, const char *allow) {
    serve_reply_error(r, 405, "%s is not allowed on %s (use %s)", method, url, allow);
    r->allow = allow;
}

void serve_handle(serve_state *s, const char *method, const char *url, const char *body, size_t len, const serve_wait *wt,
                  serve_reply *r, serve_pending **pending) {
    *pending = NULL;
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    memset(r, 0, sizeof *r);
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        if (!get) { method_not_allowed(r, method, url, "GET"); return; }
        r->status = 200;
        r->type = "text/html; charset=utf-8";
        r->len = serve_page_html_len;
        r->body = rcv_xmalloc(r->len + 1);
        memcpy(r->body, serve_page_html, r->len + 1);
        return;
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) { method_not_allowed(r, method, url, "GET"); return; }
        r->status = 200;
        r->type = "text/plain; version=0.0.4; charset=utf-8";
        r->body = serve_metrics_text(s);
        r->len = strlen(r->body);
        return;
    }
    if (!strcmp(url, "/v2")) {
        if (!get) { method_not_allowed(r, method, url, "GET"); return; }
        { server_metadata(r); return; }
    }
    if (!strcmp(url, "/v2/health/live") || !strcmp(url, "/v2/health/ready")) {
        if (!get) { method_not_allowed(r, method, url, "GET"); return; }
        { simple_bool(r, NULL, strstr(url, "live") ? "live" : "ready"); return; }
    }
    if (!strcmp(url, "/v2/repository/index")) {
        if (!post) { method_not_allowed(r, method, url, "POST"); return; }
        { repository_index(s, r); return; }
    }
    const char *pre = "/v2/models/";
    if (!strncmp(url, pre, strlen(pre))) {
        const char *name = url + strlen(pre), *slash = strchr(name, '/');
        size_t nl = slash ? (size_t)(slash - name) : strlen(name);
        int mi = find_model(s, name, nl);
        if (mi < 0) { serve_reply_error(r, 404, "no model named \"%.*s\" (POST /v2/repository/index lists the models)", (int)(nl > 200 ? 200 : nl), name); return; }
        const char *rest = slash ? slash : "";
        if (!strncmp(rest, "/versions/", 10)) {
            const char *v = rest + 10, *vs = strchr(v, '/');
            size_t vl = vs ? (size_t)(vs - v) : strlen(v);
            if (vl != 1 || v[0] != '1') { serve_reply_error(r, 404, "model \"%s\" has version 1 only", s->models[mi].name); return; }
            rest = vs ? vs : "";
        }
        if (!*rest) {
            if (!get) { method_not_allowed(r, method, url, "GET"); return; }
            { model_metadata(s, mi, r); return; }
        }
        if (!strcmp(rest, "/ready")) {
            if (!get) { method_not_allowed(r, method, url, "GET"); return; }
            { simple_bool(r, s->models[mi].name, "ready"); return; }
        }
        if (!strcmp(rest, "/infer") || !strcmp(rest, "/explain") || !strcmp(rest, "/attack")) {
            if (!post) { method_not_allowed(r, method, url, "POST"); return; }
            serve_pending *q = rcv_xcalloc(1, sizeof *q);
            q->op = rest[1];
            q->mi = mi;
            if (q->op == 'i') infer_start(s, q, body, len, wt, r);
            else if (q->op == 'e') explain_start(s, q, body, len, wt, r);
            else attack_start(s, q, body, len, wt, r);
            if (r->status == 0) *pending = q; // queued: the connection is suspended until the job is done
            else serve_pending_free(q);
            return;
        }
    }
    serve_reply_error(r, 404, "no such path: %s (see docs/serve.md)", url);
}
