// robustcv convert: a torch.save state dict (.pth/.pt) to safetensors, read without Python by
// the restricted reader of src/io/pth.c (nothing in the file is run). Tensors keep their names
// (less --prefix-strip), dtypes and shapes; strided views are written contiguous, like
// safetensors.torch.save_file(torch.load(f)).
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/pth.h"
#include "robustcv/safetensors.h"

int cli_convert(int argc, char **argv) {
    rcv_opt opts[] = {
        {"prefix-strip", "P", "remove prefix P from every tensor name that has it (default: 'module.' when every "
                              "name starts with it, as nn.DataParallel saves; '' keeps names as they are)", NULL},
        {"key", "NAME", "the state dict inside a checkpoint dict, e.g. state_dict (default: the top-level dict when "
                        "it holds tensors, else its one nested dict of tensors)", NULL},
        {"list", NULL, "print name, dtype and shape of every tensor; OUT is then optional", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[2];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "convert", "IN.pth OUT.safetensors [--prefix-strip P] [--key NAME]", pos,
                            &npos, 2);
    if (rc) return rc == 1 ? 0 : 2;
    int list = rcv_arg(opts, "list") != NULL;
    if (npos < 1 || (npos < 2 && !list)) {
        fprintf(stderr, "robustcv convert: usage: robustcv convert IN.pth OUT.safetensors [--prefix-strip P] [--key "
                        "NAME] [--list]\n");
        return 2;
    }
    rcv_pth_opts po = {rcv_arg(opts, "key"), rcv_arg(opts, "prefix-strip")};
    rcv_safetensors st;
    if (rcv_pth_open(&st, pos[0], &po)) {
        fprintf(stderr, "robustcv convert: %s\n", rcv_error());
        return 1;
    }
    size_t bytes = 0;
    for (int i = 0; i < st.n; i++) {
        const rcv_st_tensor *t = &st.t[i];
        bytes += t->end - t->begin;
        if (!list) continue;
        printf("%-48s %-5s [", t->name, rcv_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf("]\n");
    }
    rc = 0;
    if (npos == 2) {
        rcv_st_writer *w = rcv_st_writer_new();
        for (int i = 0; i < st.n; i++)
            rcv_st_add(w, st.t[i].name, st.t[i].dtype, st.t[i].ndim, st.t[i].shape, rcv_st_data(&st, &st.t[i]));
        rcv_st_add_meta(w, "format", "pt"); // what safetensors.torch.save_file writes
        if (rcv_st_write(w, pos[1])) {
            fprintf(stderr, "robustcv convert: %s\n", rcv_error());
            rc = 1;
        } else {
            fprintf(stderr, "convert: %d tensors, %.1f MB, %s -> %s\n", st.n, bytes / 1e6, pos[0], pos[1]);
        }
        rcv_st_writer_free(w);
    }
    rcv_st_close(&st);
    return rc;
}
