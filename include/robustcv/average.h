// Weight averaging during training: an exponential moving average of the weights (timm's
// ModelEmaV3) and stochastic weight averaging (torch.optim.swa_utils: AveragedModel, SWALR,
// update_bn). `robustcv train --ema D` / `--swa-start E --swa-lr LR`.
//
// EMA, after every optimizer step s = 1, 2, ... (s counts the run's steps, so resume continues it):
//   decay(s) = 0 at s = 1 (the first update copies the weights), else
//              D                                                    without warm-up,
//              max(min(1 - (1 + (s - 1) / gamma)^-power, D), 0)     with --ema-warmup (timm's
//              ModelEmaV3.get_decay, update_after_step 0, min_decay 0; gamma 1, power 2/3)
//   ema = lerp(ema, w, 1 - decay(s)) on the parameters; the buffers (batchnorm running statistics,
//   num_batches_tracked) are the model's own, copied (ModelEmaV3 exclude_buffers=True).
// SWA, for 0-based epochs e >= E (E epochs on the normal schedule first):
//   lr(e) = swa_lr a + lr0 (1 - a), a = (1 - cos(pi t)) / 2, t = min(1, (e - E) / anneal_epochs),
//   lr0 = the schedule's lr at the start of epoch E (SWALR stepped once per epoch, cos annealing,
//   anneal_epochs 10 by default as torch's); after each such epoch avg += (w - avg) / (n + 1), n the
//   models averaged so far (the first copies); at the end the batchnorm statistics of the average
//   are recomputed from the training data (update_bn: reset, momentum None = the cumulative mean of
//   the batches' means and unbiased variances, num_batches_tracked = batches).
#ifndef RCV_AVERAGE_H
#define RCV_AVERAGE_H

#include <stddef.h>
#include <stdint.h>

#include "robustcv/data.h"
#include "robustcv/models.h"

typedef struct {
    float decay;        // --ema D; 0 = off (default)
    int warmup;         // --ema-warmup: the power form above (default off)
    float warmup_gamma; // --ema-warmup-gamma (default 1)
    float warmup_power; // --ema-warmup-power (default 2/3)
} rcv_ema_cfg;

typedef struct {
    int start;          // --swa-start E: epochs before SWA; < 0 = off (default)
    float lr;           // --swa-lr (required with --swa-start)
    int anneal_epochs;  // --swa-anneal-epochs (default 10, torch's SWALR)
} rcv_swa_cfg;

void rcv_ema_defaults(rcv_ema_cfg *c);
void rcv_swa_defaults(rcv_swa_cfg *c);
// Ranges (decay in [0, 1), gamma > 0, power > 0; swa lr > 0 and finite, start < epochs,
// anneal >= 0). -1 with a message naming the flag.
int rcv_ema_check(const rcv_ema_cfg *c);
int rcv_swa_check(const rcv_swa_cfg *c, int epochs);

// The decay of update number step (1-based).
double rcv_ema_decay(const rcv_ema_cfg *c, int64_t step);
// ema = torch.lerp(ema, w, 1 - decay) elementwise over n floats.
void rcv_ema_update(float *ema, const float *w, size_t n, double decay);

// SWALR's learning rate for 0-based epoch >= c->start.
double rcv_swa_lr(const rcv_swa_cfg *c, double lr0, int epoch);
// AveragedModel.update_parameters: avg = w when n_averaged = 0, else avg + (w - avg) / (n_averaged + 1).
void rcv_swa_update(float *avg, const float *w, size_t n, int64_t n_averaged);
// torch.optim.swa_utils.update_bn on images [0, n) of d (n <= 0: all) in batches of the model's
// planned batch (the last partial batch is dropped: the plan has a fixed batch), train mode, no
// augmentation. The graph stays in eval mode after. 0 or -1 with a message.
int rcv_update_bn(rcv_model *m, const rcv_dataset *d, int n);

// Swaps the contents of g->params and other (n_param_floats each).
void rcv_params_swap(rcv_graph *g, float *other);

#endif
