// torch.save archives to an in-memory rcv_safetensors (see pth.h).
//
// Layout of a torch.save (>= 1.6) file, caffe2/serialize/inline_container.cc: a zip archive whose
// entries sit under one folder named after the file (archive/, resnet18/, ...): data.pkl (the
// pickled object, protocol 2), data/<key> (each storage's raw little-endian bytes, stored
// uncompressed and 64-byte aligned), version, byteorder (newer writers). A tensor in data.pkl is
// _rebuild_tensor_v2(storage, offset, size, stride, ...), its storage the persistent id
// ('storage', torch.FloatStorage, key, location, numel).
//
// Contiguous tensors of stored entries are views into the file's bytes (no copy); strided views
// and deflated entries are copied into an area appended to the same buffer, so the result is
// one allocation like a safetensors file read from disk.
#include "robustcv/pth.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle.h"
#include "robustcv/buf.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/zip.h"

#define PKL_MAX (256u << 20) // data.pkl of a state dict is kilobytes; 256 MiB is far beyond any real one
#define NAME_MAX_LEN 1024

// torch/serialization.py MAGIC_NUMBER = 0x1950a86a20f9469cfc6c, pickled as LONG1 with 10 bytes.
static const uint8_t legacy_magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

static int is_legacy(const uint8_t *b, size_t len) {
    for (size_t i = 0; i + sizeof legacy_magic <= len && i < 16; i++)
        if (!memcmp(b + i, legacy_magic, sizeof legacy_magic)) return 1;
    return 0;
}

int rcv_pth_sniff(const uint8_t *b, size_t len) {
    return (len >= 4 && !memcmp(b, "PK\3\4", 4)) || is_legacy(b, len);
}

static int n_tensors(const rcv_pk *d) {
    int n = 0;
    for (int i = 1; i < d->n; i += 2) n += d->items[i]->type == PK_TENSOR;
    return n;
}

static const rcv_pk *dict_get(const rcv_pk *d, const char *k) {
    for (int i = 0; i + 1 < d->n; i += 2)
        if (d->items[i]->type == PK_STR && !strcmp(d->items[i]->s, k)) return d->items[i + 1];
    return NULL;
}

// "a (dict of 62 tensors), epoch (int), ..." for the messages.
static void list_keys(const rcv_pk *d, char *b, size_t cap) {
    b[0] = 0;
    for (int i = 0, listed = 0; i + 1 < d->n; i += 2) {
        size_t k = strlen(b);
        if (listed == 12 || k + 80 > cap) {
            snprintf(b + k, cap - k, ", ...");
            return;
        }
        const rcv_pk *key = d->items[i], *v = d->items[i + 1];
        char what[48];
        if (v->type == PK_DICT) snprintf(what, sizeof what, "dict of %d tensors", n_tensors(v));
        else snprintf(what, sizeof what, "%s", rcv_pk_type_name(v->type));
        snprintf(b + k, cap - k, "%s'%.40s' (%s)", listed ? ", " : "", key->type == PK_STR ? key->s : "?", what);
        listed++;
    }
}

static int pick_state_dict(const rcv_pk *root, const char *key, const char *where, const rcv_pk **out) {
    char keys[1024];
    if (root->type != PK_DICT)
        return rcv_fail("%s holds a %s, expected a dict of tensors as torch.save(model.state_dict(), f) writes", where,
                        rcv_pk_type_name(root->type));
    if (key && key[0]) {
        const rcv_pk *v = dict_get(root, key);
        if (!v || v->type != PK_DICT) {
            list_keys(root, keys, sizeof keys);
            return rcv_fail("%s: key '%s' %s; the top-level keys are: %s", where, key,
                            v ? "is not a dict" : "is not in the checkpoint", keys);
        }
        *out = v;
        return 0;
    }
    if (n_tensors(root) || root->n == 0) {
        *out = root;
        return 0;
    }
    const rcv_pk *only = NULL;
    int n_cand = 0;
    for (int i = 1; i < root->n; i += 2)
        if (root->items[i]->type == PK_DICT && n_tensors(root->items[i])) only = root->items[i], n_cand++;
    if (n_cand > 1) {
        static const char *const preferred[] = {"state_dict", "model_state_dict", "model", "net", "module"};
        for (size_t i = 0; i < sizeof preferred / sizeof *preferred; i++) {
            const rcv_pk *v = dict_get(root, preferred[i]);
            if (v && v->type == PK_DICT && n_tensors(v)) {
                *out = v;
                return 0;
            }
        }
    }
    if (n_cand == 1) {
        *out = only;
        return 0;
    }
    list_keys(root, keys, sizeof keys);
    return rcv_fail("%s: no tensors at the top level and %s; the keys are: %s (robustcv convert --key NAME picks one)",
                    where, n_cand ? "several nested dicts of tensors" : "no nested dict of tensors", keys);
}

