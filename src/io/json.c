// JSON through jansson (Debian's libjansson: maintained and fuzzed): the reader converts
// jansson's tree into rcv_json_value; the writer streams into a growable buffer and lets
// jansson escape strings and format numbers.
#include "robustcv/json.h"

#include <errno.h>
#include <jansson.h>
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

// Bracket depth outside strings, checked before jansson builds anything: a deep document is
// refused at the byte where it passes the limit (jansson's own limit is 2048).
static int check_depth(const char *s, size_t len) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') {
            if (++depth > JSON_MAX_DEPTH)
                return rcv_fail("JSON error at byte %zu: nesting deeper than %d levels", i, JSON_MAX_DEPTH);
        } else if (c == ']' || c == '}') depth--;
    }
    return 0;
}

static char *dup_n(const char *s, size_t n) {
    char *o = rcv_xmalloc(n + 1);
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

static void convert(const json_t *j, rcv_json_value *v) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        v->type = RCV_JSON_OBJECT;
        size_t n = json_object_size(j);
        v->items = rcv_xcalloc(n ? n : 1, sizeof *v->items);
        v->keys = rcv_xcalloc(n ? n : 1, sizeof *v->keys);
        const char *key;
        size_t klen;
        json_t *val;
        json_object_keylen_foreach((json_t *)j, key, klen, val) { // insertion (document) order
            v->keys[v->n] = dup_n(key, klen);
            convert(val, &v->items[v->n]);
            v->n++;
        }
        break;
    }
    case JSON_ARRAY: {
        v->type = RCV_JSON_ARRAY;
        size_t n = json_array_size(j);
        v->items = rcv_xcalloc(n ? n : 1, sizeof *v->items);
        for (size_t i = 0; i < n; i++) convert(json_array_get(j, i), &v->items[i]);
        v->n = (int)n;
        break;
    }
    case JSON_STRING:
        v->type = RCV_JSON_STRING;
        v->str_len = json_string_length(j);
        v->str = dup_n(json_string_value(j), v->str_len);
        break;
    case JSON_INTEGER:
        v->type = RCV_JSON_NUMBER;
        v->is_int = 1;
        v->i64 = (int64_t)json_integer_value(j);
        v->num = (double)v->i64;
        break;
    case JSON_REAL:
        v->type = RCV_JSON_NUMBER;
        v->num = json_real_value(j);
        break;
    case JSON_TRUE: v->type = RCV_JSON_BOOL; v->boolean = 1; break;
    case JSON_FALSE: v->type = RCV_JSON_BOOL; v->boolean = 0; break;
    default: v->type = RCV_JSON_NULL; break;
    }
}

static int error_text(const json_error_t *e, char *buf, size_t n) {
    // jansson's position counts the bytes read, the offending one included.
    int pos = e->position > 0 ? e->position - 1 : 0;
    return snprintf(buf, n, "JSON error at byte %d (line %d, column %d): %s%s", pos, e->line, e->column, e->text,
                    json_error_code(e) == json_error_duplicate_key ? " (a key given twice)" : "");
}

int rcv_json_parse(const char *text, size_t len, rcv_json_value *out) {
    memset(out, 0, sizeof *out);
    if (check_depth(text, len)) return -1;
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        char msg[400];
        error_text(&e, msg, sizeof msg);
        return rcv_fail("%s", msg);
    }
    convert(j, out);
    json_decref(j);
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

// The writer's buffer has no limit: what it holds is our own output, and rcv_buf fails only past a limit.
static void put(rcv_json_writer *w, const char *s, size_t n) { (void)rcv_buf_append(&w->out, s, n); }

static void puts_(rcv_json_writer *w, const char *s) { put(w, s, strlen(s)); }

