// robustcv serve's request handling without sockets: serve_handle (routing, the Open Inference
// Protocol v2 JSON of infer / explain / attack, base64 + PNG/JPEG decoding), the batcher thread
// that runs the jobs, and serve_finish, as src/serve/http.c drives them for one HTTP request.
//
// Input: a first line "METHOD URL" (split at the first space; no space: the whole line is the
// method, the URL is empty), then the body (every byte after the first "\n"; none without one).
// Served: two 3x8x8, 4-class smallcnn checkpoints with random weights, "a" and "b", written once
// to the scratch directory and loaded by serve_load_ckpt as `robustcv serve --ensemble` loads
// them, plus "ensemble"; and, by a second server that gets the requests naming model "c" (the
// server takes one input shape and class count), a 1x4x4, 3-class "c". max-batch 4 (instances for
// 1 and 4 images); AutoAttack cut to 3 iterations and 20 Square queries so that inputs stay fast.
//
// The oracle, on every answer (a violation aborts, which libFuzzer records as a crash):
// - status 200, 400, 404 or 405 (500 = a job failed on valid models; 503 = the idle queue full);
// - the body is r->len bytes, NUL-terminated, no NUL inside; the page at / is page.html; the
//   Prometheus text has a finite number ending each sample line; everything else parses as JSON;
// - 4xx: a JSON object with a non-empty "error" string; 405 names an Allow that excludes the method;
// - 200 infer: model_name is the URL's model, every output [n, K] with n x K numbers;
//   probabilities in [0, 1], rows summing to 1, equal to softmax(logits) when both are asked for;
// - 200 explain: top-k classes distinct and in range with non-increasing probabilities, every
//   overlay and image a base64 PNG that decodes to the model's size;
// - 200 attack: the reported L-inf distance <= eps, adversarial images and the perturbation PNGs of
//   the model's size;
// - 200 model metadata and readiness: the URL's model's name.
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/error.h"
#include "robustcv/image.h"
#include "robustcv/models.h"
#include "robustcv/train.h"
#include "serve/serve.h"

#define MAXK 4
static const char *names[MAXK] = {"cat", "caf\xc3\xa9", "dog", "owl"}; // class names (UTF-8)

typedef struct {
    serve_state s;
    int ch, side, k;
} server;
static server SV[2]; // "a", "b", "ensemble"; "c"
static server *cur;  // the one answering this input
static int ready;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int resumed;
static const char *cur_method, *cur_url; // for the failure message

static void w_suspend(void *arg) { (void)arg; }
static void w_resume(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    resumed = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void shutdown_servers(void) {
    for (int i = 0; i < 2; i++) {
        serve_batcher_stop(&SV[i].s);
        serve_free_models(&SV[i].s);
    }
}

static void start_server(server *sv, int ch, int side, int k, const char *const *models, int n_models, int ensemble) {
    sv->ch = ch, sv->side = side, sv->k = k;
    serve_cfg *c = &sv->s.cfg;
    c->host = "127.0.0.1";
    c->max_batch = 4, c->max_delay_ms = 0, c->queue = 4, c->http_threads = 1, c->threads = 1;
    c->max_request = 1 << 20;
    c->backend = RCV_BACKEND_CPU;
    c->aa_n_iter = 3, c->aa_n_queries = 20;
    for (int i = 0; i < n_models; i++) {
        rcv_model m;
        rcv_model_cfg mc;
        rcv_model_cfg_defaults(&mc);
        mc.in_c = ch, mc.in_h = mc.in_w = side, mc.n_classes = k, mc.seed = (uint64_t)(i + 1);
        rcv_ckpt_info info = {.classes = (char **)names, .n_classes = k};
        char file[64];
        snprintf(file, sizeof file, "%s.safetensors", models[i]);
        const char *p = fuzz_write(file, "", 0);
        if (rcv_model_build(&m, "smallcnn", &mc) || rcv_ckpt_save(p, &m, NULL, &info) || serve_load_ckpt(&sv->s, p)) {
            fprintf(stderr, "fuzz_serve: %s\n", rcv_error());
            abort();
        }
        rcv_model_free(&m);
    }
    if (ensemble) serve_add_ensemble(&sv->s);
    if (serve_batcher_start(&sv->s)) abort();
}

static void start_servers(void) {
    serve_metrics_init();
    start_server(&SV[0], 3, 8, 4, (const char *const[]){"a", "b"}, 2, 1);
    start_server(&SV[1], 1, 4, 3, (const char *const[]){"c"}, 1, 0);
    atexit(shutdown_servers);
    ready = 1;
}

static const serve_reply *cur_reply;
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_serve: %s %s -> %d: ", cur_method, cur_url, cur_reply ? cur_reply->status : 0);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cur_reply && cur_reply->body) fprintf(stderr, "\nbody: %.2000s\n", cur_reply->body);
    abort();
}

