// Restricted unpickler (see pickle.h). Opcodes follow CPython's Lib/pickletools.py; the allow-list
// is what torch.save writes for a state dict (torch/_weights_only_unpickler.py accepts the same
// family). Limits keep a hostile pickle from costing more than its own size: at most
// RCV_PK_MAX_OBJECTS values, RCV_PK_MAX_ITEMS container entries, a stack of RCV_PK_MAX_STACK,
// MARK nesting RCV_PK_MAX_MARKS, memo indices below the pickle's length.
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"

#define RCV_PK_MAX_OBJECTS (1 << 20)
#define RCV_PK_MAX_MARKS 64
#define RCV_PK_MAX_ITEMS (1 << 22) // container entries in all (a memo reference can be stored many times)
#define RCV_PK_MAX_STACK (1 << 20)

static const struct {
    const char *module, *name;
    int kind;
    rcv_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", PKG_ORDERED_DICT, RCV_DT_F32},
    {"torch._utils", "_rebuild_tensor_v2", PKG_REBUILD_TENSOR_V2, RCV_DT_F32},
    {"torch._utils", "_rebuild_parameter", PKG_REBUILD_PARAMETER, RCV_DT_F32},
    {"torch", "FloatStorage", PKG_STORAGE, RCV_DT_F32},
    {"torch", "HalfStorage", PKG_STORAGE, RCV_DT_F16},
    {"torch", "BFloat16Storage", PKG_STORAGE, RCV_DT_BF16},
    {"torch", "DoubleStorage", PKG_STORAGE, RCV_DT_F64},
    {"torch", "LongStorage", PKG_STORAGE, RCV_DT_I64},
    {"torch", "IntStorage", PKG_STORAGE, RCV_DT_I32},
    {"torch", "ByteStorage", PKG_STORAGE, RCV_DT_U8},
    {"torch", "BoolStorage", PKG_STORAGE, RCV_DT_BOOL},
};
#define N_ALLOWED ((int)(sizeof allowed / sizeof allowed[0]))
#define ALLOWED_LIST                                                                                              \
    "collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, "                 \
    "torch.{Float,Half,BFloat16,Double,Long,Int,Byte,Bool}Storage"

static const char *type_names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
const char *rcv_pk_type_name(rcv_pk_type t) { return (unsigned)t < sizeof type_names / sizeof *type_names ? type_names[t] : "?"; }

