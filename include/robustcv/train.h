// Training, evaluation and checkpoints: what `robustcv train|eval|predict` run.
#ifndef RCV_TRAIN_H
#define RCV_TRAIN_H

#include <stdint.h>

#include "robustcv/data.h"
#include "robustcv/models.h"
#include "robustcv/optim.h"

typedef struct {
    char model[64];
    rcv_model_cfg mcfg;      // in_c/in_h/in_w/n_classes/mean/std come from the data
    char data[512];          // "fashion-mnist" or "fashion-mnist:/dir"
    int epochs, batch, eval_batch;
    rcv_optim_cfg opt;
    char sched[256];         // rcv_sched_parse spec
    float clip;              // gradient-norm clip, 0 = off
    float label_smoothing;
    uint64_t seed;
    char out_dir[512];
    int resume;
    int threads;             // 0 = OpenMP's default
    rcv_backend backend;
    int max_steps;           // stop after this many steps in total (tests), 0 = no limit
    int subset;              // use only the first `subset` train and test images, 0 = all
    int quiet;
    rcv_precision precision; // RCV_BF16: bf16 convolutions, fp32 master weights (--precision bf16)
    int profile;             // print the per-op time profile after training (--profile)
    // Data-parallel (mpirun -np N, dist.h): batch stays the global batch, each rank takes
    // its contiguous batch/N slice of every global batch of the one global permutation.
    int sync_bn;             // batchnorm statistics over all ranks' samples (--sync-bn)
    float bucket_mb;         // gradient allreduce bucket size in MiB (default 25)
} rcv_train_cfg;

void rcv_train_cfg_defaults(rcv_train_cfg *c);
// Trains, evaluating on the test split after each epoch; writes out_dir/last.safetensors
// (model, optimizer, RNG, epoch) atomically after each epoch and appends one JSON line per
// epoch to out_dir/metrics.jsonl. Returns 0 or -1 with a message.
// Under mpirun every rank runs this: rank 0 alone writes the checkpoint and metrics.
int rcv_train_run(const rcv_train_cfg *cfg);

// Evaluation of a built model on a dataset.
typedef struct {
    int n, n_classes;
    double top1, top5, loss; // fractions, mean cross-entropy
    int64_t *confusion;      // n_classes x n_classes, [true][pred]
} rcv_eval_result;
// Under mpirun each rank evaluates a contiguous 1/N of the dataset; the counts, loss and
// confusion matrix are summed, so every rank returns the whole dataset's result.
int rcv_evaluate(rcv_model *m, const rcv_dataset *d, int batch, rcv_backend backend, rcv_eval_result *r);
void rcv_eval_result_free(rcv_eval_result *r);

// Checkpoints (safetensors): the model's state_dict under torchvision names, plus
// "optim.m", "optim.v" (if an optimizer is given) and metadata: model name and
// config, classes, epoch, step, RNG state, optimizer config. Written atomically.
typedef struct {
    int epoch;       // completed epochs
    int64_t step;    // completed optimizer steps
    rcv_rng rng;     // training RNG after `epoch` epochs
    char **classes;  // n_classes names (may be NULL)
    int n_classes;
} rcv_ckpt_info;
int rcv_ckpt_save(const char *path, const rcv_model *m, const rcv_optim *o, const rcv_ckpt_info *info);
// Rebuilds the model named in the checkpoint and loads its weights. info may be NULL.
int rcv_ckpt_load_model(const char *path, rcv_model *m, rcv_ckpt_info *info);
// Restores optimizer state (kind and sizes must match). -1 with a message otherwise.
int rcv_ckpt_load_optim(const char *path, rcv_optim *o);
void rcv_ckpt_info_free(rcv_ckpt_info *info);

// Data source specs shared by every command: "fashion-mnist[:DIR]".
int rcv_data_open(const char *spec, int train, rcv_dataset *d);

#endif
