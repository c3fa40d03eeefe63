// robustcv train: train a model; see --help.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "robustcv/augment.h"
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
    // Ask the device now, before any data is read: no GPU or driver is a clear error, exit 1.
    if (rcv_backend_check(*b)) {
        fprintf(stderr, "robustcv: --device %s: %s\n", v, rcv_error());
        exit(1);
    }
    return 0;
}

int cli_parse_precision(const char *v, rcv_precision *p) {
    *p = RCV_PREC_FP32;
    if (v && rcv_precision_parse(v, p)) {
        fprintf(stderr, "robustcv: --precision: %s\n", rcv_error());
        return -1;
    }
    return 0;
}

// Parses the train options into c (defaults first). 0, 1 (--help printed) or 2 (usage error printed).
int cli_train_config(int argc, char **argv, const char *verb, const char *synopsis, rcv_train_cfg *c_out) {
    rcv_opt opts[] = {
        {"data", "SPEC", "data source (default fashion-mnist): fashion-mnist[:DIR], tiny-imagenet:PATH[:size=N][:skip-bad], "
                         "folder:PATH[:size=N][:gray][:skip-bad]; decoded images are cached (no-cache, cache=DIR; "
                         "default $RCV_CACHE_DIR or ~/.cache/robustcv)", NULL},
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
        {"dropout", "P", "dropout before the classifier (default: the model's own, VGG 0.5, others none)", NULL},
        {"small-input", NULL, "stem for small images: ResNet/DenseNet/attention 3x3 stride-1 conv and no max-pool, "
                              "VGG without its last max-pool", NULL},
        {"gamma", "X", "ResNet-D geometric residual decay (seed paper: 0.04278; default 0 = plain ResNet)", NULL},
        {"box-lambda", "X", "NAME+box models: loss = cross-entropy + X * smooth-L1 of the box (default 1); the data "
                            "must carry boxes (tiny-imagenet)", NULL},
        {"init", "FILE", "start from a (torchvision) state_dict: a torch.save file (.pth, e.g. torchvision's "
                         "resnet18-f37072fd.pth; read without Python, nothing in it is run) or safetensors, e.g. from "
                         "PyTorch: save_file(m.state_dict(), 'r18.safetensors')", NULL},
        {"reset", "PREFIXES", "comma list of modules kept at fresh initialisation, e.g. fc (new class count)", NULL},
        {"freeze", "PREFIXES", "comma list of modules not trained; their batchnorm uses running statistics", NULL},
        {"train-from", "MODULE", "freeze every module registered before MODULE, e.g. layer2", NULL},
        {"lr-mult", "P=X,...", "learning-rate multiplier per module prefix, e.g. fc=10,layer4=2", NULL},
        {"seed", "N", "random seed (default 0); same seed and threads give the same run", NULL},
        {"out", "DIR", "run directory for last.safetensors and metrics.jsonl (default runs/default)", NULL},
        {"resume", NULL, "continue from DIR/last.safetensors (weights, optimizer, epoch, RNG)", NULL},
        {"threads", "N", "threads per process (default: all cores; under mpirun, cores / ranks on the machine)", NULL},
        {"loader-threads", "N", "threads preparing batches ahead (default 2; 0 = none); results do not depend on it", NULL},
        {"sync-bn", NULL, "under mpirun: batchnorm statistics over the whole global batch (all ranks)", NULL},
        {"bucket-mb", "X", "under mpirun: gradient allreduce bucket size in MiB (default 25)", NULL},
        {"device", "NAME", "cpu (oneDNN, default), ref (reference kernels, slow) or cuda (GPU 0; RCV_CUDA_DEVICE picks another)", NULL},
        {"max-steps", "N", "stop after N optimizer steps in total (default no limit)", NULL},
        {"subset", "N", "use only the first N train and N test images (quick experiments)", NULL},
        {"quiet", NULL, "no progress output", NULL},
        {"precision", "P", "fp32 (default), bf16 (cpu: AVX512-BF16/AMX convolutions; cuda), tf32 or fp16 (cuda; fp16 adds "
                           "dynamic loss scaling); weights, gradients and optimizer state stay fp32; unsupported choices "
                           "fall back to fp32 with a message", NULL},
        {"profile", NULL, "print where a training step's time goes, per op and per node, at the end", NULL},
        {"recipe", "NAME", "standard, augment-curriculum, fgsm, kurakin, stability, augmix, pgd, trades or noise "
                           "(default standard; docs/attacks.md)", NULL},
        {"raw-epochs", "N", "augment-curriculum: epochs on raw data before augmenting (default 5)", NULL},
        {"augment", "SPEC", "augmentation pipeline, e.g. hflip:p=0.5,crop:pad=4,erase:value=random or the "
                            "policies autoaugment:policy=imagenet, randaugment:num_ops=2:magnitude=9, trivialaugment, "
                            "or a preset such as "
                            "seed-fce (robustcv train --augment help lists them); every epoch, or from --raw-epochs "
                            "on with augment-curriculum (default there: seed-fce)", NULL},
        {"fgsm-alpha", "X", "fgsm: weight of the clean loss (default 0.5)", NULL},
        {"adv-eps", "X", "fgsm, kurakin: FGSM eps in pixels (default 0.2 * std: the seed's 0.2 on normalized inputs)", NULL},
        {"adv-k", "K", "kurakin: adversarial images per batch (default batch / 2: the seed's 16 of 32)", NULL},
        {"lambda", "X", "kurakin: weight of the adversarial losses (default 0.5)", NULL},
        {"stability-alpha", "X", "stability: KL weight (default 0.01)", NULL},
        {"stability-sigma", "X", "stability: Gaussian noise std in normalized units (default 0.1)", NULL},
        {"jsd-lambda", "X", "augmix: Jensen-Shannon weight (default 12)", NULL},
        {"augmix-width", "N", "augmix: chains (default 3)", NULL},
        {"augmix-depth", "N", "augmix: ops per chain, 0 = random 1..3 (default 0)", NULL},
        {"augmix-severity", "N", "augmix: op severity 1..10 (default 3)", NULL},
        {"pgd-eps", "X", "pgd: L-inf eps in pixels (default 0.1)", NULL},
        {"pgd-alpha", "X", "pgd: step (default eps / 4)", NULL},
        {"pgd-steps", "N", "pgd: steps (default 7)", NULL},
        {"pgd-random-start", "0|1", "pgd: random start (default 1)", NULL},
        {"trades-beta", "X", "trades: weight of the KL term (default 6)", NULL},
        {"trades-eps", "X", "trades: L-inf eps of the inner maximisation in pixels (default 0.031)", NULL},
        {"trades-step", "X", "trades: inner step size in pixels (default 0.007)", NULL},
        {"trades-steps", "N", "trades: inner steps (default 10)", NULL},
        {"noise-sigma", "X", "noise: Gaussian noise std in pixels, not clamped (default 0.25)", NULL},
        {"mixup", "A", "Mixup with lam ~ Beta(A, A) on each batch, soft-target cross-entropy, --label-smoothing folded "
                       "into the targets (timm's Mixup; default 0 = off; timm's recipes use 0.8; docs/mix.md)", NULL},
        {"cutmix", "A", "CutMix with lam ~ Beta(A, A), lam corrected by the clipped box (default 0 = off; timm's "
                        "recipes use 1.0)", NULL},
        {"cutmix-minmax", "MIN,MAX", "CutMix box side uniform in [MIN, MAX) of the image side instead of from lam "
                                     "(default off)", NULL},
        {"mix-prob", "P", "probability a batch / pair / image is mixed (default 1)", NULL},
        {"mix-switch-prob", "P", "with both --mixup and --cutmix: probability of CutMix (default 0.5)", NULL},
        {"mix-mode", "MODE", "batch (one draw per batch), pair or elem (default batch)", NULL},
        {"mix-correct-lam", "0|1", "CutMix lam from the clipped box area (default 1)", NULL},
        {"ema", "D", "keep an EMA of the weights with decay D (e.g. 0.9999), updated after each step, evaluated and "
                     "saved as DIR/ema.safetensors every epoch (default off)", NULL},
        {"ema-warmup", NULL, "EMA decay warm-up: min(D, 1 - (1 + (step - 1) / gamma)^-power), timm's ModelEmaV3 "
                             "(default off: D from the second step, the first copies)", NULL},
        {"ema-warmup-gamma", "X", "EMA warm-up gamma (default 1)", NULL},
        {"ema-warmup-power", "X", "EMA warm-up power (default 0.6667)", NULL},
        {"swa-start", "E", "stochastic weight averaging after E epochs: SWALR to --swa-lr, the average of the weights at "
                           "the end of each later epoch, batchnorm statistics recomputed at the end; "
                           "DIR/swa.safetensors (default off)", NULL},
        {"swa-lr", "X", "SWA learning rate (required with --swa-start)", NULL},
        {"swa-anneal-epochs", "N", "epochs of cosine annealing from the schedule's lr to --swa-lr (default 10, "
                                   "torch's SWALR; 0 = at once)", NULL},
        {NULL, NULL, NULL, NULL},
    };
    const char *pos[1];
    int npos;
    int rc = rcv_args_parse(argc, argv, opts, verb, synopsis, pos, &npos, 0);
    if (rc) return rc;

    rcv_train_cfg c;
    rcv_train_cfg_defaults(&c);
    rcv_recipe_cfg *rp = &c.recipe;
    const char *v;
    if (rcv_arg_str(opts, "data", c.data, sizeof c.data) || rcv_arg_str(opts, "model", c.model, sizeof c.model) ||
        rcv_arg_str(opts, "out", c.out_dir, sizeof c.out_dir) ||
        rcv_arg_str(opts, "schedule", c.sched, sizeof c.sched) ||
        rcv_arg_str(opts, "init", c.transfer.init, sizeof c.transfer.init) ||
        rcv_arg_str(opts, "reset", c.transfer.reset, sizeof c.transfer.reset) ||
        rcv_arg_str(opts, "freeze", c.transfer.freeze, sizeof c.transfer.freeze) ||
        rcv_arg_str(opts, "train-from", c.transfer.train_from, sizeof c.transfer.train_from) ||
        rcv_arg_str(opts, "lr-mult", c.transfer.lr_mult, sizeof c.transfer.lr_mult))
        return 2;
    if ((v = rcv_arg(opts, "optimizer"))) {
        rcv_optim_kind k;
        if (!strcmp(v, "sgd")) k = RCV_OPT_SGD;
        else if (!strcmp(v, "adam")) k = RCV_OPT_ADAM;
        else if (!strcmp(v, "adamw")) k = RCV_OPT_ADAMW;
        else {
            fprintf(stderr, "robustcv %s: --optimizer '%s', expected sgd, adam or adamw\n", verb, v);
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
        rcv_arg_int(opts, "threads", &c.threads) || rcv_arg_int(opts, "loader-threads", &c.loader_threads) || rcv_arg_int(opts, "max-steps", &c.max_steps) || rcv_arg_int(opts, "subset", &c.subset) ||
        cli_parse_device(rcv_arg(opts, "device"), &c.backend) || rcv_arg_float(opts, "gamma", &c.mcfg.gamma) ||
        rcv_arg_float(opts, "box-lambda", &c.mcfg.box_lambda) ||
        rcv_arg_int(opts, "raw-epochs", &rp->raw_epochs) || rcv_arg_float(opts, "fgsm-alpha", &rp->fgsm_alpha) ||
        rcv_arg_float(opts, "adv-eps", &rp->adv_eps) || rcv_arg_int(opts, "adv-k", &rp->adv_k) ||
        rcv_arg_float(opts, "lambda", &rp->lambda) || rcv_arg_float(opts, "stability-alpha", &rp->stab_alpha) ||
        rcv_arg_float(opts, "stability-sigma", &rp->stab_sigma) || rcv_arg_float(opts, "jsd-lambda", &rp->jsd_lambda) ||
        rcv_arg_int(opts, "augmix-width", &rp->augmix.width) || rcv_arg_int(opts, "augmix-depth", &rp->augmix.depth) ||
        rcv_arg_int(opts, "augmix-severity", &rp->augmix.severity) || rcv_arg_float(opts, "pgd-eps", &rp->pgd_eps) ||
        rcv_arg_float(opts, "pgd-alpha", &rp->pgd_alpha) || rcv_arg_int(opts, "pgd-steps", &rp->pgd_steps) ||
        rcv_arg_int(opts, "pgd-random-start", &rp->pgd_random_start) ||
        rcv_arg_float(opts, "trades-beta", &rp->trades_beta) || rcv_arg_float(opts, "trades-eps", &rp->trades_eps) ||
        rcv_arg_float(opts, "trades-step", &rp->trades_step) || rcv_arg_int(opts, "trades-steps", &rp->trades_steps) ||
        rcv_arg_float(opts, "noise-sigma", &rp->noise_sigma) ||
        cli_parse_precision(rcv_arg(opts, "precision"), &c.precision) ||
        rcv_arg_float(opts, "bucket-mb", &c.bucket_mb) || rcv_arg_float(opts, "mixup", &c.mix.mixup_alpha) ||
        rcv_arg_float(opts, "cutmix", &c.mix.cutmix_alpha) || rcv_arg_float(opts, "mix-prob", &c.mix.prob) ||
        rcv_arg_float(opts, "mix-switch-prob", &c.mix.switch_prob) ||
        rcv_arg_int(opts, "mix-correct-lam", &c.mix.correct_lam) || rcv_arg_float(opts, "ema", &c.ema.decay) ||
        rcv_arg_float(opts, "ema-warmup-gamma", &c.ema.warmup_gamma) ||
        rcv_arg_float(opts, "ema-warmup-power", &c.ema.warmup_power) || rcv_arg_int(opts, "swa-start", &c.swa.start) ||
        rcv_arg_float(opts, "swa-lr", &c.swa.lr) || rcv_arg_int(opts, "swa-anneal-epochs", &c.swa.anneal_epochs))
        return 2;
    c.ema.warmup = rcv_arg(opts, "ema-warmup") != NULL;
    if ((v = rcv_arg(opts, "cutmix-minmax"))) {
        char *end;
        c.mix.cutmix_minmax[0] = strtof(v, &end);
        if (*end != ',' || (c.mix.cutmix_minmax[1] = strtof(end + 1, &end), *end) ||
            !(c.mix.cutmix_minmax[0] < c.mix.cutmix_minmax[1])) {
            fprintf(stderr, "robustcv %s: --cutmix-minmax '%s': expected MIN,MAX with 0 <= MIN < MAX <= 1\n", verb, v);
            return 2;
        }
    }
    if (((v = rcv_arg(opts, "mix-mode")) && rcv_mix_mode_parse(v, &c.mix.mode)) || rcv_mix_check(&c.mix) ||
        rcv_ema_check(&c.ema) || rcv_swa_check(&c.swa, c.epochs)) {
        fprintf(stderr, "robustcv %s: %s\n", verb, rcv_error());
        return 2;
    }
    if (c.mix.correct_lam != 0 && c.mix.correct_lam != 1) {
        fprintf(stderr, "robustcv %s: --mix-correct-lam %d, expected 0 or 1\n", verb, c.mix.correct_lam);
        return 2;
    }
    if ((v = rcv_arg(opts, "recipe")) && rcv_recipe_parse(v, &rp->kind)) {
        fprintf(stderr, "robustcv %s: %s\n", verb, rcv_error());
        return 2;
    }
    if (rcv_recipe_check(rp)) {
        fprintf(stderr, "robustcv %s: %s\n", verb, rcv_error());
        return 2;
    }
    if ((v = rcv_arg(opts, "augment"))) {
        if (!strcmp(v, "help")) {
            fputs(rcv_augment_help(), stdout);
            return 1;
        }
        if (rcv_arg_str(opts, "augment", c.augment, sizeof c.augment)) return 2;
    }
    if (rcv_arg(opts, "small-input")) small = 1;
    if ((v = getenv("RCV_CUDA_DEVICE")) && *v) c.device = atoi(v);
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
    *c_out = c;
    return 0;
}

int cli_train(int argc, char **argv) {
    rcv_train_cfg c;
    int rc = cli_train_config(argc, argv, "train", "[options]", &c);
    if (rc) return rc == 1 ? 0 : 2;
    if (rcv_train_run(&c)) {
        const char *e = rcv_error(); // the library's "train: ..." without saying train twice
        fprintf(stderr, "robustcv train: %s\n", strncmp(e, "train: ", 7) ? e : e + 7);
        return 1;
    }
    return 0;
}