static void shape_str(char *b, size_t n, int ndim, const int64_t *v) {
    size_t k = (size_t)snprintf(b, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(b + k, n - k, "%s%lld", i ? ", " : "", (long long)v[i]);
    if (k < n) snprintf(b + k, n - k, "]");
}

typedef struct {
    const char *path, *prefix;
    const rcv_zip *z;
    const uint8_t **sdata; // per zip entry: its bytes once read (CRC checked), else NULL
    uint8_t **sowned;
} ctx;

// The bytes of the storage s (its zip entry data/<key>), checked to hold numel elements.
static int storage_bytes(ctx *c, const char *name, const rcv_pk *s, const uint8_t **out) {
    char ename[NAME_MAX_LEN];
    snprintf(ename, sizeof ename, "%sdata/%s", c->prefix, s->s);
    const rcv_zip_entry *e = rcv_zip_find(c->z, ename);
    if (!e)
        return rcv_fail("%s: tensor '%s': its storage '%s' has no entry '%s' in the archive", c->path, name, s->s,
                        ename);
    size_t es = rcv_dtype_size(s->dtype), i = (size_t)(e - c->z->e);
    uint64_t need;
    if (__builtin_mul_overflow((uint64_t)s->numel, (uint64_t)es, &need) || need > e->size)
        return rcv_fail("%s: tensor '%s': storage '%s' claims %lld %s elements (%zu bytes each), but its entry '%s' "
                        "holds %llu bytes",
                        c->path, name, s->s, (long long)s->numel, rcv_dtype_name(s->dtype), es, ename,
                        (unsigned long long)e->size);
    if (!c->sdata[i] && rcv_zip_read(c->z, e, (size_t)1 << 40, &c->sdata[i], &c->sowned[i])) return -1;
    *out = c->sdata[i];
    return 0;
}

static void gather(uint8_t *dst, const uint8_t *src, size_t es, int ndim, const int64_t *size, const int64_t *stride) {
    int64_t idx[RCV_PK_MAX_DIM] = {0};
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= (size_t)size[d];
    for (size_t k = 0; k < numel; k++) {
        int64_t off = 0;
        for (int d = 0; d < ndim; d++) off += idx[d] * stride[d];
        memcpy(dst + k * es, src + (size_t)off * es, es);
        for (int d = ndim - 1; d >= 0; d--) {
            if (++idx[d] < size[d]) break;
            idx[d] = 0;
        }
    }
}

// torchvision's published DenseNet weights (densenet121-a639ec97.pth, densenet169-b2777c0a.pth, ...)
// predate the module names norm1/relu1/conv1: their keys read "...denselayer3.norm.1.weight".
// torchvision renames them when it loads them (models/densenet.py, _load_state_dict: the pattern
// ^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$);
// so does this reader, in place.
static void densenet_legacy_name(char *s) {
    static const char *const tails[] = {"weight", "bias", "running_mean", "running_var"};
    size_t n = strlen(s);
    for (int t = 0; t < 4; t++) {
        size_t tl = strlen(tails[t]);
        if (n < tl + 7 + 12) continue; // "denselayerN" + ".norm.1." + tail at least
        char *tail = s + n - tl, *mod = tail - 7; // mod: "norm.1." before the tail
        if (strcmp(tail, tails[t]) || tail[-1] != '.' || (tail[-2] != '1' && tail[-2] != '2') || tail[-3] != '.' ||
            mod[-1] != '.' || (strncmp(mod, "norm", 4) && strncmp(mod, "relu", 4) && strncmp(mod, "conv", 4)))
            continue;
        char *p = mod - 1;
        while (p > s && isdigit((unsigned char)p[-1])) p--;
        if (p == mod - 1 || p - s < 10 || strncmp(p - 10, "denselayer", 10)) continue;
        memmove(tail - 3, tail - 2, strlen(tail - 2) + 1); // "norm.1.weight" -> "norm1.weight"
        return;
    }
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const rcv_st_tensor *const *)a)->name, (*(const rcv_st_tensor *const *)b)->name);
}

