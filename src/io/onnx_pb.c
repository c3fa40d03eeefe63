// Protobuf wire format, the writing half, for the ONNX export (onnx.h). A field is a key
// (field_number << 3 | wire_type) as a varint, then its value: wire type 0 a varint,
// 2 a varint length and that many bytes, 5 four little-endian bytes.
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/onnx.h"

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static void reserve(rcv_pb *b, size_t n) {
    if (b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    b->p = rcv_xrealloc(b->p, cap);
    b->cap = cap;
}

static void put(rcv_pb *b, const void *p, size_t n) {
    if (!n) return;
    reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void rcv_pb_free(rcv_pb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void rcv_pb_varint(rcv_pb *b, uint64_t v) {
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, tmp, (size_t)n);
}

static void key(rcv_pb *b, int field, int wire) { rcv_pb_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }

// Negative int32/int64 values are sign-extended to 64 bits (ten bytes), as protobuf does.
void rcv_pb_int(rcv_pb *b, int field, int64_t v) {
    key(b, field, WIRE_VARINT);
    rcv_pb_varint(b, (uint64_t)v);
}

static void le32(uint8_t *d, uint32_t u) {
    for (int i = 0; i < 4; i++) d[i] = (uint8_t)(u >> (8 * i));
}

void rcv_pb_f32(rcv_pb *b, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t d[4];
    le32(d, u);
    key(b, field, WIRE_FIXED32);
    put(b, d, 4);
}

void rcv_pb_bytes(rcv_pb *b, int field, const void *p, size_t n) {
    key(b, field, WIRE_LEN);
    rcv_pb_varint(b, n);
    put(b, p, n);
}

void rcv_pb_str(rcv_pb *b, int field, const char *s) { rcv_pb_bytes(b, field, s, strlen(s)); }

void rcv_pb_msg(rcv_pb *b, int field, const rcv_pb *sub) { rcv_pb_bytes(b, field, sub->p, sub->len); }

void rcv_pb_packed_i64(rcv_pb *b, int field, const int64_t *v, int n) {
    rcv_pb tmp = {0};
    for (int i = 0; i < n; i++) rcv_pb_varint(&tmp, (uint64_t)v[i]);
    rcv_pb_msg(b, field, &tmp);
    rcv_pb_free(&tmp);
}

void rcv_pb_packed_f32(rcv_pb *b, int field, const float *v, int n) {
    key(b, field, WIRE_LEN);
    rcv_pb_varint(b, (uint64_t)n * 4);
    reserve(b, (size_t)n * 4);
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        le32(b->p + b->len, u);
        b->len += 4;
    }
}
