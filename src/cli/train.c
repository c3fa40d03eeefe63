// robustcv train: train a model; see --help.
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/error.h"
#include "robustcv/train.h"

int cli_parse_device(const char *v, rcv_backend *b) {
    if (!v || !strcmp(v, "cpu")) *b = RCV_BACKEND_CPU;
    else if (!strcmp(v, "ref")) *b = RCV_BACKEND_REF;
    else if (!strcmp(v, "cuda")) *b = RCV_BACKEND_CUDA;
    else {
        fprintf(stderr, "robustcv: --device '%s', expected cpu, ref or cuda\n", v);
        return -1;
    }
    return 0;
}

int cli_train(int argc, char **argv) {
    rcv_opt opts[] = {
        {"data", "SPEC", "data source: fashion-mnist[:DIR] (default fashion-mnist)", NULL},
        {"model", "NAME", "model name, see `robustcv models` (default smallcnn)", NULL},
        {"epochs", "N", "epochs (default 10)", NULL},
        {"batch", "N", "batch size (default 128), the global batch under mpirun (split evenly over ranks); the last "
                       "partial batch of an epoch is dropped", NULL},
        {"optimizer", "NAME", "sgd, adam or adamw (default sgd)", NULL},
        {"lr", "X", "base learning rate (default 0.1 for sgd, 1e-3 for adam/adamw)", NULL},
        {"momentum", "X", "SGD momentum (default 0.9)", NULL},
        {"nesterov", "0|1", "SGD Nesterov momentum (default 1)", NULL},
        {"weight-decay", "X", "weight decay (default 5e-4 sgd, 0 adam, 0.01 adamw)", NULL},
        {"schedule", "SPEC", "lr schedule: constant, step:step_size=15,gamma=0.1, multistep:milestones=30+60,gamma=0.1, "
                             "cosine:warmup=1,eta_min=0, cyclic:high=1e-4,low=1e-5,step_size=5 (default cosine:warmup=0)", NULL},
        {"clip", "X", "clip the gradient L2 norm to X (default off)", NULL},
        {"label-smoothing", "X", "cross-entropy label smoothing (default 0)", NULL},
        {"dropout", "P", "dropout before the classifier, where the model has one (default 0)", NULL},
        {"small-input", NULL, "ResNet stem for small images: 3x3 stride-1 conv, no max-pool", NULL},
        {"seed", "N", "random seed (default 0); same seed and threads give the same run", NULL},
        {"out", "DIR", "run directory for last.safetensors and metrics.jsonl (default runs/default)", NULL},
        {"resume", NULL, "continue from DIR/last.safetensors (weights, optimizer, epoch, RNG)", NULL},
        {"threads", "N", "threads per process (default: all cores; under mpirun, cores / ranks on the machine)", NULL},
        {"sync-bn", NULL, "under mpirun: batchnorm statistics over the whole global batch (all ranks)", NULL},
        {"bucket-mb", "X", "under mpirun: gradient allreduce bucket size in MiB (default 25)", NULL},
        {"device", "NAME", "cpu (oneDNN, default) or ref (reference kernels, slow)", NULL},
        {"max-steps", "N", "stop after N optimizer steps in total (default no limit)", NULL},
        {"subset", "N", "use only the first N train and N test images (quick experiments)", NULL},
        {"quiet", NULL, "no progress output", NULL},
        {"precision", "NAME", "fp32 (default) or bf16: bf16 convolutions with fp32 master weights (AVX512-BF16/AMX CPUs; "
                              "others fall back to fp32 with a message)", NULL},
        {"profile", NULL, "print where a training step's time goes, per op and per node, at the end", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, "train", "[options]", pos, &npos, 0);
    if (rc) return rc == 1 ? 0 : 2;

    rcv_train_cfg c;
    rcv_train_cfg_defaults(&c);
    const char *v;
    if ((v = rcv_arg(opts, "data"))) snprintf(c.data, sizeof c.data, "%s", v);
    if ((v = rcv_arg(opts, "model"))) snprintf(c.model, sizeof c.model, "%s", v);
    if ((v = rcv_arg(opts, "out"))) snprintf(c.out_dir, sizeof c.out_dir, "%s", v);
    if ((v = rcv_arg(opts, "schedule"))) snprintf(c.sched, sizeof c.sched, "%s", v);
    if ((v = rcv_arg(opts, "optimizer"))) {
        rcv_optim_kind k;
        if (!strcmp(v, "sgd")) k = RCV_OPT_SGD;
        else if (!strcmp(v, "adam")) k = RCV_OPT_ADAM;
        else if (!strcmp(v, "adamw")) k = RCV_OPT_ADAMW;
        else {
            fprintf(stderr, "robustcv train: --optimizer '%s', expected sgd, adam or adamw\n", v);
            return 2;
        }
        if (k != RCV_OPT_SGD) {
            c.opt = rcv_optim_defaults(k);
            c.opt.lr = 1e-3f;
        }
    }
    int nesterov = c.opt.nesterov, small = 0;
    unsigned long long seed = 0;
    if (rcv_arg_int(opts, "epochs", &c.epochs) || rcv_arg_int(opts, "batch", &c.batch) ||
        rcv_arg_float(opts, "lr", &c.opt.lr) || rcv_arg_float(opts, "momentum", &c.opt.momentum) ||
        rcv_arg_int(opts, "nesterov", &nesterov) || rcv_arg_float(opts, "weight-decay", &c.opt.weight_decay) ||
        rcv_arg_float(opts, "clip", &c.clip) || rcv_arg_float(opts, "label-smoothing", &c.label_smoothing) ||
        rcv_arg_float(opts, "dropout", &c.mcfg.dropout) || rcv_arg_u64(opts, "seed", &seed) ||
        rcv_arg_int(opts, "threads", &c.threads) || rcv_arg_int(opts, "max-steps", &c.max_steps) || rcv_arg_int(opts, "subset", &c.subset) ||
        rcv_arg_float(opts, "bucket-mb", &c.bucket_mb) ||
        cli_parse_device(rcv_arg(opts, "device"), &c.backend))
        return 2;
    if (rcv_arg(opts, "small-input")) small = 1;
    c.opt.nesterov = nesterov;
    c.mcfg.small_input = small;
    c.seed = seed;
    c.resume = rcv_arg(opts, "resume") != NULL;
    c.quiet = rcv_arg(opts, "quiet") != NULL;
    c.profile = rcv_arg(opts, "profile") != NULL;
    c.sync_bn = rcv_arg(opts, "sync-bn") != NULL;
    if (!(c.bucket_mb > 0)) {
        fprintf(stderr, "robustcv train: --bucket-mb %g, expected a positive size in MiB\n", c.bucket_mb);
        return 2;
    }
    if ((v = rcv_arg(opts, "precision"))) {
        if (!strcmp(v, "bf16")) c.precision = RCV_BF16;
        else if (strcmp(v, "fp32")) {
            fprintf(stderr, "robustcv train: --precision '%s', expected fp32 or bf16\n", v);
            return 2;
        }
    }
    if (rcv_train_run(&c)) {
        fprintf(stderr, "robustcv train: %s\n", rcv_error());
        return 1;
    }
    return 0;
}
