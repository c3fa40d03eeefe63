// Optimizers (SGD with momentum/nesterov, Adam, AdamW) over a graph's parameter
// buffer, learning-rate schedules, and gradient-norm clipping, with PyTorch's
// semantics (torch.optim, torch.optim.lr_scheduler, clip_grad_norm_).
#ifndef RCV_OPTIM_H
#define RCV_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/graph.h"

typedef enum { RCV_OPT_SGD, RCV_OPT_ADAM, RCV_OPT_ADAMW } rcv_optim_kind;

typedef struct {
    rcv_optim_kind kind;
    float lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    int nesterov;
} rcv_optim_cfg;

// PyTorch's defaults: SGD lr 0.01 (torch has none), momentum 0, dampening 0, wd 0; Adam lr 1e-3,
// betas (0.9, 0.999), eps 1e-8, wd 0; AdamW the same with wd 0.01.
rcv_optim_cfg rcv_optim_defaults(rcv_optim_kind kind);
const char *rcv_optim_name(rcv_optim_kind kind); // "sgd", "adam", "adamw"
int rcv_optim_parse_kind(const char *name, rcv_optim_kind *kind); // -1 naming the valid ones

typedef struct {
    rcv_optim_cfg cfg;
    size_t n;        // floats (graph->n_param_floats)
    float *m, *v;    // SGD: m = momentum buffer (NULL without momentum); Adam: exp_avg, exp_avg_sq
    int64_t step;    // completed steps
    void *dev;       // device copy of m/v, made by the first step on a cuda-planned graph; then the
                     // current one (rcv_optim_sync_host brings it back; checkpoints call it)
} rcv_optim;

// Allocates the state (zeros) for n parameter floats. -1 on a bad config (negative lr, betas
// outside [0,1), nesterov without momentum or with dampening, ...).
int rcv_optim_init(rcv_optim *o, const rcv_optim_cfg *cfg, size_t n);
void rcv_optim_free(rcv_optim *o);
// One update of every RCV_PARAM that is not frozen, from g->grads, with learning rate
// lr * param_info[i].lr_mult. State is per element, so o->step counts steps for all parameters
// together: momentum buffers start as the first gradient (step 0) and Adam's bias correction
// uses o->step + 1. -1 (nothing changed) when g's parameter count differs from o->n.
// On a cuda-planned graph the update runs on the GPU (g->dparams, g->dgrads, device m/v).
int rcv_optim_step(rcv_optim *o, rcv_graph *g, float lr);
// Device m/v -> host o->m, o->v (no-op without device state); and host -> device after the
// host arrays were written (rcv_ckpt_load_optim calls it).
void rcv_optim_sync_host(const rcv_optim *o);
void rcv_optim_sync_device(rcv_optim *o);

// The per-element updates, for callers with their own buffers. `step` is the 1-based step number.
void rcv_sgd_update(float *p, const float *grad, float *buf, size_t n, float lr, float momentum, float dampening,
                    float wd, int nesterov, int first);
void rcv_adam_update(float *p, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                     float eps, float wd, int decoupled, int64_t step);

// --- learning-rate schedules ---
typedef enum { RCV_SCHED_CONSTANT, RCV_SCHED_STEP, RCV_SCHED_MULTISTEP, RCV_SCHED_COSINE, RCV_SCHED_CYCLIC } rcv_sched_kind;
#define RCV_SCHED_MAX_MILESTONES 16

typedef struct {
    rcv_sched_kind kind;
    int step_size;        // step (StepLR) and cyclic
    float gamma;          // step, multistep
    int milestones[RCV_SCHED_MAX_MILESTONES];
    int n_milestones;
    double warmup;        // cosine: epochs of linear warmup from warmup_start * base_lr to base_lr
    float warmup_start;
    double t_max;         // cosine: total epochs including warmup (0: set by rcv_sched_set_total)
    float eta_min;
    float high, low;      // cyclic: absolute lrs (high 0: base_lr; low 0: high / 10)
} rcv_sched;

// The learning rate for (possibly fractional) epoch e, counted from 0. PyTorch's value during
// integer epoch k (after k scheduler.step() calls) is rcv_sched_lr(s, base, k):
//   constant: base
//   step: base * gamma^floor(e / step_size)                      (StepLR)
//   multistep: base * gamma^(number of milestones <= e)          (MultiStepLR)
//   cosine: e < warmup: base * (start + (1 - start) * e / warmup);
//           then eta_min + (base - eta_min) * (1 + cos(pi * (e - warmup) / (t_max - warmup))) / 2
//           (CosineAnnealingLR with T_max = t_max - warmup)
//   cyclic: high for step_size epochs, then low for step_size + 1 epochs, repeating with period
//           2 * step_size + 1 (the seed paper's snapshot schedule).
// Step and multistep count whole epochs (floor(e)), like the per-epoch PyTorch schedulers; cosine
// and warmup are continuous so per-iteration callers get a smooth curve.
float rcv_sched_lr(const rcv_sched *s, float base_lr, double epoch);
// Parses "name[:key=value,...]":
//   constant
//   step:step_size=15,gamma=0.1
//   multistep:milestones=30+60,gamma=0.1
//   cosine:warmup=1,eta_min=0,t_max=90,start=0
//   cyclic:high=1e-4,low=1e-5,step_size=5
// An unknown name or key, or a bad value, gives -1 naming it and listing the valid ones.
int rcv_sched_parse(rcv_sched *s, const char *spec);
// Sets cosine's t_max to the run's epochs when the spec left it out.
void rcv_sched_set_total(rcv_sched *s, int epochs);
// Cyclic: 1 when epoch (0-based) is the last of a cycle (where a snapshot is taken); others 0.
int rcv_sched_cycle_end(const rcv_sched *s, int epoch);

// torch.nn.utils.clip_grad_norm_: the L2 norm over the gradients of every non-frozen RCV_PARAM;
// when finite, gradients are scaled by min(1, max_norm / (norm + 1e-6)). Returns the norm. A
// NaN or infinite norm is returned as is and the gradients are left alone (the caller decides).
float rcv_clip_grad_norm(rcv_graph *g, float max_norm);
// The same norm without clipping.
float rcv_grad_norm(const rcv_graph *g);
// Gradients of every non-frozen RCV_PARAM *= coef (unscaling after fp16 loss scaling).
void rcv_grad_scale(rcv_graph *g, float coef);
// All three run on the GPU for a cuda-planned graph (the norm then waits for it).

#endif
