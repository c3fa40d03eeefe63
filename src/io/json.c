// JSON reader (recursive descent into a tree) and writer (append-only buffer).
#include "robustcv/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"

#define JSON_MAX_DEPTH 64

const char *rcv_json_type_name(rcv_json_type t) {
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (t >= RCV_JSON_NULL && t <= RCV_JSON_OBJECT) ? names[t] : "?";
}

// --- reading ---

typedef struct {
    const char *s;
    size_t len, pos;
} json_parser;

static void describe(const json_parser *p, char *out, size_t n) {
    if (p->pos >= p->len) snprintf(out, n, "the end of the text");
    else {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c >= 0x20 && c < 0x7f) snprintf(out, n, "'%c'", c);
        else snprintf(out, n, "byte 0x%02x", c);
    }
}

static int expected(const json_parser *p, const char *what) {
    char found[32];
    describe(p, found, sizeof found);
    return rcv_fail("JSON error at byte %zu: expected %s, found %s", p->pos, what, found);
}

static void skip_ws(json_parser *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->pos++;
        else break;
    }
}

static int hex4(json_parser *p, unsigned *out) {
    if (p->len - p->pos < 4) return expected(p, "4 hex digits after \\u");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
        else return expected(p, "a hex digit in \\u escape");
        v = v * 16 + d;
        p->pos++;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// At the opening quote. Decoded text is never longer than the source.
static int parse_string(json_parser *p, char **out, size_t *out_len) {
    size_t start = ++p->pos;
    size_t end = start;
    while (end < p->len && p->s[end] != '"') end += (p->s[end] == '\\') ? 2 : 1;
    if (end >= p->len) {
        p->pos = p->len;
        return expected(p, "a closing '\"'");
    }
    char *o = rcv_xmalloc(end - start + 1);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c < 0x20) { free(o); return expected(p, "no raw control characters in a string"); }
        if (c != '\\') { o[n++] = (char)c; p->pos++; continue; }
        p->pos++;
        char e = p->s[p->pos++];
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (hex4(p, &cp)) { free(o); return -1; }
            if (cp >= 0xD800 && cp < 0xDC00 && p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                size_t save = p->pos;
                p->pos += 2;
                unsigned lo;
                if (hex4(p, &lo)) { free(o); return -1; }
                if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else p->pos = save;
            }
            n += put_utf8(o + n, cp); // a \uXXXX (6 bytes) never decodes to more than 3, a pair (12) to 4
            break;
        }
        default:
            p->pos--;
            free(o);
            return expected(p, "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        }
    }
    p->pos = end + 1;
    o[n] = 0;
    *out = o;
    *out_len = n;
    return 0;
}

static int parse_number(json_parser *p, rcv_json_value *v) {
    size_t start = p->pos;
    int is_int = 1;
    if (p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len || !(p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return expected(p, "a digit");
    if (p->s[p->pos] == '0') p->pos++;
    else while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '.') {
        is_int = 0;
        p->pos++;
        if (p->pos >= p->len || !(p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return expected(p, "a digit after '.'");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        is_int = 0;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || !(p->s[p->pos] >= '0' && p->s[p->pos] <= '9')) return expected(p, "a digit in the exponent");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    }
    char tmp[64];
    size_t n = p->pos - start;
    char *buf = n < sizeof tmp ? tmp : rcv_xmalloc(n + 1);
    memcpy(buf, p->s + start, n);
    buf[n] = 0;
    v->type = RCV_JSON_NUMBER;
    v->num = strtod(buf, NULL);
    if (is_int) {
        errno = 0;
        long long x = strtoll(buf, NULL, 10);
        if (errno == 0) { v->is_int = 1; v->i64 = x; }
    }
    if (buf != tmp) free(buf);
    return 0;
}

static int match_word(json_parser *p, const char *w) {
    size_t n = strlen(w);
    if (p->len - p->pos >= n && !memcmp(p->s + p->pos, w, n)) { p->pos += n; return 1; }
    return 0;
}

static int parse_value(json_parser *p, rcv_json_value *v, int depth);

static int parse_array(json_parser *p, rcv_json_value *v, int depth) {
    v->type = RCV_JSON_ARRAY;
    p->pos++;
    int cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; return 0; }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? 2 * cap : 4;
            v->items = rcv_xrealloc(v->items, (size_t)cap * sizeof *v->items);
        }
        rcv_json_value *it = &v->items[v->n++];
        memset(it, 0, sizeof *it);
        if (parse_value(p, it, depth + 1)) return -1;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == ']') { p->pos++; return 0; }
        return expected(p, "',' or ']' after an array element");
    }
}

static int parse_object(json_parser *p, rcv_json_value *v, int depth) {
    v->type = RCV_JSON_OBJECT;
    p->pos++;
    int cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; return 0; }
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') return expected(p, "a '\"' starting an object key");
        if (v->n == cap) {
            cap = cap ? 2 * cap : 8;
            v->items = rcv_xrealloc(v->items, (size_t)cap * sizeof *v->items);
            v->keys = rcv_xrealloc(v->keys, (size_t)cap * sizeof *v->keys);
        }
        int k = v->n++;
        memset(&v->items[k], 0, sizeof v->items[k]);
        v->keys[k] = NULL;
        size_t klen;
        if (parse_string(p, &v->keys[k], &klen)) return -1;
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != ':') return expected(p, "':' after an object key");
        p->pos++;
        if (parse_value(p, &v->items[k], depth + 1)) return -1;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
        if (p->pos < p->len && p->s[p->pos] == '}') { p->pos++; return 0; }
        return expected(p, "',' or '}' after an object member");
    }
}

