// JSON reader (rcv_json_parse, the public API; whichever implementation is behind it). When a text
// parses, the tree is written back with the JSON writer and parsed again: both trees must agree.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzutil.h"
#include "robustcv/json.h"

static void write_value(rcv_json_writer *w, const rcv_json_value *v) {
    switch (v->type) {
    case RCV_JSON_NULL: rcv_json_null(w); break;
    case RCV_JSON_BOOL: rcv_json_bool(w, v->boolean); break;
    case RCV_JSON_NUMBER:
        if (v->is_int) rcv_json_int(w, v->i64);
        else rcv_json_number(w, v->num);
        break;
    case RCV_JSON_STRING: rcv_json_string(w, v->str); break;
    case RCV_JSON_ARRAY:
        rcv_json_begin_array(w);
        for (int i = 0; i < v->n; i++) write_value(w, &v->items[i]);
        rcv_json_end_array(w);
        break;
    case RCV_JSON_OBJECT:
        rcv_json_begin_object(w);
        for (int i = 0; i < v->n; i++) {
            rcv_json_key(w, v->keys[i]);
            write_value(w, &v->items[i]);
        }
        rcv_json_end_object(w);
        break;
    }
}

// Same tree? Strings compare up to an embedded NUL (the writer takes C strings); numbers that are
// not finite were written as null.
static int same(const rcv_json_value *a, const rcv_json_value *b) {
    if (a->type == RCV_JSON_NUMBER && !isfinite(a->num)) return b->type == RCV_JSON_NULL;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case RCV_JSON_NULL: return 1;
    case RCV_JSON_BOOL: return !a->boolean == !b->boolean;
    case RCV_JSON_NUMBER: return a->is_int && b->is_int ? a->i64 == b->i64 : a->num == b->num;
    case RCV_JSON_STRING: return !strcmp(a->str, b->str);
    case RCV_JSON_ARRAY:
    case RCV_JSON_OBJECT:
        if (a->n != b->n) return 0;
        for (int i = 0; i < a->n; i++) {
            if (a->type == RCV_JSON_OBJECT && strcmp(a->keys[i], b->keys[i])) return 0;
            if (!same(&a->items[i], &b->items[i])) return 0;
        }
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rcv_json_value v;
    memset(&v, 0, sizeof v);
    if (rcv_json_parse((const char *)data, size, &v) == 0) {
        if (v.type == RCV_JSON_OBJECT && v.n > 0) (void)rcv_json_get(&v, v.keys[v.n - 1]);
        rcv_json_writer w;
        rcv_json_writer_init(&w);
        write_value(&w, &v);
        rcv_json_value back;
        memset(&back, 0, sizeof back);
        const char *t = rcv_json_text(&w);
        if (rcv_json_parse(t, strlen(t), &back) || !same(&v, &back)) {
            fprintf(stderr, "JSON round trip differs: wrote %s\n", t);
            abort();
        }
        rcv_json_free(&back);
        rcv_json_writer_free(&w);
    }
    rcv_json_free(&v);
    return 0;
}