// Names of the opcodes this reader refuses, for the message (pickletools' names).
static const char *op_name(int op) {
    static const struct { int op; const char *name; } t[] = {
        {'I', "INT"}, {'L', "LONG"}, {'F', "FLOAT"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
        {'V', "UNICODE"}, {'B', "BINBYTES"}, {'C', "SHORT_BINBYTES"}, {0x8e, "BINBYTES8"}, {0x96, "BYTEARRAY8"},
        {0x8b, "LONG4"}, {'d', "DICT"}, {'l', "LIST"}, {'o', "OBJ"}, {'i', "INST"}, {'P', "PERSID"},
        {0x81, "NEWOBJ"}, {0x92, "NEWOBJ_EX"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {'g', "GET"},
        {'p', "PUT"}, {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x97, "NEXT_BUFFER"},
        {0x98, "READONLY_BUFFER"}, {0x8d, "BINUNICODE8"}, {'R', "REDUCE"}, {'b', "BUILD"}, {0x80, "PROTO"},
        {0x95, "FRAME"}, {'.', "STOP"}, {'}', "EMPTY_DICT"}, {']', "EMPTY_LIST"}, {')', "EMPTY_TUPLE"}, {'(', "MARK"},
        {'t', "TUPLE"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"}, {'X', "BINUNICODE"},
        {0x8c, "SHORT_BINUNICODE"}, {'J', "BININT"}, {'K', "BININT1"}, {'M', "BININT2"}, {0x8a, "LONG1"},
        {'G', "BINFLOAT"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {'N', "NONE"}, {'s', "SETITEM"}, {'u', "SETITEMS"},
        {'a', "APPEND"}, {'e', "APPENDS"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {0x94, "MEMOIZE"}, {'h', "BINGET"},
        {'j', "LONG_BINGET"}, {'c', "GLOBAL"}, {0x93, "STACK_GLOBAL"}, {'Q', "BINPERSID"}, {'0', "POP"},
        {'1', "POP_MARK"}, {'2', "DUP"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].op == op) return t[i].name;
    return "unknown";
}

typedef struct {
    rcv_pickle *pk;
    const char *where;
    const uint8_t *p;
    size_t len, pos, op_at; // op_at: offset of the current opcode
    int op;
    rcv_pk **stack;
    int sp, cap;
    int marks[RCV_PK_MAX_MARKS];
    int n_marks;
    rcv_pk **memo;
    size_t n_memo, memo_cap;
    size_t n_items; // container entries so far
} unpickler;

static int bad(unpickler *u, const char *fmt, const char *a) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a);
    return rcv_fail("%s: byte %zu: opcode 0x%02x %s: %s", u->where, u->op_at, u->op, op_name(u->op), msg);
}

static rcv_pk *new_obj(unpickler *u, rcv_pk_type t) {
    rcv_pickle *pk = u->pk;
    if (pk->n_all >= RCV_PK_MAX_OBJECTS) return NULL;
    if (pk->n_all == pk->cap_all) {
        pk->cap_all = pk->cap_all ? 2 * pk->cap_all : 256;
        pk->all = rcv_xrealloc(pk->all, (size_t)pk->cap_all * sizeof *pk->all);
    }
    rcv_pk *o = rcv_xcalloc(1, sizeof *o);
    o->type = t;
    pk->all[pk->n_all++] = o;
    return o;
}

static void push_item(rcv_pk *c, rcv_pk *v) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->items = rcv_xrealloc(c->items, (size_t)c->cap * sizeof *c->items);
    }
    c->items[c->n++] = v;
}

static void push(unpickler *u, rcv_pk *v) {
    if (u->sp == u->cap) {
        u->cap = u->cap ? 2 * u->cap : 64;
        u->stack = rcv_xrealloc(u->stack, (size_t)u->cap * sizeof *u->stack);
    }
    u->stack[u->sp++] = v;
}

// Stack height above the innermost MARK (objects pushed since).
static int base(unpickler *u) { return u->n_marks ? u->marks[u->n_marks - 1] : 0; }

static rcv_pk *pop(unpickler *u) { return u->sp > base(u) ? u->stack[--u->sp] : NULL; }

static int need(unpickler *u, size_t n) {
    if (u->len - u->pos < n)
        return rcv_fail("%s: byte %zu: opcode 0x%02x %s needs %zu argument bytes, only %zu are left (truncated pickle)",
                        u->where, u->op_at, u->op, op_name(u->op), n, u->len - u->pos);
    return 0;
}

static uint64_t rdle(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int memo_put(unpickler *u, uint64_t k) {
    if (u->sp <= base(u)) return bad(u, "%s", "memo store with an empty stack");
    // Memo keys are small (torch numbers them from 0); a key beyond the pickle's length is hostile.
    if (k > u->len) return bad(u, "%s", "memo index larger than the pickle");
    if (k >= u->memo_cap) {
        size_t c = u->memo_cap ? u->memo_cap : 64;
        while (c <= k) c *= 2;
        u->memo = rcv_xrealloc(u->memo, c * sizeof *u->memo);
        memset(u->memo + u->memo_cap, 0, (c - u->memo_cap) * sizeof *u->memo);
        u->memo_cap = c;
    }
    u->memo[k] = u->stack[u->sp - 1];
    if (k + 1 > u->n_memo) u->n_memo = (size_t)k + 1;
    return 0;
}

static int memo_get(unpickler *u, uint64_t k) {
    if (k >= u->memo_cap || !u->memo[k]) {
        char b[32];
        snprintf(b, sizeof b, "%llu", (unsigned long long)k);
        return bad(u, "memo index %s was never stored", b);
    }
    push(u, u->memo[k]);
    return 0;
}

static int global(unpickler *u, const char *mod, size_t mlen, const char *name, size_t nlen) {
    for (int i = 0; i < N_ALLOWED; i++)
        if (strlen(allowed[i].module) == mlen && !memcmp(allowed[i].module, mod, mlen) &&
            strlen(allowed[i].name) == nlen && !memcmp(allowed[i].name, name, nlen)) {
            rcv_pk *g = new_obj(u, PK_GLOBAL);
            if (!g) return -2;
            g->i = allowed[i].kind;
            g->dtype = allowed[i].dtype;
            g->s = rcv_xmalloc(mlen + nlen + 2);
            snprintf(g->s, mlen + nlen + 2, "%.*s.%.*s", (int)mlen, mod, (int)nlen, name);
            push(u, g);
            return 0;
        }
    return rcv_fail("%s: byte %zu: global '%.*s.%.*s' is not allowed in a state dict (allowed: " ALLOWED_LIST
                    "); refusing the file, nothing in it was run",
                    u->where, u->op_at, (int)(mlen > 100 ? 100 : mlen), mod, (int)(nlen > 100 ? 100 : nlen), name);
}

static int is_int_tuple(const rcv_pk *t, int max) {
    if (t->type != PK_TUPLE || t->n > max) return 0;
    for (int i = 0; i < t->n; i++)
        if (t->items[i]->type != PK_INT) return 0;
    return 1;
}

// REDUCE: callable(*args) for the allow-listed callables, as plain data.
static int reduce(unpickler *u) {
    rcv_pk *args = pop(u), *f = pop(u);
    if (!args || !f) return bad(u, "%s", "REDUCE needs a callable and an argument tuple on the stack");
    if (f->type != PK_GLOBAL || args->type != PK_TUPLE) {
        char b[64];
        snprintf(b, sizeof b, "%s called with a %s", rcv_pk_type_name(f->type), rcv_pk_type_name(args->type));
        return bad(u, "on a non-allowlisted callable (%s)", b);
    }
    rcv_pk *r = NULL;
    switch ((int)f->i) {
    case PKG_ORDERED_DICT:
        if (args->n != 0) return bad(u, "%s", "collections.OrderedDict called with arguments, expected ()");
        if (!(r = new_obj(u, PK_DICT))) return -2;
        break;
    case PKG_REBUILD_PARAMETER: // (tensor, requires_grad, backward_hooks)
        if (args->n != 3 || args->items[0]->type != PK_TENSOR)
            return bad(u, "%s", "torch._utils._rebuild_parameter expects (tensor, requires_grad, hooks)");
        r = args->items[0];
        break;
    case PKG_REBUILD_TENSOR_V2: { // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
        rcv_pk **a = args->items;
        if (args->n < 6 || args->n > 7 || a[0]->type != PK_STORAGE || a[1]->type != PK_INT ||
            !is_int_tuple(a[2], RCV_PK_MAX_DIM) || !is_int_tuple(a[3], RCV_PK_MAX_DIM) || a[2]->n != a[3]->n)
            return bad(u, "%s",
                       "torch._utils._rebuild_tensor_v2 expects (storage, offset, size, stride, requires_grad, hooks"
                       "[, metadata]) with int tuples of equal length up to 8 for size and stride");
        if (!(r = new_obj(u, PK_TENSOR))) return -2;
        r->storage = a[0];
        r->dtype = a[0]->dtype;
        r->offset = a[1]->i;
        r->ndim = a[2]->n;
        for (int d = 0; d < r->ndim; d++) r->size[d] = a[2]->items[d]->i, r->stride[d] = a[3]->items[d]->i;
        break;
    }
    default:
        return bad(u, "on a non-allowlisted callable (%s: a storage class is only valid in a persistent id)",
                   f->s);
    }
    push(u, r);
    return 0;
}

// BINPERSID: ('storage', storage class, key, location, numel) -> a storage reference.
static int persid(unpickler *u) {
    rcv_pk *t = pop(u);
    if (!t) return bad(u, "%s", "BINPERSID with an empty stack");
    if (t->type != PK_TUPLE || t->n != 5 || t->items[0]->type != PK_STR || strcmp(t->items[0]->s, "storage") ||
        t->items[1]->type != PK_GLOBAL || t->items[1]->i != PKG_STORAGE || t->items[2]->type != PK_STR ||
        t->items[3]->type != PK_STR || t->items[4]->type != PK_INT || t->items[4]->i < 0)
        return bad(u, "%s",
                   "persistent id is not ('storage', torch.<Type>Storage, key, location, numel >= 0) as torch.save "
                   "writes");
    const rcv_pk *key = t->items[2];
    if (key->len == 0 || strlen(key->s) != key->len || key->len > 256 || strchr(key->s, '/') || strstr(key->s, ".."))
        return bad(u, "storage key '%.64s' is empty, too long, or holds a NUL, '/' or '..'", key->s);
    rcv_pk *s = new_obj(u, PK_STORAGE);
    if (!s) return -2;
    s->dtype = t->items[1]->dtype;
    s->s = rcv_xstrdup(key->s);
    s->len = key->len;
    s->numel = t->items[4]->i;
    push(u, s);
    return 0;
}

static int run(unpickler *u) {
    while (u->pos < u->len) {
        u->op_at = u->pos;
        int op = u->op = u->p[u->pos++];
        const uint8_t *a = u->p + u->pos;
        rcv_pk *o, *v, *k;
        int rc = 0;
        switch (op) {
        case 0x80: // PROTO
            if (need(u, 1)) return -1;
            if (a[0] > 5) return bad(u, "%s", "pickle protocol above 5");
            u->pos += 1;
            break;
        case 0x95: // FRAME: an 8-byte length; frames are only a buffering hint
            if (need(u, 8)) return -1;
            u->pos += 8;
            break;
        case '.': // STOP
            if (u->sp != 1 || u->n_marks) return bad(u, "%s", "STOP with other than one object on the stack");
            u->pk->root = u->stack[0];
            return 0;
        case '}': case ']': case ')': // EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE
            if (!(o = new_obj(u, op == '}' ? PK_DICT : op == ']' ? PK_LIST : PK_TUPLE))) { rc = -2; break; }
            push(u, o);
            break;
        case '(': // MARK
            if (u->n_marks == RCV_PK_MAX_MARKS) return bad(u, "%s", "MARKs nested deeper than 64");
            u->marks[u->n_marks++] = u->sp;
            break;
        case 't': { // TUPLE: everything above the mark
            if (!u->n_marks) return bad(u, "%s", "TUPLE without a MARK");
            int b = u->marks[--u->n_marks];
            if (!(o = new_obj(u, PK_TUPLE))) { rc = -2; break; }
            if ((u->n_items += (size_t)(u->sp - b)) > RCV_PK_MAX_ITEMS) { rc = -3; break; }
            for (int i = b; i < u->sp; i++) push_item(o, u->stack[i]);
            u->sp = b;
            push(u, o);
            break;
        }
        case 0x85: case 0x86: case 0x87: { // TUPLE1..3
            int n = op - 0x84;
            if (u->sp - base(u) < n) return bad(u, "%s", "TUPLEn with too few objects on the stack");
            if (!(o = new_obj(u, PK_TUPLE))) { rc = -2; break; }
            for (int i = u->sp - n; i < u->sp; i++) push_item(o, u->stack[i]);
            u->sp -= n;
            push(u, o);
            break;
        }
        case 'X': case 0x8c: { // BINUNICODE (u32 length), SHORT_BINUNICODE (u8)
            int w = op == 'X' ? 4 : 1;
            if (need(u, (size_t)w)) return -1;
            uint64_t n = rdle(a, w);
            u->pos += (size_t)w;
            if (need(u, n)) return -1;
            if (!(o = new_obj(u, PK_STR))) { rc = -2; break; }
            o->s = rcv_xmalloc((size_t)n + 1);
            memcpy(o->s, u->p + u->pos, (size_t)n);
            o->s[n] = 0;
            o->len = (size_t)n;
            u->pos += (size_t)n;
            push(u, o);
            break;
        }
        case 'J': case 'K': case 'M': { // BININT (i32), BININT1 (u8), BININT2 (u16)
            int w = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            if (need(u, (size_t)w)) return -1;
            if (!(o = new_obj(u, PK_INT))) { rc = -2; break; }
            uint64_t x = rdle(a, w);
            o->i = op == 'J' ? (int64_t)(int32_t)(uint32_t)x : (int64_t)x;
            u->pos += (size_t)w;
            push(u, o);
            break;
        }
        case 0x8a: { // LONG1: n-byte two's complement little-endian
            if (need(u, 1)) return -1;
            int n = a[0];
            if (n > 8) return bad(u, "%s", "integer wider than 64 bits");
            u->pos += 1;
            if (need(u, (size_t)n)) return -1;
            uint64_t x = rdle(u->p + u->pos, n);
            if (n && n < 8 && (x >> (8 * n - 1) & 1)) x |= ~(uint64_t)0 << (8 * n); // sign-extend
            if (!(o = new_obj(u, PK_INT))) { rc = -2; break; }
            o->i = (int64_t)x;
            u->pos += (size_t)n;
            push(u, o);
            break;
        }
        case 'G': { // BINFLOAT: big-endian double
            if (need(u, 8)) return -1;
            uint64_t x = 0;
            for (int i = 0; i < 8; i++) x = x << 8 | a[i];
            if (!(o = new_obj(u, PK_FLOAT))) { rc = -2; break; }
            memcpy(&o->f, &x, 8);
            u->pos += 8;
            push(u, o);
            break;
        }
        case 0x88: case 0x89: case 'N': // NEWTRUE, NEWFALSE, NONE
            if (!(o = new_obj(u, op == 'N' ? PK_NONE : PK_BOOL))) { rc = -2; break; }
            o->i = op == 0x88;
            push(u, o);
            break;
        case 's': // SETITEM
            v = pop(u), k = pop(u), o = pop(u);
            if (!o || o->type != PK_DICT) return bad(u, "%s", "SETITEM needs a dict, a key and a value");
            if ((u->n_items += 2) > RCV_PK_MAX_ITEMS) { rc = -3; break; }
            push_item(o, k), push_item(o, v);
            push(u, o);
            break;
        case 'u': { // SETITEMS: key/value pairs above the mark into the dict below it
            if (!u->n_marks) return bad(u, "%s", "SETITEMS without a MARK");
            int b = u->marks[--u->n_marks];
            if (b == 0 || (u->sp - b) % 2 || u->stack[b - 1]->type != PK_DICT)
                return bad(u, "%s", "SETITEMS needs a dict below the MARK and key/value pairs above it");
            if ((u->n_items += (size_t)(u->sp - b)) > RCV_PK_MAX_ITEMS) { rc = -3; break; }
            for (int i = b; i < u->sp; i++) push_item(u->stack[b - 1], u->stack[i]);
            u->sp = b;
            break;
        }
        case 'a': // APPEND
            v = pop(u), o = pop(u);
            if (!o || o->type != PK_LIST) return bad(u, "%s", "APPEND needs a list and a value");
            if ((u->n_items += 1) > RCV_PK_MAX_ITEMS) { rc = -3; break; }
            push_item(o, v);
            push(u, o);
            break;
        case 'e': { // APPENDS
            if (!u->n_marks) return bad(u, "%s", "APPENDS without a MARK");
            int b = u->marks[--u->n_marks];
            if (b == 0 || u->stack[b - 1]->type != PK_LIST) return bad(u, "%s", "APPENDS needs a list below the MARK");
            if ((u->n_items += (size_t)(u->sp - b)) > RCV_PK_MAX_ITEMS) { rc = -3; break; }
            for (int i = b; i < u->sp; i++) push_item(u->stack[b - 1], u->stack[i]);
            u->sp = b;
            break;
        }
        case 'q': case 'r': // BINPUT (u8), LONG_BINPUT (u32)
            if (need(u, op == 'q' ? 1 : 4)) return -1;
            rc = memo_put(u, rdle(a, op == 'q' ? 1 : 4));
            u->pos += op == 'q' ? 1 : 4;
            break;
        case 0x94: // MEMOIZE
            rc = memo_put(u, u->n_memo);
            break;
        case 'h': case 'j': // BINGET, LONG_BINGET
            if (need(u, op == 'h' ? 1 : 4)) return -1;
            rc = memo_get(u, rdle(a, op == 'h' ? 1 : 4));
            u->pos += op == 'h' ? 1 : 4;
            break;
        case 'c': { // GLOBAL "module\nname\n"
            const uint8_t *e1 = memchr(a, '\n', u->len - u->pos);
            const uint8_t *e2 = e1 ? memchr(e1 + 1, '\n', (size_t)(u->p + u->len - e1 - 1)) : NULL;
            if (!e2) return bad(u, "%s", "GLOBAL without two newline-terminated names (truncated pickle)");
            rc = global(u, (const char *)a, (size_t)(e1 - a), (const char *)e1 + 1, (size_t)(e2 - e1 - 1));
            u->pos = (size_t)(e2 + 1 - u->p);
            break;
        }
        case 0x93: // STACK_GLOBAL: module and name strings on the stack
            v = pop(u), k = pop(u);
            if (!v || !k || v->type != PK_STR || k->type != PK_STR)
                return bad(u, "%s", "STACK_GLOBAL needs two strings on the stack");
            rc = global(u, k->s, k->len, v->s, v->len);
            break;
        case 'R': rc = reduce(u); break;
        case 'Q': rc = persid(u); break;
        case 'b': // BUILD: OrderedDict's state (the state_dict's _metadata) is kept out of the tensors
            v = pop(u);
            if (!v || u->sp <= base(u) || u->stack[u->sp - 1]->type != PK_DICT)
                return bad(u, "%s", "BUILD on something other than a dict");
            break;
        case '0': // POP
            if (!pop(u)) return bad(u, "%s", "POP with an empty stack");
            break;
        case '1': // POP_MARK
            if (!u->n_marks) return bad(u, "%s", "POP_MARK without a MARK");
            u->sp = u->marks[--u->n_marks];
            break;
        case '2': // DUP
            if (u->sp <= base(u)) return bad(u, "%s", "DUP with an empty stack");
            push(u, u->stack[u->sp - 1]);
            break;
        default:
            return rcv_fail("%s: byte %zu: opcode 0x%02x (%s) is not allowed in a state dict; refusing the file, nothing "
                            "in it was run",
                            u->where, u->op_at, op, op_name(op));
        }
        if (rc == -2)
            return rcv_fail("%s: more than %d objects by byte %zu, expected a state dict", u->where, RCV_PK_MAX_OBJECTS,
                            u->op_at);
        if (rc == -3)
            return rcv_fail("%s: more than %d container entries by byte %zu, expected a state dict", u->where,
                            RCV_PK_MAX_ITEMS, u->op_at);
        if (rc) return -1;
        if (u->sp > RCV_PK_MAX_STACK) // each opcode pushes at most one
            return rcv_fail("%s: stack deeper than %d by byte %zu, expected a state dict", u->where, RCV_PK_MAX_STACK,
                            u->op_at);
    }
    return rcv_fail("%s: pickle ends at byte %zu without a STOP opcode (truncated)", u->where, u->len);
}

void rcv_pickle_free(rcv_pickle *pk) {
    if (!pk) return;
    for (int i = 0; i < pk->n_all; i++) {
        free(pk->all[i]->s);
        free(pk->all[i]->items);
        free(pk->all[i]);
    }
    free(pk->all);
    memset(pk, 0, sizeof *pk);
}

int rcv_pickle_load(rcv_pickle *pk, const uint8_t *p, size_t len, const char *where) {
    memset(pk, 0, sizeof *pk);
    unpickler u;
    memset(&u, 0, sizeof u);
    u.pk = pk;
    u.where = where;
    u.p = p;
    u.len = len;
    int rc = run(&u);
    free(u.stack);
    free(u.memo);
    if (rc) rcv_pickle_free(pk);
    return rc;
}