static int put_cb(const char *s, size_t n, void *w) {
    put(w, s, n);
    return 0;
}

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
void rcv_json_writer_free(rcv_json_writer *w) { rcv_buf_free(&w->out); memset(w, 0, sizeof *w); }
void rcv_json_writer_reset(rcv_json_writer *w) {
    rcv_buf_clear(&w->out);
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

// Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, surrogates or code points past
// U+10FFFF), 0 if the bytes there are not one.
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (!len || len > n) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; // overlong
    if (c == 0xED && s[1] > 0x9F) return 0; // surrogate
    if (c == 0xF0 && s[1] < 0x90) return 0; // overlong
    if (c == 0xF4 && s[1] > 0x8F) return 0; // past U+10FFFF
    return len;
}

// jansson's escaping (control characters as \uXXXX, '"' and '\\' escaped). jansson writes only
// valid UTF-8, so a name that is not (a Latin-1 file name) has each bad byte replaced by U+FFFD.
static void put_quoted(rcv_json_writer *w, const char *s) {
    size_t n = strlen(s), ok = 0;
    while (ok < n) {
        size_t l = utf8_seq((const unsigned char *)s + ok, n - ok);
        if (!l) break;
        ok += l;
    }
    char *fixed = NULL;
    if (ok < n) {
        fixed = rcv_xmalloc(3 * n + 1);
        size_t o = 0;
        for (size_t i = 0; i < n;) {
            size_t l = utf8_seq((const unsigned char *)s + i, n - i);
            if (l) memcpy(fixed + o, s + i, l), o += l, i += l;
            else memcpy(fixed + o, "\xEF\xBF\xBD", 3), o += 3, i++;
        }
        fixed[o] = 0;
        s = fixed;
        n = o;
    }
    json_t *j = json_stringn_nocheck(s, n);
    if (!j || json_dump_callback(j, put_cb, w, JSON_ENCODE_ANY)) {
        fprintf(stderr, "robustcv: out of memory encoding JSON\n");
        abort();
    }
    json_decref(j);
    free(fixed);
}

void rcv_json_key(rcv_json_writer *w, const char *key) {
    before_value(w);
    put_quoted(w, key);
    put(w, ":", 1);
    w->after_key = 1;
}

// The shortest of jansson's %.{6..17}g forms that reads back to x. jansson marks an integral
// real with ".0"; that suffix is dropped (Python reads "3" and "3.0" as equal numbers).
void rcv_json_number(rcv_json_writer *w, double x) {
    before_value(w);
    if (!isfinite(x)) { puts_(w, "null"); return; }
    json_t *j = json_real(x);
    char b[48];
    size_t n = 0;
    for (int prec = 6; prec <= 17; prec++) {
        n = json_dumpb(j, b, sizeof b - 1, JSON_ENCODE_ANY | JSON_REAL_PRECISION(prec));
        if (n == 0 || n >= sizeof b - 1) { fprintf(stderr, "robustcv: cannot encode %g as JSON\n", x); abort(); };
        b[n] = 0;
        if (strtod(b, NULL) == x) break;
    }
    json_decref(j);
    if (n > 2 && !strcmp(b + n - 2, ".0")) b[n - 2] = 0;
    puts_(w, b);
}

void rcv_json_int(rcv_json_writer *w, int64_t x) {
    before_value(w);
    json_t *j = json_integer((json_int_t)x);
    json_dump_callback(j, put_cb, w, JSON_ENCODE_ANY);
    json_decref(j);
}

void rcv_json_string(rcv_json_writer *w, const char *s) {
    before_value(w);
    put_quoted(w, s ? s : "");
}

void rcv_json_bool(rcv_json_writer *w, int b) { before_value(w); puts_(w, b ? "true" : "false"); }
void rcv_json_null(rcv_json_writer *w) { before_value(w); puts_(w, "null"); }
void rcv_json_raw(rcv_json_writer *w, const char *text) { before_value(w); puts_(w, text); }

const char *rcv_json_text(const rcv_json_writer *w) { return w->out.data ? w->out.data : ""; }

int rcv_json_append_line(const char *path, const rcv_json_writer *w) {
    size_t n = w->out.len;
    char *line = rcv_xmalloc(n + 1);
    memcpy(line, rcv_json_text(w), n);
    line[n] = '\n';
    int rc = rcv_file_append_atomic(path, line, n + 1);
    free(line);
    return rc;
}