// The output tensor `name` of a response: its data, with shape [n, cols] (cols < 0: shape [n]).
static json_t *output(json_t *root, const char *name, int n, int cols) {
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(root, "outputs"), i, o) {
        if (!json_is_string(json_object_get(o, "name")) || strcmp(json_string_value(json_object_get(o, "name")), name)) continue;
        json_t *shape = json_object_get(o, "shape"), *data = json_object_get(o, "data");
        size_t nd = cols < 0 ? 1 : 2;
        if (!json_is_array(shape) || json_array_size(shape) != nd || json_integer_value(json_array_get(shape, 0)) != n ||
            (cols >= 0 && json_integer_value(json_array_get(shape, 1)) != cols))
            fail("output %s: shape is not [%d, %d] (-1: [%d])", name, n, cols, n);
        if (!json_is_array(data) || json_array_size(data) != (size_t)n * (cols < 0 ? 1 : cols))
            fail("output %s: data is not %d x %d values", name, n, cols < 0 ? 1 : cols);
        return data;
    }
    fail("no output named %s", name);
}

// A float written by put_float: a number, or null for a non-finite one.
static double num(json_t *v, const char *what) {
    if (json_is_null(v)) return NAN;
    if (!json_is_number(v)) fail("%s: not a number or null", what);
    return json_number_value(v);
}

static void check_png(json_t *v, const char *what) {
    uint8_t *raw;
    size_t n;
    rcv_image img;
    if (!json_is_string(v) || serve_base64_decode(json_string_value(v), json_string_length(v), &raw, &n))
        fail("%s: not a base64 string", what);
    if (n < 8 || memcmp(raw, "\x89PNG\r\n\x1a\n", 8) || rcv_image_decode(raw, n, what, &img)) fail("%s: not a PNG", what);
    free(raw);
    if (img.w != cur->side || img.h != cur->side)
        fail("%s: %dx%d, expected %dx%d", what, img.w, img.h, cur->side, cur->side);
    rcv_image_free(&img);
}

// n of the answer: the first dimension of its first output.
static int answer_n(json_t *root) {
    json_t *o = json_array_get(json_object_get(root, "outputs"), 0);
    json_int_t n = json_integer_value(json_array_get(json_object_get(o, "shape"), 0));
    if (n < 1 || n > 1024) fail("first output's n = %lld", (long long)n);
    return (int)n;
}

// Top-k tensors written by put_topk with this prefix: classes distinct, in [0, k); probabilities
// in [0, 1] and non-increasing; labels the checkpoint's names.
static void check_topk(json_t *root, const char *prefix, int n, int t) {
    int K = cur->k;
    char nm[64];
    snprintf(nm, sizeof nm, "%sclasses", prefix);
    json_t *cls = output(root, nm, n, t);
    snprintf(nm, sizeof nm, "%sprobabilities", prefix);
    json_t *pr = output(root, nm, n, t);
    snprintf(nm, sizeof nm, "%slabels", prefix);
    json_t *lab = output(root, nm, n, t);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < t; a++) {
            json_int_t c = json_integer_value(json_array_get(cls, (size_t)i * t + a));
            if (!json_is_integer(json_array_get(cls, (size_t)i * t + a)) || c < 0 || c >= K) fail("%sclasses: %lld", prefix, (long long)c);
            for (int b = 0; b < a; b++)
                if (json_integer_value(json_array_get(cls, (size_t)i * t + b)) == c) fail("%sclasses: %lld twice", prefix, (long long)c);
            const char *l = json_string_value(json_array_get(lab, (size_t)i * t + a));
            if (!l || strcmp(l, names[c])) fail("%slabels[%d]: not class %lld's name", prefix, i * t + a, (long long)c);
            double p = num(json_array_get(pr, (size_t)i * t + a), "probability");
            double prev = a ? num(json_array_get(pr, (size_t)i * t + a - 1), "probability") : 1;
            if (!isnan(p) && (p < 0 || p > 1 + 1e-6 || (!isnan(prev) && p > prev * (1 + 1e-6) + 1e-12)))
                fail("%sprobabilities: %g after %g", prefix, p, prev);
        }
}