// One tensor of the state dict into t (name set by the caller); in_area: its bytes are in a.
static int add_tensor(ctx *c, const char *name, const rcv_pk *v, const uint8_t *buf, rcv_buf *a, rcv_st_tensor *t,
                      int *in_area) {
    char sh[160], st[160];
    shape_str(sh, sizeof sh, v->ndim, v->size);
    shape_str(st, sizeof st, v->ndim, v->stride);
    const rcv_pk *s = v->storage;
    size_t es = rcv_dtype_size(v->dtype);
    uint64_t numel = 1, last = (uint64_t)v->offset, expect = 1;
    int contiguous = 1, overflow = v->offset < 0;
    for (int d = v->ndim - 1; d >= 0; d--) {
        if (v->size[d] < 0 || v->stride[d] < 0)
            return rcv_fail("%s: tensor '%s' has size %s and stride %s, expected non-negative values", c->path, name,
                            sh, st);
        overflow |= __builtin_mul_overflow(numel, (uint64_t)v->size[d], &numel);
        if (v->size[d] > 0) {
            uint64_t reach;
            overflow |= __builtin_mul_overflow((uint64_t)(v->size[d] - 1), (uint64_t)v->stride[d], &reach);
            overflow |= __builtin_add_overflow(last, reach, &last);
        }
        if (v->size[d] != 1 && (uint64_t)v->stride[d] != expect) contiguous = 0;
        overflow |= __builtin_mul_overflow(expect, (uint64_t)v->size[d], &expect);
    }
    if (overflow || numel > ((uint64_t)1 << 48))
        return rcv_fail("%s: tensor '%s': size %s, stride %s, offset %lld overflow (expected a real tensor)", c->path,
                        name, sh, st, (long long)v->offset);
    t->dtype = v->dtype;
    t->ndim = v->ndim;
    for (int d = 0; d < v->ndim; d++) t->shape[d] = v->size[d];
    t->numel = (size_t)numel;
    *in_area = 0;
    if (numel == 0) return 0; // begin = end = 0: no bytes
    if (last >= (uint64_t)s->numel)
        return rcv_fail("%s: tensor '%s' (size %s, stride %s, offset %lld) reaches element %llu of storage '%s', which "
                        "holds %lld",
                        c->path, name, sh, st, (long long)v->offset, (unsigned long long)last, s->s, (long long)s->numel);
    const uint8_t *src = NULL;
    if (storage_bytes(c, name, s, &src)) return -1;
    src += (size_t)v->offset * es;
    if (contiguous && src >= buf && src < buf + c->z->len) { // a view of the file's bytes
        t->begin = (size_t)(src - buf);
        t->end = t->begin + t->numel * es;
        return 0;
    }
    size_t at = a->len;
    uint8_t *dst = rcv_buf_grow(a, t->numel * es);
    if (!dst)
        return rcv_fail("%s: tensor '%s': copies of strided views would exceed %zu bytes (twice the archive's data); "
                        "refusing",
                        c->path, name, a->limit);
    if (contiguous) memcpy(dst, src, t->numel * es);
    else gather(dst, src, es, v->ndim, v->size, v->stride);
    t->begin = at;
    t->end = at + t->numel * es;
    *in_area = 1;
    return 0;
}

