// robustcv export: a checkpoint as a file other runtimes load. ONNX only (onnx.h): opset 17 by
// default, batch dimension symbolic, the model's normalization inside, eval mode.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/onnx.h"
#include "robustcv/train.h"

int cli_export(int argc, char **argv) {
    rcv_opt opts[] = {
        {"checkpoint", "FILE", "checkpoint written by `robustcv train` (required)", NULL},
        {"format", "NAME", "output format: onnx (the default and only one)", NULL},
        {"out", "FILE", "file to write, e.g. model.onnx (required); written atomically", NULL},
        {"opset", "N", "ONNX opset of the default domain, 13..17 (default 17; IR version 8)", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, opset = RCV_ONNX_OPSET_DEFAULT;
    int rc = rcv_args_parse(argc, argv, opts, "export", "--checkpoint FILE --out model.onnx [--format onnx]", pos,
                            &npos, 1);
    if (rc) return rc == 1 ? 0 : 2;
    const char *ck = rcv_arg(opts, "checkpoint"), *out = rcv_arg(opts, "out"), *fmt = rcv_arg(opts, "format");
    if (npos) {
        fprintf(stderr, "robustcv export: unexpected argument '%s'; usage: robustcv export --checkpoint FILE --out "
                        "model.onnx\n", pos[0]);
        return 2;
    }
    if (!ck || !out) {
        fprintf(stderr, "robustcv export: %s is required; usage: robustcv export --checkpoint FILE --out model.onnx\n",
                !ck ? "--checkpoint FILE" : "--out FILE");
        return 2;
    }
    if (fmt && strcmp(fmt, "onnx")) {
        fprintf(stderr, "robustcv export: --format '%s', expected onnx\n", fmt);
        return 2;
    }
    if (rcv_arg_int(opts, "opset", &opset)) return 2;
    if (opset < RCV_ONNX_OPSET_MIN || opset > RCV_ONNX_OPSET_MAX) {
        fprintf(stderr, "robustcv export: --opset %d, expected %d..%d\n", opset, RCV_ONNX_OPSET_MIN,
                RCV_ONNX_OPSET_MAX);
        return 2;
    }
    rcv_model m;
    if (rcv_ckpt_load_model(ck, &m, NULL)) {
        fprintf(stderr, "robustcv export: %s\n", rcv_error());
        return 1;
    }
    uint8_t *data;
    size_t len;
    rc = rcv_onnx_encode(&m, opset, &data, &len);
    if (!rc) rc = rcv_file_write_atomic(out, data, len);
    free(data);
    if (rc) {
        fprintf(stderr, "robustcv export: %s\n", rcv_error());
    } else {
        printf("%s: ONNX opset %d (IR 8), model %s, input \"input\" (N, %d, %d, %d) in [0, 1] normalized inside, "
               "output \"logits\" (N, %d)%s; %.1f MB\n",
               out, opset, m.name, m.cfg.in_c, m.cfg.in_h, m.cfg.in_w, m.cfg.n_classes,
               m.box >= 0 ? ", \"boxes\" (N, 4)" : "", (double)len / 1e6);
    }
    rcv_model_free(&m);
    return rc ? 1 : 0;
}
