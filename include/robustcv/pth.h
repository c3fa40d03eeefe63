// PyTorch checkpoints written by torch.save (>= 1.6: a zip archive holding <folder>/data.pkl and
// <folder>/data/<key>), read without Python and without running anything: src/io/zip.c reads the
// archive, src/io/pickle.c is a restricted unpickler that only knows the opcodes and globals a
// state dict uses. The result is an rcv_safetensors in memory, so everything that takes a
// safetensors state dict (rcv_st_load_graph, --init, rcv_st_read_f32) takes a .pth the same way.
#ifndef RCV_PTH_H
#define RCV_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/safetensors.h"

typedef struct {
    // Key of the state dict inside a checkpoint dict ({"state_dict": {...}, "epoch": 3}); NULL or "":
    // the dict itself when it holds tensors, else the one nested dict of tensors (or one of
    // state_dict, model_state_dict, model, net, module, in that order), else an error listing the keys.
    const char *key;
    // Prefix removed from every name that has it (e.g. "module." from nn.DataParallel). NULL:
    // "module." when every name starts with it; "": none.
    const char *strip;
} rcv_pth_opts;

// Reads path into st: tensors keep their dtype (F32, F16, BF16, F64, I64, I32, U8, BOOL), shape
// and name; strided views are copied to contiguous order. o may be NULL (defaults). -1 names
// the file and what is wrong (a legacy pre-1.6 file gets how to re-save it).
int rcv_pth_open(rcv_safetensors *st, const char *path, const rcv_pth_opts *o);
// The same from memory (the bytes are copied); path names it in messages.
int rcv_pth_open_mem(rcv_safetensors *st, const uint8_t *buf, size_t len, const char *path, const rcv_pth_opts *o);
// 1 when buf starts like a torch.save file (zip "PK\3\4" or the legacy pickled magic number).
int rcv_pth_sniff(const uint8_t *buf, size_t len);
// A state dict from either format, told apart by the file's first bytes: torch.save
// (rcv_pth_open, default options) or safetensors (rcv_st_open).
int rcv_weights_open(rcv_safetensors *st, const char *path);

#endif