static int parse_value(json_parser *p, rcv_json_value *v, int depth) {
    if (depth > JSON_MAX_DEPTH) return rcv_fail("JSON error at byte %zu: nesting deeper than %d levels", p->pos, JSON_MAX_DEPTH);
    skip_ws(p);
    if (p->pos >= p->len) return expected(p, "a value");
    char c = p->s[p->pos];
    if (c == '{') return parse_object(p, v, depth);
    if (c == '[') return parse_array(p, v, depth);
    if (c == '"') {
        v->type = RCV_JSON_STRING;
        return parse_string(p, &v->str, &v->str_len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    if (match_word(p, "true")) { v->type = RCV_JSON_BOOL; v->boolean = 1; return 0; }
    if (match_word(p, "false")) { v->type = RCV_JSON_BOOL; v->boolean = 0; return 0; }
    if (match_word(p, "null")) { v->type = RCV_JSON_NULL; return 0; }
    return expected(p, "a value (object, array, string, number, true, false or null)");
}

int rcv_json_parse(const char *text, size_t len, rcv_json_value *out) {
    memset(out, 0, sizeof *out);
    json_parser p = {text, len, 0};
    if (parse_value(&p, out, 0)) return -1;
    skip_ws(&p);
    if (p.pos != len) return expected(&p, "the end of the text after the value");
    return 0;
}

void rcv_json_free(rcv_json_value *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        rcv_json_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const rcv_json_value *rcv_json_get(const rcv_json_value *v, const char *key) {
    if (!v || v->type != RCV_JSON_OBJECT) return NULL;
    for (int i = 0; i < v->n; i++)
        if (v->keys[i] && !strcmp(v->keys[i], key)) return &v->items[i];
    return NULL;
}

// --- writing ---

static void put(rcv_json_writer *w, const char *s, size_t n) {
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n + 1) cap *= 2;
        w->buf = rcv_xrealloc(w->buf, cap);
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void puts_(rcv_json_writer *w, const char *s) { put(w, s, strlen(s)); }

// Called before every value: a comma between siblings, none after a key.
static void before_value(rcv_json_writer *w) {
    if (w->after_key) { w->after_key = 0; return; }
    if (w->depth > 0) {
        int d = w->depth < 64 ? w->depth : 63;
        if (!w->first[d]) put(w, ",", 1);
        w->first[d] = 0;
    }
}

void rcv_json_writer_init(rcv_json_writer *w) { memset(w, 0, sizeof *w); }
void rcv_json_writer_free(rcv_json_writer *w) { free(w->buf); memset(w, 0, sizeof *w); }
void rcv_json_writer_reset(rcv_json_writer *w) {
    w->len = 0;
    if (w->buf) w->buf[0] = 0;
    w->depth = 0;
    w->after_key = 0;
}

static void open_(rcv_json_writer *w, const char *c) {
    before_value(w);
    puts_(w, c);
    w->depth++;
    if (w->depth < 64) w->first[w->depth] = 1;
}
static void close_(rcv_json_writer *w, const char *c) {
    puts_(w, c);
    if (w->depth > 0) w->depth--;
}

void rcv_json_begin_object(rcv_json_writer *w) { open_(w, "{"); }
void rcv_json_end_object(rcv_json_writer *w) { close_(w, "}"); }
void rcv_json_begin_array(rcv_json_writer *w) { open_(w, "["); }
void rcv_json_end_array(rcv_json_writer *w) { close_(w, "]"); }

static void put_quoted(rcv_json_writer *w, const char *s) {
    put(w, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"': puts_(w, "\\\""); break;
        case '\\': puts_(w, "\\\\"); break;
        case '\n': puts_(w, "\\n"); break;
        case '\r': puts_(w, "\\r"); break;
        case '\t': puts_(w, "\\t"); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                puts_(w, esc);
            } else put(w, (const char *)c, 1);
        }
    }
    put(w, "\"", 1);
}

void rcv_json_key(rcv_json_writer *w, const char *key) {
    before_value(w);
    put_quoted(w, key);
    put(w, ":", 1);
    w->after_key = 1;
}

void rcv_json_number(rcv_json_writer *w, double x) {
    before_value(w);
    if (!isfinite(x)) { puts_(w, "null"); return; }
    char b[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, x);
        if (strtod(b, NULL) == x) break;
    }
    puts_(w, b);
}

void rcv_json_int(rcv_json_writer *w, int64_t x) {
    before_value(w);
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)x);
    puts_(w, b);
}

void rcv_json_string(rcv_json_writer *w, const char *s) {
    before_value(w);
    put_quoted(w, s ? s : "");
}

void rcv_json_bool(rcv_json_writer *w, int b) { before_value(w); puts_(w, b ? "true" : "false"); }
void rcv_json_null(rcv_json_writer *w) { before_value(w); puts_(w, "null"); }
void rcv_json_raw(rcv_json_writer *w, const char *text) { before_value(w); puts_(w, text); }

const char *rcv_json_text(const rcv_json_writer *w) { return w->buf ? w->buf : ""; }

int rcv_json_append_line(const char *path, const rcv_json_writer *w) {
    size_t n = w->len;
    char *line = rcv_xmalloc(n + 1);
    memcpy(line, rcv_json_text(w), n);
    line[n] = '\n';
    int rc = rcv_file_append_atomic(path, line, n + 1);
    free(line);
    return rc;
}
