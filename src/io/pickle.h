// A restricted unpickler for torch.save's data.pkl (internal to src/io/pth.c and the fuzz target).
// It builds plain values and never calls anything: the only globals it accepts are the
// allow-listed names below, and REDUCE on them builds the value a state dict needs
// (OrderedDict -> dict, _rebuild_tensor_v2 / _rebuild_parameter -> a tensor view record).
// Any other opcode or global fails with a message naming it.
#ifndef RCV_PICKLE_H
#define RCV_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/safetensors.h"

typedef enum { PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL, PK_STORAGE, PK_TENSOR } rcv_pk_type;

// Allow-listed globals.
enum { PKG_ORDERED_DICT, PKG_REBUILD_TENSOR_V2, PKG_REBUILD_PARAMETER, PKG_STORAGE };

#define RCV_PK_MAX_DIM 8

typedef struct rcv_pk rcv_pk;
struct rcv_pk {
    rcv_pk_type type;
    int64_t i;        // BOOL, INT; GLOBAL: which PKG_*
    double f;         // FLOAT
    char *s;          // STR (NUL-terminated; len bytes, may hold a NUL); STORAGE: its key
    size_t len;
    rcv_pk **items;   // TUPLE, LIST; DICT: key k at items[2k], value at items[2k + 1]
    int n, cap;       // items (DICT: 2 * pairs)
    rcv_dtype dtype;  // GLOBAL PKG_STORAGE, STORAGE, TENSOR
    int64_t numel;    // STORAGE: elements
    rcv_pk *storage;  // TENSOR: its STORAGE
    int64_t offset;   // TENSOR: storage offset in elements
    int ndim;
    int64_t size[RCV_PK_MAX_DIM], stride[RCV_PK_MAX_DIM];
};

typedef struct {
    rcv_pk *root;
    rcv_pk **all; // every object made, freed together
    int n_all, cap_all;
} rcv_pickle;

// Parses a pickle. where names it in messages ("x.pth: archive/data.pkl"). -1 names the byte offset,
// the opcode or global refused, or the limit exceeded.
int rcv_pickle_load(rcv_pickle *pk, const uint8_t *p, size_t len, const char *where);
void rcv_pickle_free(rcv_pickle *pk);
const char *rcv_pk_type_name(rcv_pk_type t);

#endif
