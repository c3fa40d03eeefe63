// libFuzzer target for the .pth reader (src/io/zip.c, pickle.c, pth.c): the input is tried both
// as a whole torch.save archive and as a bare data.pkl. Whatever loads must describe tensors
// inside the buffer it returns; every byte of them is read (the sanitizers check the bounds).
// FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION (libFuzzer's convention) turns off the zip CRC-32
// check, so mutations inside data.pkl and the storages reach the unpickler and tensor checks.
//
// Build by hand (the lead wires it into CMake):
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
//     -Iinclude -Isrc tests/fuzz/fuzz_pth.c src/io/pth.c src/io/pickle.c src/io/zip.c
//     src/io/safetensors.c src/io/json.c src/io/fileio.c src/core/error.c -lz -lm -o fuzz_pth
//   ./fuzz_pth -max_len=65536 CORPUS_DIR   (seed it with small torch.save files: tests/oracle/pth_ref.py cases DIR X)
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/pickle.h"
#include "robustcv/pth.h"
#include "robustcv/safetensors.h"

static volatile float sink; // keeps the reads of tensor data

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rcv_pickle pk;
    if (rcv_pickle_load(&pk, data, size, "fuzz: data.pkl") == 0) rcv_pickle_free(&pk);
    rcv_safetensors st;
    if (rcv_pth_open_mem(&st, data, size, "fuzz.pth", NULL) == 0) {
        for (int i = 0; i < st.n; i++) {
            const rcv_st_tensor *t = &st.t[i];
            if (t->end > st.data_len || t->end - t->begin != t->numel * rcv_dtype_size(t->dtype)) abort();
            float *f = malloc((t->numel ? t->numel : 1) * sizeof(float));
            rcv_st_convert_f32(t->dtype, rcv_st_data(&st, t), f, t->numel);
            for (size_t k = 0; k < t->numel; k++) sink += f[k];
            free(f);
        }
        rcv_st_close(&st);
    }
    return 0;
}