static void check_infer(json_t *root, const char *model) {
    int K = cur->k;
    const char *mn = json_string_value(json_object_get(root, "model_name"));
    if (!mn || strcmp(mn, model)) fail("model_name %s, expected %s", mn ? mn : "(none)", model);
    int n = answer_n(root), has_l = 0, has_p = 0;
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(root, "outputs"), i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        has_l |= name && !strcmp(name, "logits");
        has_p |= name && !strcmp(name, "probabilities");
    }
    if (!has_l && !has_p) fail("neither logits nor probabilities");
    json_t *lg = has_l ? output(root, "logits", n, K) : NULL, *pr = has_p ? output(root, "probabilities", n, K) : NULL;
    for (int r = 0; r < n; r++) {
        double z[MAXK], p[MAXK], sum = 0, mx = -INFINITY, ez = 0;
        int zfin = 1, pfin = 1;
        for (int c = 0; c < K; c++) {
            z[c] = lg ? num(json_array_get(lg, (size_t)r * K + c), "logit") : 0;
            p[c] = pr ? num(json_array_get(pr, (size_t)r * K + c), "probability") : 0;
            zfin &= isfinite(z[c]);
            pfin &= isfinite(p[c]);
            sum += p[c];
            mx = fmax(mx, z[c]);
        }
        // A non-finite logit (inputs near FLT_MAX overflow the model) is written as null; its row's
        // probabilities are then not checked. Finite logits must give finite probabilities.
        if (lg && pr && zfin && !pfin) fail("row %d: finite logits, a null probability", r);
        if (pr && pfin && (fabs(sum - 1) > 1e-5)) fail("probabilities of row %d sum to %.9g", r, sum);
        if (pr && pfin)
            for (int c = 0; c < K; c++)
                if (p[c] < 0 || p[c] > 1) fail("probability %.9g", p[c]);
        if (!lg || !pr || !zfin) continue;
        for (int c = 0; c < K; c++) ez += exp(z[c] - mx);
        for (int c = 0; c < K; c++)
            if (fabs(p[c] - exp(z[c] - mx) / ez) > 1e-6 + 1e-5 * p[c])
                fail("probabilities[%d][%d] %.9g, softmax of the logits gives %.9g", r, c, p[c], exp(z[c] - mx) / ez);
    }
}

static void check_explain(json_t *root) {
    int K = cur->k;
    int n = answer_n(root);
    json_int_t t = json_integer_value(json_object_get(json_object_get(root, "parameters"), "top_k"));
    if (t < 1 || t > K) fail("top_k %lld", (long long)t);
    check_topk(root, "", n, (int)t);
    json_t *ov = output(root, "overlays", n, (int)t), *im = output(root, "images", n, -1);
    for (size_t i = 0; i < json_array_size(ov); i++) check_png(json_array_get(ov, i), "overlay");
    for (size_t i = 0; i < json_array_size(im); i++) check_png(json_array_get(im, i), "image");
}

static void check_attack(json_t *root) {
    int K = cur->k;
    int n = answer_n(root);
    json_t *par = json_object_get(root, "parameters");
    double eps = json_number_value(json_object_get(par, "eps")), linf = json_number_value(json_object_get(par, "linf"));
    if (!json_is_number(json_object_get(par, "eps")) || !json_is_number(json_object_get(par, "linf")) || eps < 0 || eps > 1)
        fail("parameters.eps / linf missing or out of range");
    if (linf > eps * (1 + 1e-6) + 1e-7) fail("the adversarial images are %.9g from the inputs, over eps %.9g", linf, eps);
    check_topk(root, "clean_", n, K < 5 ? K : 5);
    check_topk(root, "adversarial_", n, K < 5 ? K : 5);
    output(root, "adversarial_logits", n, K);
    json_t *adv = output(root, "adversarial", n, -1), *pert = output(root, "perturbation", n, -1);
    for (int i = 0; i < n; i++) {
        check_png(json_array_get(adv, (size_t)i), "adversarial");
        check_png(json_array_get(pert, (size_t)i), "perturbation");
    }
}

// The model named in /v2/models/NAME[/...], or NULL.
static void url_model(const char *url, char *out, size_t n) {
    const char *pre = "/v2/models/";
    out[0] = 0;
    if (strncmp(url, pre, strlen(pre))) return;
    const char *name = url + strlen(pre);
    snprintf(out, n, "%.*s", (int)strcspn(name, "/"), name);
}

