// robustcv: one command, one verb per file in src/cli/.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "robustcv/dist.h"
#include "robustcv/error.h"

static const struct {
    const char *verb;
    int (*run)(int argc, char **argv);
    const char *help;
} verbs[] = {
    {"train", cli_train, "train a model (checkpoints, resume, JSON-lines metrics)"},
    {"eval", cli_eval, "evaluate a checkpoint: top-1, top-5, loss, per-class accuracy, confusion matrix"},
    {"predict", cli_predict, "top-5 classes for image files"},
    {"attack", cli_attack, "adversarial attacks on a checkpoint: FGSM, PGD, DeepFool, UAP, generator, transfer"},
    {"search", cli_search, "random search over a training hyperparameter, with a leaderboard"},
    {"certify", cli_certify, "certified L2 robustness by randomized smoothing: radius per image, certified accuracy"},
    {"evaluate", cli_evaluate, "the robustness suite over checkpoints: noise, FGSM/PGD, symmetries, TTA, transfer, UAP, ECE"},
    {"run", cli_run, "the main job: train three models, evaluate, ensemble, explain, report"},
    {"models", cli_models, "list the models"},
    {"ensemble", cli_ensemble, "every subset of checkpoints: averaging (top-1/top-5) and majority vote (Table 2)"},
    {"explain", cli_explain, "CAM / Grad-CAM / Grad-CAM++ grids of the top-3 classes, first-layer filters"},
    {"report", cli_report, "RUN_DIR/results.json -> self-contained report.html and report.md"},
    {"denoise", cli_denoise, "write an NL-means denoised copy of an image tree (OpenCV-equivalent)"},
    {"corrupt", cli_corrupt, "write a Tiny-ImageNet-C tree: 15 corruptions x 5 severities"},
    {"convert", cli_convert, "a torch.save state dict (.pth) to safetensors, without Python; nothing in it is run"},
    {"serve", cli_serve, "Open Inference Protocol v2 server (REST), web page at /, Prometheus /metrics"},
    {"export", cli_export, "a checkpoint as an ONNX file (opset 17, dynamic batch, normalization inside)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: robustcv <verb> [options]   (robustcv <verb> --help for its options)\n\nverbs:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) fprintf(f, "  %-10s %s\n", verbs[i].verb, verbs[i].help);
}

// OpenMP's waiting policy. libgomp's default spins 300000 times before sleeping whenever a thread
// waits at a barrier; on cores shared with another busy process the spinning thread holds a core
// the working thread needs, and training steps got up to 10x slower. Passive waiting (sleep at
// once) fixed that but cost 28% on a quiet machine (1130 against 1560 img/s); spinning 100000
// times keeps the quiet speed within the noise (1514) and most of passive's gain when shared (594
// img/s against libgomp's 276 and passive's 692): bench/bench_contention.sh, README "Reliability".
// libgomp reads its environment once, when it is loaded (before main), so the default is set and
// the program re-executes itself once. A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT wins;
// RCV_OMP_REEXEC=0 keeps libgomp's own default.
static void omp_wait_policy_default(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    const char *re = getenv("RCV_OMP_REEXEC");
    if (re && !strcmp(re, "0")) return;
    if (setenv("GOMP_SPINCOUNT", "100000", 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT"); // exec failed: run on with the policy libgomp already has
}

int main(int argc, char **argv) {
    omp_wait_policy_default(argv);
    // A file-size limit (ulimit -f) makes write() fail with EFBIG, reported with the path,
    // instead of killing the program halfway through a checkpoint.
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(argv[1], verbs[i].verb)) {
            // Under mpirun every rank runs the verb (train and eval shard their work).
            if (rcv_dist_init(&argc, &argv)) {
                fprintf(stderr, "robustcv: %s\n", rcv_error());
                return 1;
            }
            int rc = verbs[i].run(argc - 1, argv + 1);
            if (rc && rcv_dist_size() > 1) rcv_dist_abort(rc); // the other ranks may be waiting on this one
            rcv_dist_finalize();
            return rc;
        }
    fprintf(stderr, "robustcv: unknown verb '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
