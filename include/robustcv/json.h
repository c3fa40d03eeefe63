// A small JSON reader (for safetensors headers and config files) and writer
// (for JSON-lines metrics and reports). The reader builds a tree; errors name
// the byte offset and what was expected. The writer appends to a growable
// buffer and inserts commas itself.
#ifndef RCV_JSON_H
#define RCV_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/buf.h"

// --- reading ---
typedef enum { RCV_JSON_NULL, RCV_JSON_BOOL, RCV_JSON_NUMBER, RCV_JSON_STRING, RCV_JSON_ARRAY, RCV_JSON_OBJECT } rcv_json_type;

typedef struct rcv_json_value {
    rcv_json_type type;
    int boolean;
    double num;       // NUMBER
    int is_int;       // NUMBER written without fraction or exponent and within int64
    int64_t i64;      // exact value when is_int
    char *str;        // STRING, decoded UTF-8, NUL-terminated (may hold \u0000: see str_len)
    size_t str_len;
    int n;            // ARRAY / OBJECT: element count
    struct rcv_json_value *items; // n values
    char **keys;      // OBJECT: n keys, in document order
} rcv_json_value;

// Parses text[0..len) (one value, surrounding whitespace allowed). 0 on success; -1 with a message
// like "JSON error at byte 17: expected ',' or '}' after an object member, found 'x'". Nesting is
// limited to 64 levels. Free with rcv_json_free even on failure.
int rcv_json_parse(const char *text, size_t len, rcv_json_value *out);
void rcv_json_free(rcv_json_value *v);
// Object member by key (first match), NULL if absent or v is not an object.
const rcv_json_value *rcv_json_get(const rcv_json_value *v, const char *key);
const char *rcv_json_type_name(rcv_json_type t); // "null", "boolean", ...

// --- writing ---
typedef struct {
    rcv_buf out; // the text so far (out.data, out.len); no limit
    int depth;
    uint8_t first[64]; // per level: no element written yet
    int after_key;
} rcv_json_writer;

void rcv_json_writer_init(rcv_json_writer *w);
void rcv_json_writer_free(rcv_json_writer *w);
void rcv_json_writer_reset(rcv_json_writer *w); // empty again, keeps the memory
void rcv_json_begin_object(rcv_json_writer *w);
void rcv_json_end_object(rcv_json_writer *w);
void rcv_json_begin_array(rcv_json_writer *w);
void rcv_json_end_array(rcv_json_writer *w);
void rcv_json_key(rcv_json_writer *w, const char *key);
// Shortest text that reads back to the same double; NaN and infinities become null (JSON has none).
void rcv_json_number(rcv_json_writer *w, double x);
void rcv_json_int(rcv_json_writer *w, int64_t x);
void rcv_json_string(rcv_json_writer *w, const char *s);
void rcv_json_bool(rcv_json_writer *w, int b);
void rcv_json_null(rcv_json_writer *w);
// Appends raw text verbatim (a pre-built value); the caller keeps it valid JSON.
void rcv_json_raw(rcv_json_writer *w, const char *text);
// The text so far (NUL-terminated, never NULL).
const char *rcv_json_text(const rcv_json_writer *w);
// Appends the text plus '\n' to a JSON-lines file (created if absent) and flushes it.
int rcv_json_append_line(const char *path, const rcv_json_writer *w);

#endif