static void check_reply(const char *method, const char *url, const serve_reply *r) {
    cur_reply = r;
    if (r->status != 200 && r->status != 400 && r->status != 404 && r->status != 405) fail("unexpected status");
    if (!r->body || strlen(r->body) != r->len) fail("body is not %zu bytes with one NUL after them", r->len);
    if (r->status == 200 && r->type && !strncmp(r->type, "text/html", 9)) {
        if (r->len != serve_page_html_len || memcmp(r->body, serve_page_html, r->len)) fail("/ is not page.html");
        return;
    }
    if (r->status == 200 && r->type && !strncmp(r->type, "text/plain", 10)) { // Prometheus text
        for (const char *l = r->body; *l;) {
            size_t len = strcspn(l, "\n");
            if (len && l[0] != '#') {
                const char *sp = l + len;
                while (sp > l && sp[-1] != ' ') sp--;
                char *end;
                double v = strtod(sp, &end);
                if (sp == l || end != l + len || !isfinite(v)) fail("metrics line without a finite value: %.*s", (int)len, l);
            }
            l += len + (l[len] == '\n');
        }
        return;
    }
    if (!r->type || strcmp(r->type, "application/json")) fail("content type %s", r->type ? r->type : "(none)");
    json_error_t e;
    json_t *root = json_loadb(r->body, r->len, 0, &e);
    if (!root) fail("the body is not JSON: %s at byte %d", e.text, e.position);
    if (r->status != 200) {
        const char *msg = json_string_value(json_object_get(root, "error"));
        if (!json_is_object(root) || !msg || !*msg) fail("a %d without an \"error\" message", r->status);
        if (r->status == 405) {
            int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
            if (!r->allow || (!strcmp(r->allow, "GET") && get) || (!strcmp(r->allow, "POST") && !strcmp(method, "POST")))
                fail("405 with Allow: %s", r->allow ? r->allow : "(none)");
        }
    } else {
        char model[256];
        url_model(url, model, sizeof model);
        size_t ul = strlen(url);
        if (ul >= 6 && !strcmp(url + ul - 6, "/infer")) check_infer(root, model);
        else if (ul >= 8 && !strcmp(url + ul - 8, "/explain")) check_explain(root);
        else if (ul >= 7 && !strcmp(url + ul - 7, "/attack")) check_attack(root);
        else if (!json_is_object(root) && !json_is_array(root)) fail("not an object or array");
        else if (model[0]) { // model metadata and readiness name the URL's model
            const char *nm = json_string_value(json_object_get(root, "name"));
            if (!nm || strcmp(nm, model)) fail("name %s, expected %s", nm ? nm : "(none)", model);
        }
    }
    json_decref(root);
    cur_reply = NULL;
}

// libFuzzer starts the servers before its first input (their start-up stays out of that input's
// time); the replay program calls only LLVMFuzzerTestOneInput, which starts them on first use.
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    start_servers();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) start_servers();
    size_t line = 0;
    while (line < size && data[line] != '\n') line++;
    char *head = fuzz_strndup(data, line), *url = strchr(head, ' ');
    if (url) *url++ = 0;
    else url = head + strlen(head);
    // The body without a terminating NUL (the server gets a length), so reading past it is caught.
    size_t blen = line < size ? size - line - 1 : 0;
    char *body = malloc(blen ? blen : 1);
    if (blen) memcpy(body, data + line + 1, blen);
    cur_method = head, cur_url = url;
    serve_reply r;
    serve_pending *pend = NULL;
    serve_wait wt = {w_suspend, w_resume, NULL};
    char model[256];
    url_model(url, model, sizeof model);
    cur = !strcmp(model, "c") ? &SV[1] : &SV[0];
    serve_state *S = &cur->s;
    resumed = 0;
    double t0 = serve_now();
    serve_handle(S, head, url, blen ? body : "", blen, &wt, &r, &pend);
    if (pend) { // as http.c: wait for the batcher, then write the answer
        pthread_mutex_lock(&mu);
        while (!resumed) pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
        serve_finish(S, pend, &r);
        serve_pending_free(pend);
    }
    serve_metrics_request(r.status, serve_now() - t0);
    check_reply(head, url, &r);
    free(r.body);
    free(body);
    free(head);
    return 0;
}