// Takes ownership of buf (len bytes, malloc'ed).
static int load(rcv_safetensors *st, uint8_t *buf, size_t len, const char *path, const rcv_pth_opts *o) {
    memset(st, 0, sizeof *st);
    if (is_legacy(buf, len)) {
        free(buf);
        return rcv_fail("%s: a legacy torch.save file (PyTorch < 1.6, not a zip archive), which robustcv does not read; "
                        "re-save it with PyTorch >= 1.6: torch.save(torch.load('%s'), 'new.pth') (the zip format, "
                        "_use_new_zipfile_serialization=True, is the default since 1.6)",
                        path, path);
    }
    if (len < 4 || memcmp(buf, "PK\3\4", 4)) {
        unsigned b[4] = {0};
        for (size_t i = 0; i < 4 && i < len; i++) b[i] = buf[i];
        free(buf);
        return rcv_fail("%s: not a torch.save zip archive (%zu bytes starting %02x %02x %02x %02x, expected \"PK\\3\\4\")",
                        path, len, b[0], b[1], b[2], b[3]);
    }
    rcv_zip z;
    if (rcv_zip_open(&z, buf, len, path)) {
        free(buf);
        return -1;
    }
    ctx c = {path, NULL, &z, rcv_xcalloc((size_t)z.n + 1, sizeof(uint8_t *)), rcv_xcalloc((size_t)z.n + 1, sizeof(uint8_t *))};
    rcv_pickle pk = {0};
    rcv_buf a = {.what = "copies of strided views"}; // the area after the file's bytes; limit below
    rcv_st_tensor **sorted = NULL;
    int *in_area = NULL, rc = -1;
    char prefix[NAME_MAX_LEN] = "", where[NAME_MAX_LEN + 64];
    const rcv_zip_entry *pkl = NULL;
    for (int i = 0; i < z.n && !pkl; i++) {
        const char *nm = z.e[i].name, *sl = strchr(nm, '/');
        size_t l = strlen(nm);
        // "<folder>/data.pkl" (one level) or "data.pkl"
        if (l >= 8 && !strcmp(nm + l - 8, "data.pkl") && l - 8 < sizeof prefix &&
            (l == 8 || (sl == nm + l - 9 && sl != nm))) {
            pkl = &z.e[i];
            memcpy(prefix, nm, l - 8);
            prefix[l - 8] = 0;
        }
    }
    c.prefix = prefix;
    if (!pkl) {
        int script = 0;
        for (int i = 0; i < z.n; i++) script |= strstr(z.e[i].name, "constants.pkl") != NULL;
        if (script)
            rcv_fail("%s: a TorchScript archive (torch.jit.save), not a state dict; in Python save the weights with "
                     "torch.save(model.state_dict(), 'model.pth')",
                     path);
        else
            rcv_fail("%s: zip archive of %d entries has no <folder>/data.pkl, expected a torch.save file (first entry: "
                     "'%.80s')",
                     path, z.n, z.n ? z.e[0].name : "none");
        goto out;
    }
    char bo_name[NAME_MAX_LEN + 16];
    snprintf(bo_name, sizeof bo_name, "%sbyteorder", prefix);
    const rcv_zip_entry *bo = rcv_zip_find(&z, bo_name);
    if (bo) {
        const uint8_t *d;
        uint8_t *own;
        if (rcv_zip_read(&z, bo, 64, &d, &own)) goto out;
        int little = bo->size == 6 && !memcmp(d, "little", 6);
        free(own);
        if (!little) {
            rcv_fail("%s: '%s' says the storages are not little-endian; re-save the file on a little-endian machine",
                     path, bo_name);
            goto out;
        }
    }
    {
        const uint8_t *p;
        uint8_t *own;
        if (rcv_zip_read(&z, pkl, PKL_MAX, &p, &own)) goto out;
        snprintf(where, sizeof where, "%s: %s", path, pkl->name);
        int r = rcv_pickle_load(&pk, p, (size_t)pkl->size, where);
        free(own);
        if (r) goto out;
    }
    const rcv_pk *sd = NULL;
    if (pick_state_dict(pk.root, o ? o->key : NULL, where, &sd)) goto out;
    int n = n_tensors(sd);
    st->t = rcv_xcalloc((size_t)n + 1, sizeof *st->t);
    in_area = rcv_xcalloc((size_t)n + 1, sizeof *in_area);
    // Strided copies are bounded by the data they come from (twice it, for a few shared views).
    a.limit = 2 * len;
    for (int i = 0; i < z.n; i++)
        if (z.e[i].method) a.limit += 2 * (size_t)z.e[i].size;
    // Names: the strip prefix, by default "module." when every name has it (nn.DataParallel).
    const char *strip = o && o->strip ? o->strip : NULL;
    if (!strip) {
        int all = n > 0;
        for (int i = 0; i + 1 < sd->n && all; i += 2)
            if (sd->items[i + 1]->type == PK_TENSOR)
                all = sd->items[i]->type == PK_STR && !strncmp(sd->items[i]->s, "module.", 7);
        strip = all ? "module." : "";
    }
    for (int i = 0; i + 1 < sd->n; i += 2) {
        const rcv_pk *k = sd->items[i], *v = sd->items[i + 1];
        if (v->type != PK_TENSOR) continue; // e.g. a counter stored beside the tensors
        if (k->type != PK_STR || strlen(k->s) != k->len || k->len == 0 || k->len >= NAME_MAX_LEN) {
            rcv_fail("%s: a tensor's key is %s, expected a non-empty name without NUL bytes, under %d bytes", where,
                     k->type == PK_STR ? "a bad string" : rcv_pk_type_name(k->type), NAME_MAX_LEN);
            goto out;
        }
        const char *name = k->s;
        if (strip[0] && !strncmp(name, strip, strlen(strip)) && name[strlen(strip)]) name += strlen(strip);
        rcv_st_tensor *t = &st->t[st->n];
        if (add_tensor(&c, k->s, v, buf, &a, t, &in_area[st->n])) goto out;
        t->name = rcv_xstrdup(name);
        densenet_legacy_name(t->name);
        st->n++;
    }
    if (st->n > 1) { // unique names (a pickled dict has none twice; a crafted one might)
        sorted = rcv_xmalloc((size_t)st->n * sizeof *sorted);
        for (int i = 0; i < st->n; i++) sorted[i] = &st->t[i];
        qsort(sorted, (size_t)st->n, sizeof *sorted, cmp_name);
        for (int i = 1; i < st->n; i++)
            if (!strcmp(sorted[i]->name, sorted[i - 1]->name)) {
                rcv_fail("%s: tensor name '%s' appears twice%s", where, sorted[i]->name,
                         strip[0] ? " (after removing the prefix)" : "");
                goto out;
            }
    }
    // One buffer: the file's bytes, then the copies.
    st->file = rcv_xrealloc(buf, len + a.len + 1);
    buf = NULL;
    if (a.len) memcpy(st->file + len, a.data, a.len);
    st->file[len + a.len] = 0;
    for (int i = 0; i < st->n; i++)
        if (in_area[i]) st->t[i].begin += len, st->t[i].end += len;
    st->file_len = len + a.len;
    st->data = st->file;
    st->data_len = st->file_len;
    st->path = rcv_xstrdup(path);
    rc = 0;
out:
    for (int i = 0; i < z.n; i++) free(c.sowned[i]);
    free(c.sdata);
    free(c.sowned);
    rcv_pickle_free(&pk);
    rcv_zip_close(&z);
    rcv_buf_free(&a);
    free(sorted);
    free(in_area);
    if (rc) {
        free(buf);
        for (int i = 0; i < st->n; i++) free(st->t[i].name);
        free(st->t);
        free(st->file);
        memset(st, 0, sizeof *st);
    }
    return rc;
}

int rcv_pth_open(rcv_safetensors *st, const char *path, const rcv_pth_opts *o) {
    uint8_t *buf;
    size_t len;
    memset(st, 0, sizeof *st);
    if (rcv_file_read(path, &buf, &len)) return -1;
    return load(st, buf, len, path, o);
}

int rcv_pth_open_mem(rcv_safetensors *st, const uint8_t *b, size_t len, const char *path, const rcv_pth_opts *o) {
    uint8_t *buf = rcv_xmalloc(len + 1);
    if (len) memcpy(buf, b, len);
    return load(st, buf, len, path, o);
}

int rcv_weights_open(rcv_safetensors *st, const char *path) {
    uint8_t head[32];
    size_t n = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        n = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    if (f && rcv_pth_sniff(head, n)) return rcv_pth_open(st, path, NULL);
    return rcv_st_open(st, path); // also names a missing file
}
