// safetensors reader (whole file in memory, every field validated) and atomic writer.
#include "robustcv/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/json.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

// The Rust reference implementation refuses headers above 100 MB; so do we.
#define ST_MAX_HEADER (100u << 20)

static const char *dt_names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL"};
static const size_t dt_sizes[] = {4, 2, 2, 8, 8, 4, 1, 1};
#define N_DT ((int)(sizeof dt_names / sizeof dt_names[0]))

const char *rcv_dtype_name(rcv_dtype dt) { return (dt >= 0 && (int)dt < N_DT) ? dt_names[dt] : "?"; }
size_t rcv_dtype_size(rcv_dtype dt) { return (dt >= 0 && (int)dt < N_DT) ? dt_sizes[dt] : 0; }

static int dtype_parse(const char *s, rcv_dtype *dt) {
    for (int i = 0; i < N_DT; i++)
        if (!strcmp(s, dt_names[i])) { *dt = (rcv_dtype)i; return 0; }
    return -1;
}

// "[64, 3, 7, 7]" (PyTorch's spelling of a shape).
static void shape_str(char *b, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(b, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(b + k, n - k, "]");
}

// --- reading ---

void rcv_st_close(rcv_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    for (int i = 0; i < st->n_meta; i++) { free(st->meta_key[i]); free(st->meta_val[i]); }
    free(st->t);
    free(st->meta_key);
    free(st->meta_val);
    free(st->file);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int cmp_begin(const void *a, const void *b) {
    const rcv_st_tensor *x = *(const rcv_st_tensor *const *)a, *y = *(const rcv_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_tensor(rcv_safetensors *st, const char *name, const rcv_json_value *v, rcv_st_tensor *t) {
    const char *path = st->path;
    if (v->type != RCV_JSON_OBJECT)
        return rcv_fail("%s: tensor '%s' is a JSON %s, expected an object with dtype, shape and data_offsets", path,
                        name, rcv_json_type_name(v->type));
    const rcv_json_value *dt = rcv_json_get(v, "dtype"), *sh = rcv_json_get(v, "shape"),
                         *off = rcv_json_get(v, "data_offsets");
    if (!dt || !sh || !off)
        return rcv_fail("%s: tensor '%s' lacks \"%s\", expected dtype, shape and data_offsets", path, name,
                        !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (dt->type != RCV_JSON_STRING)
        return rcv_fail("%s: tensor '%s' has a dtype that is a JSON %s, expected a string", path, name,
                        rcv_json_type_name(dt->type));
    if (dtype_parse(dt->str, &t->dtype))
        return rcv_fail("%s: tensor '%s' has dtype \"%s\", expected one of F32, F16, BF16, F64, I64, I32, U8, BOOL",
                        path, name, dt->str);
    if (sh->type != RCV_JSON_ARRAY)
        return rcv_fail("%s: tensor '%s' has a shape that is a JSON %s, expected an array of integers", path, name,
                        rcv_json_type_name(sh->type));
    if (sh->n > 8) return rcv_fail("%s: tensor '%s' has %d dimensions, expected at most 8", path, name, sh->n);
    t->ndim = sh->n;
    t->numel = 1;
    int overflow = 0;
    for (int i = 0; i < sh->n; i++) {
        const rcv_json_value *d = &sh->items[i];
        if (d->type != RCV_JSON_NUMBER || !d->is_int || d->i64 < 0)
            return rcv_fail("%s: tensor '%s' has shape entry %d that is not a non-negative integer", path, name, i);
        t->shape[i] = d->i64;
        if (d->i64 && t->numel > SIZE_MAX / (size_t)d->i64) overflow = 1;
        t->numel *= (size_t)d->i64;
    }
    if (off->type != RCV_JSON_ARRAY || off->n != 2 || off->items[0].type != RCV_JSON_NUMBER || !off->items[0].is_int ||
        off->items[1].type != RCV_JSON_NUMBER || !off->items[1].is_int || off->items[0].i64 < 0 ||
        off->items[1].i64 < 0)
        return rcv_fail("%s: tensor '%s' has data_offsets that are not [begin, end] with non-negative integers", path,
                        name);
    t->begin = (size_t)off->items[0].i64;
    t->end = (size_t)off->items[1].i64;
    if (t->end < t->begin)
        return rcv_fail("%s: tensor '%s' data_offsets [%zu, %zu] end before they begin", path, name, t->begin, t->end);
    if (t->end > st->data_len)
        return rcv_fail("%s: tensor '%s' data_offsets [%zu, %zu] exceed the data section of %zu bytes", path, name,
                        t->begin, t->end, st->data_len);
    size_t esz = dt_sizes[t->dtype];
    if (overflow || t->numel > SIZE_MAX / esz || t->numel * esz != t->end - t->begin) {
        char s[200];
        shape_str(s, sizeof s, t->ndim, t->shape);
        return rcv_fail("%s: tensor '%s' has shape %s of %s (%zu elements x %zu bytes), but data_offsets [%zu, %zu] "
                        "hold %zu bytes",
                        path, name, s, dt_names[t->dtype], t->numel, esz, t->begin, t->end, t->end - t->begin);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int parse_header(rcv_safetensors *st, const rcv_json_value *h) {
    const char *path = st->path;
    if (h->type != RCV_JSON_OBJECT)
        return rcv_fail("%s: header is a JSON %s, expected an object", path, rcv_json_type_name(h->type));
    // Unique names, checked on a sorted copy: a pairwise check would take quadratic time on a
    // header of many short entries.
    if (h->n > 1) {
        char **k = rcv_xmalloc((size_t)h->n * sizeof *k);
        memcpy(k, h->keys, (size_t)h->n * sizeof *k);
        qsort(k, (size_t)h->n, sizeof *k, cmp_str);
        for (int i = 1; i < h->n; i++)
            if (!strcmp(k[i - 1], k[i])) {
                rcv_fail("%s: header names '%s' twice, expected unique names", path, k[i]);
                free(k);
                return -1;
            }
        free(k);
    }
    st->t = rcv_xcalloc((size_t)(h->n ? h->n : 1), sizeof *st->t);
    for (int i = 0; i < h->n; i++) {
        const char *key = h->keys[i];
        if (!strcmp(key, "__metadata__")) {
            const rcv_json_value *m = &h->items[i];
            if (m->type != RCV_JSON_OBJECT)
                return rcv_fail("%s: __metadata__ is a JSON %s, expected an object of strings", path,
                                rcv_json_type_name(m->type));
            st->meta_key = rcv_xcalloc((size_t)(m->n ? m->n : 1), sizeof(char *));
            st->meta_val = rcv_xcalloc((size_t)(m->n ? m->n : 1), sizeof(char *));
            for (int k = 0; k < m->n; k++) {
                if (m->items[k].type != RCV_JSON_STRING)
                    return rcv_fail("%s: __metadata__ value of '%s' is a JSON %s, expected a string", path, m->keys[k],
                                    rcv_json_type_name(m->items[k].type));
                st->meta_key[st->n_meta] = rcv_xstrdup(m->keys[k]);
                st->meta_val[st->n_meta++] = rcv_xstrdup(m->items[k].str);
            }
            continue;
        }
        rcv_st_tensor *t = &st->t[st->n];
        memset(t, 0, sizeof *t);
        if (parse_tensor(st, key, &h->items[i], t)) return -1;
        t->name = rcv_xstrdup(key);
        st->n++;
    }
    // Non-overlapping data (the order in the header is free).
    if (st->n > 1) {
        rcv_st_tensor **s = rcv_xmalloc((size_t)st->n * sizeof *s);
        for (int i = 0; i < st->n; i++) s[i] = &st->t[i];
        qsort(s, (size_t)st->n, sizeof *s, cmp_begin);
        const rcv_st_tensor *last = NULL; // the non-empty tensor reaching furthest so far
        for (int i = 0; i < st->n; i++) {
            if (s[i]->end == s[i]->begin) continue;
            if (last && s[i]->begin < last->end) {
                rcv_fail("%s: tensor '%s' data_offsets [%zu, %zu] overlap tensor '%s' [%zu, %zu]", path, s[i]->name,
                         s[i]->begin, s[i]->end, last->name, last->begin, last->end);
                free(s);
                return -1;
            }
            if (!last || s[i]->end > last->end) last = s[i];
        }
        free(s);
    }
    return 0;
}

int rcv_st_open(rcv_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    if (rcv_file_read(path, &st->file, &st->file_len)) return -1;
    st->path = rcv_xstrdup(path);
    if (st->file_len < 8) {
        rcv_fail("%s: file is %zu bytes, expected at least 8 (the header length)", path, st->file_len);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->file[i];
    if (hlen > st->file_len - 8) {
        rcv_fail("%s: header length %llu exceeds the file size of %zu bytes (truncated or not a safetensors file)",
                 path, (unsigned long long)hlen, st->file_len);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        rcv_fail("%s: header length %llu, expected at most %u bytes", path, (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    st->data = st->file + 8 + hlen;
    st->data_len = st->file_len - 8 - (size_t)hlen;
    rcv_json_value h;
    if (rcv_json_parse((const char *)st->file + 8, (size_t)hlen, &h)) {
        rcv_json_free(&h);
        rcv_fail_ctx("%s: header (%llu bytes) is not valid JSON: ", path, (unsigned long long)hlen);
        goto fail;
    }
    int rc = parse_header(st, &h);
    rcv_json_free(&h);
    if (rc) goto fail;
    return 0;
fail:
    rcv_st_close(st);
    return -1;
}

const rcv_st_tensor *rcv_st_find(const rcv_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const void *rcv_st_data(const rcv_safetensors *st, const rcv_st_tensor *t) { return st->data + t->begin; }

const char *rcv_st_meta(const rcv_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_key[i], key)) return st->meta_val[i];
    return NULL;
}

float rcv_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1F, m = h & 0x3FF, bits;
    if (e == 0) {
        if (m == 0) bits = sign;
        else { // subnormal: m * 2^-24
            float f = (float)m * 0x1p-24f;
            return sign ? -f : f;
        }
    } else if (e == 31) bits = sign | 0x7F800000u | (m << 13);
    else bits = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rcv_float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t e = (int32_t)((x >> 23) & 0xFF);
    uint32_t m = x & 0x7FFFFF;
    if (e == 255) return (uint16_t)(sign | 0x7C00 | (m ? 0x200 : 0));
    int32_t he = e - 127 + 15;
    if (he >= 31) return (uint16_t)(sign | 0x7C00);
    if (he <= 0) { // subnormal or zero, round to nearest even
        if (he < -10) return (uint16_t)sign;
        m |= 0x800000;
        int shift = 14 - he;
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ((uint32_t)he << 10) | (m >> 13), rem = m & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++; // may carry into the exponent: correct
    return (uint16_t)(sign | r);
}

uint16_t rcv_float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFF) > 0x7F800000) return (uint16_t)((x >> 16) | 0x40); // quiet NaN
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void rcv_st_convert_f32(rcv_dtype dt, const void *src, float *out, size_t n) {
    const uint8_t *p = src;
    size_t es = dt_sizes[dt];
    for (size_t i = 0; i < n; i++, p += es) {
        switch (dt) {
        case RCV_DT_F32: memcpy(&out[i], p, 4); break;
        case RCV_DT_F16: { uint16_t h; memcpy(&h, p, 2); out[i] = rcv_half_to_float(h); break; }
        case RCV_DT_BF16: { uint16_t h; memcpy(&h, p, 2); uint32_t b = (uint32_t)h << 16; memcpy(&out[i], &b, 4); break; }
        case RCV_DT_F64: { double d; memcpy(&d, p, 8); out[i] = (float)d; break; }
        case RCV_DT_I64: { int64_t v; memcpy(&v, p, 8); out[i] = (float)v; break; }
        case RCV_DT_I32: { int32_t v; memcpy(&v, p, 4); out[i] = (float)v; break; }
        case RCV_DT_U8: out[i] = (float)p[0]; break;
        case RCV_DT_BOOL: out[i] = p[0] ? 1.0f : 0.0f; break;
        }
    }
}

int rcv_st_read_f32(const rcv_safetensors *st, const char *name, float *out, size_t numel) {
    const rcv_st_tensor *t = rcv_st_find(st, name);
    if (!t) return rcv_fail("%s: no tensor '%s' (the file has %d tensors)", st->path, name, st->n);
    if (t->numel != numel) {
        char s[200];
        shape_str(s, sizeof s, t->ndim, t->shape);
        return rcv_fail("%s: tensor '%s' has shape %s = %zu elements, expected %zu", st->path, name, s, t->numel, numel);
    }
    rcv_st_convert_f32(t->dtype, rcv_st_data(st, t), out, numel);
    return 0;
}

int rcv_st_read_i64(const rcv_safetensors *st, const char *name, int64_t *out, size_t numel) {
    const rcv_st_tensor *t = rcv_st_find(st, name);
    if (!t) return rcv_fail("%s: no tensor '%s' (the file has %d tensors)", st->path, name, st->n);
    if (t->numel != numel)
        return rcv_fail("%s: tensor '%s' has %zu elements, expected %zu", st->path, name, t->numel, numel);
    const uint8_t *p = rcv_st_data(st, t);
    size_t es = dt_sizes[t->dtype];
    for (size_t i = 0; i < numel; i++, p += es) {
        switch (t->dtype) {
        case RCV_DT_I64: memcpy(&out[i], p, 8); break;
        case RCV_DT_I32: { int32_t v; memcpy(&v, p, 4); out[i] = v; break; }
        case RCV_DT_U8: case RCV_DT_BOOL: out[i] = p[0]; break;
        default: {
            float f;
            rcv_st_convert_f32(t->dtype, p, &f, 1);
            if (!(f == floorf(f)) || fabsf(f) > 9.0e18f)
                return rcv_fail("%s: tensor '%s' element %zu is %g, expected an integer", st->path, name, i, (double)f);
            out[i] = (int64_t)f;
        }
        }
    }
    return 0;
}

// --- writing ---

typedef struct {
    char *name;
    rcv_dtype dt;
    int ndim;
    int64_t shape[8];
    size_t bytes;
    uint8_t *data;
} st_entry;

struct rcv_st_writer {
    st_entry *e;
    int n, cap;
    char **mk, **mv;
    int n_meta, cap_meta;
    char err[512]; // first misuse (duplicate name, bad dtype), reported by rcv_st_write
};

rcv_st_writer *rcv_st_writer_new(void) { return rcv_xcalloc(1, sizeof(rcv_st_writer)); }

void rcv_st_writer_free(rcv_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->e[i].name); free(w->e[i].data); }
    for (int i = 0; i < w->n_meta; i++) { free(w->mk[i]); free(w->mv[i]); }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}

void rcv_st_add(rcv_st_writer *w, const char *name, rcv_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (w->err[0]) return;
    if (dt < 0 || (int)dt >= N_DT) { snprintf(w->err, sizeof w->err, "tensor '%s' has unknown dtype %d", name, (int)dt); return; }
    if (ndim < 0 || ndim > 8) { snprintf(w->err, sizeof w->err, "tensor '%s' has %d dimensions, expected 0..8", name, ndim); return; }
    if (!strcmp(name, "__metadata__")) { snprintf(w->err, sizeof w->err, "'__metadata__' is reserved, not a tensor name"); return; }
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name)) { snprintf(w->err, sizeof w->err, "tensor '%s' added twice", name); return; }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->e = rcv_xrealloc(w->e, (size_t)w->cap * sizeof *w->e);
    }
    st_entry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = rcv_xstrdup(name);
    e->dt = dt;
    e->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) { e->shape[i] = shape[i]; numel *= (size_t)shape[i]; }
    e->bytes = numel * dt_sizes[dt];
    e->data = rcv_xmalloc(e->bytes);
    if (e->bytes) memcpy(e->data, data, e->bytes);
}

void rcv_st_add_meta(rcv_st_writer *w, const char *key, const char *val) {
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->mk[i], key)) { free(w->mv[i]); w->mv[i] = rcv_xstrdup(val); return; }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 16;
        w->mk = rcv_xrealloc(w->mk, (size_t)w->cap_meta * sizeof(char *));
        w->mv = rcv_xrealloc(w->mv, (size_t)w->cap_meta * sizeof(char *));
    }
    w->mk[w->n_meta] = rcv_xstrdup(key);
    w->mv[w->n_meta++] = rcv_xstrdup(val);
}

