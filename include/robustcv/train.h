// Training, evaluation and checkpoints: what `robustcv train|eval|predict` run.
#ifndef RCV_TRAIN_H
#define RCV_TRAIN_H

#include <stdint.h>

#include "robustcv/average.h"
#include "robustcv/data.h"
#include "robustcv/image.h"
#include "robustcv/loader.h"
#include "robustcv/mix.h"
#include "robustcv/models.h"
#include "robustcv/optim.h"
#include "robustcv/recipe.h"

// Transfer learning (src/train/transfer.c). A PREFIX names a module path: it matches a parameter
// "PREFIX.rest" or the name itself ("layer1" matches layer1.0.conv1.weight, not layer10.*).
typedef struct {
    char init[512];       // --init FILE.safetensors: a (torchvision) state_dict; "" = none
    char reset[256];      // --reset P1,P2: keep these at fresh initialisation (shape mismatch allowed)
    char freeze[512];     // --freeze P1,P2: no updates, batchnorm uses and keeps its running statistics
    char train_from[96];  // --train-from MODULE: freeze every parameter registered before MODULE's first
    char lr_mult[512];    // --lr-mult P=X,P=X: learning rate x X for those parameters
} rcv_finetune_cfg;

// Applies t to a freshly built model: loads t->init (tensors under a reset prefix are skipped;
// a shape mismatch elsewhere is an error naming the tensor and suggesting --reset; missing and
// unused tensors are listed on stderr unless quiet), then marks frozen parameters (and the
// batchnorm nodes whose weight is frozen: frozen_stats) and learning-rate multipliers.
// with_init = 0 skips the load (resuming from a checkpoint re-applies only freezing and rates).
// A prefix that matches no parameter is an error. 0 or -1 with a message.
int rcv_transfer_apply(rcv_model *m, const rcv_finetune_cfg *t, int with_init, int quiet);
// 1 when parameter name `name` lies under module prefix `prefix`.
int rcv_name_under(const char *name, const char *prefix);

typedef struct {
    char model[64];
    rcv_model_cfg mcfg;      // in_c/in_h/in_w/n_classes/mean/std come from the data
    char data[512];          // rcv_data_open spec: "fashion-mnist", "tiny-imagenet:/dir", ...
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
    int device;              // cuda device ordinal (default 0)
    rcv_precision precision; // --precision: bf16 on cpu (AMX) and cuda, tf32/fp16 on cuda (fp16: loss scaling)
    int max_steps;           // stop after this many steps in total (tests), 0 = no limit
    int subset;              // use only the first `subset` train and test images, 0 = all
    int quiet;
    int profile;             // print the per-op time profile after training (--profile)
    int loader_threads;      // batch-loading threads (default 2); 0 = load in the training thread
    // Per-sample transform of training images (augmentation), run on the loader threads
    // with rng = rcv_rng_fork(epoch stream, position in the epoch); NULL = none.
    rcv_sample_fn sample_fn;
    char augment[256];       // --augment: augmentation spec or preset (augment.h) when sample_fn is NULL
    void *sample_ctx;
    rcv_recipe_cfg recipe;   // how a step makes its gradients (recipe.h); default standard
    rcv_finetune_cfg transfer;
    // Data-parallel (mpirun -np N, dist.h): batch stays the global batch, each rank takes
    // its contiguous batch/N slice of every global batch of the one global permutation.
    int sync_bn;             // batchnorm statistics over all ranks' samples (--sync-bn)
    float bucket_mb;         // gradient allreduce bucket size in MiB (default 25)
    // Mixup/CutMix on each batch after the loader, soft-target CE with label_smoothing folded in
    // (mix.h); EMA and SWA of the weights (average.h). cpu/ref backends; mix: standard and
    // augment-curriculum recipes, no box models.
    rcv_mix_cfg mix;
    rcv_ema_cfg ema;         // writes out_dir/ema.safetensors each epoch, logs ema_test_*
    rcv_swa_cfg swa;         // writes out_dir/swa.safetensors (the average; at the end with update_bn)
} rcv_train_cfg;

void rcv_train_cfg_defaults(rcv_train_cfg *c);
// Trains, evaluating on the test split after each epoch; writes out_dir/last.safetensors
// (model, optimizer, RNG, epoch) atomically after each epoch and appends one JSON line per
// epoch to out_dir/metrics.jsonl. With a cyclic schedule it also writes
// out_dir/snapshot_K.safetensors at the end of cycle K (1, 2, ...: snapshot ensembles).
// Under mpirun every rank runs this: rank 0 alone writes the checkpoints and metrics.
// Returns 0 or -1 with a message.
int rcv_train_run(const rcv_train_cfg *cfg);

// Evaluation of a built model on a dataset.
typedef struct {
    int n, n_classes;
    double top1, top5, loss; // fractions, mean cross-entropy
    int64_t *confusion;      // n_classes x n_classes, [true][pred]
    // NAME+box models on data with boxes (else box_n = 0), boxes normalised by the image size
    // (rcv_boxes_normalize) and compared with the predicted box (the "box.sigmoid" node):
    int box_n;               // images scored (= n)
    double box_iou;          // mean rcv_box_iou (metrics.h)
    double box_iou50;        // fraction with IoU >= 0.5
    double box_loss;         // mean smooth-L1 (beta 1) over the 4 coordinates, the "loss_box" term
} rcv_eval_result;
// Under mpirun each rank evaluates a contiguous 1/N of the dataset; the counts, loss and
// confusion matrix are summed, so every rank returns the whole dataset's result. A box model on
// data without boxes is scored on classification only (box_n = 0).
int rcv_evaluate(rcv_model *m, const rcv_dataset *d, int batch, rcv_backend backend, rcv_eval_result *r);
void rcv_eval_result_free(rcv_eval_result *r);
// Logits of images [0, n) of d (n <= d->n; n <= 0 = all) in eval mode: out (n, n_classes), the
// plain input for metrics.h and ensemble.h. Batches of `batch`, the last one zero-padded.
int rcv_predict_logits(rcv_model *m, const rcv_dataset *d, int n, int batch, rcv_backend backend, float *out);
// The loop under it (and under suite.h's rcv_model_logits): eval-mode logits out (n, n_classes)
// of n inputs that fill(ctx, s, nb, x) writes, images [s, s + nb) to x (nb, H, W, C) in host
// memory. Plans the model for (batch, backend) unless it already is; a cuda plan goes through
// a host staging buffer. 0, or -1 with a message.
typedef void (*rcv_fill_fn)(void *ctx, int s, int nb, float *x);
int rcv_logits_batched(rcv_model *m, int n, int batch, rcv_backend backend, rcv_fill_fn fill, void *ctx,
                       float *out);
// An image file's pixels as the model's input: converted to its channel count (gray: PIL's
// luma; RGB), resized bilinearly to its size, scaled to [0, 1] into x (H, W, C). *shown (may
// be NULL) receives the 8-bit image the model sees (caller frees).
void rcv_image_to_input(const rcv_image *img, const rcv_model_cfg *c, float *x, rcv_image *shown);

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


#endif
