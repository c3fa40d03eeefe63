// robustcv models: every model with its parameter count and forward cost at an input size.
#include <stdio.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/models.h"

int cli_models(int argc, char **argv) {
    rcv_opt opts[] = {
        {"input", "CxHxW", "input size (default 3x64x64)", NULL},
        {"classes", "N", "classes (default 200)", NULL},
        {"small-input", NULL, "with each model's small-input stem", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos, classes = 200, c = 3, h = 64, w = 64;
    int rc = rcv_args_parse(argc, argv, opts, "models", "[--input CxHxW] [--classes N]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;
    if (rcv_arg_int(opts, "classes", &classes)) return 2;
    const char *in = rcv_arg(opts, "input");
    if (in && sscanf(in, "%dx%dx%d", &c, &h, &w) != 3) {
        fprintf(stderr, "robustcv models: --input '%s', expected CxHxW like 3x64x64\n", in);
        return 2;
    }
    int n;
    const char *const *names = rcv_model_names(&n);
    printf("input %dx%dx%d, %d classes; GMACs = forward multiply-adds of conv and linear layers per image,\n"
           "GFLOPs = 2 x GMACs (torchvision's 'GFLOPS' column lists the GMACs)\n", c, h, w, classes);
    printf("%-16s %14s %10s %10s\n", "model", "parameters", "GMACs", "GFLOPs");
    for (int i = 0; i < n; i++) {
        rcv_model_cfg cfg;
        rcv_model_cfg_defaults(&cfg);
        cfg.in_c = c;
        cfg.in_h = h;
        cfg.in_w = w;
        cfg.n_classes = classes;
        cfg.no_init = 1; // counting only: skip drawing 100M+ random weights
        cfg.small_input = rcv_arg(opts, "small-input") != NULL;
        rcv_model m;
        if (rcv_model_build(&m, names[i], &cfg)) {
            printf("%-16s %14s  (%s)\n", names[i], "-", rcv_error());
            continue;
        }
        double macs = rcv_model_macs(&m);
        printf("%-16s %14zu %10.3f %10.3f\n", names[i], rcv_graph_param_count(m.g), macs * 1e-9, 2 * macs * 1e-9);
        rcv_model_free(&m);
    }
    return 0;
}