int rcv_st_write(rcv_st_writer *w, const char *path) {
    if (w->err[0]) return rcv_fail("%s: not written: %s", path, w->err);
    // Data layout: 8-byte dtypes first, then 4, 2, 1 (insertion order within a size), so every
    // tensor is aligned to its element size (the data section starts 8-aligned) and the section
    // has no holes, as the reference implementation requires. The header lists tensors in
    // insertion order.
    size_t *off = rcv_xmalloc((size_t)(w->n ? w->n : 1) * sizeof *off);
    size_t pos = 0;
    for (size_t sz = 8; sz >= 1; sz /= 2)
        for (int i = 0; i < w->n; i++)
            if (dt_sizes[w->e[i].dt] == sz) { off[i] = pos; pos += w->e[i].bytes; }
    rcv_json_writer j;
    rcv_json_writer_init(&j);
    rcv_json_begin_object(&j);
    if (w->n_meta) {
        rcv_json_key(&j, "__metadata__");
        rcv_json_begin_object(&j);
        for (int i = 0; i < w->n_meta; i++) { rcv_json_key(&j, w->mk[i]); rcv_json_string(&j, w->mv[i]); }
        rcv_json_end_object(&j);
    }
    for (int i = 0; i < w->n; i++) {
        st_entry *e = &w->e[i];
        rcv_json_key(&j, e->name);
        rcv_json_begin_object(&j);
        rcv_json_key(&j, "dtype");
        rcv_json_string(&j, dt_names[e->dt]);
        rcv_json_key(&j, "shape");
        rcv_json_begin_array(&j);
        for (int d = 0; d < e->ndim; d++) rcv_json_int(&j, e->shape[d]);
        rcv_json_end_array(&j);
        rcv_json_key(&j, "data_offsets");
        rcv_json_begin_array(&j);
        rcv_json_int(&j, (int64_t)off[i]);
        rcv_json_int(&j, (int64_t)(off[i] + e->bytes));
        rcv_json_end_array(&j);
        rcv_json_end_object(&j);
    }
    rcv_json_end_object(&j);
    while (j.out.len % 8) rcv_json_raw(&j, " "); // spaces after the closing brace are JSON whitespace
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)j.out.len >> (8 * i));

    rcv_atomic_file a;
    int rc = rcv_atomic_open(&a, path);
    if (!rc) {
        rc |= rcv_atomic_write(&a, len8, 8);
        rc |= rcv_atomic_write(&a, j.out.data, j.out.len);
        for (size_t sz = 8; sz >= 1 && !rc; sz /= 2)
            for (int i = 0; i < w->n && !rc; i++)
                if (dt_sizes[w->e[i].dt] == sz) rc |= rcv_atomic_write(&a, w->e[i].data, w->e[i].bytes);
        rc = rc ? (rcv_atomic_abort(&a), -1) : rcv_atomic_commit(&a);
    }
    rcv_json_writer_free(&j);
    free(off);
    return rc;
}
