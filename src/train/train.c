// The training loop: shuffle, batch, forward, backward, clip, step; evaluate and
// checkpoint after every epoch. Everything random comes from one seed, so a run
// resumed from its last checkpoint ends where the uninterrupted run would.
//
// Data-parallel (mpirun -np N): every rank holds the whole model and dataset, draws the
// same global permutation, and takes its contiguous batch/N slice of each global batch;
// gradients are averaged over ranks (dist.h), so with --sync-bn N ranks step like one
// rank with the whole batch. Nothing in the checkpoint depends on the rank count.
//
// NAME+box models (multi-task): each batch's boxes come from the loader after augmentation,
// normalised by the image size into the model's "boxes" input; the loss node is then
// CE + lambda smooth-L1, and the box loss and IoU are logged next to the accuracy.
//
// rcv_train_run reads as its stages: setup (data, model, loss, optimizer, options, plan,
// averages, metrics file, batch buffers), train_epoch (train_step per batch), finish_epoch
// (evaluation, EMA/SWA, snapshot, metrics line, checkpoint) and trainer_free; what they share
// lives in one trainer.
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "robustcv/augment.h"
#include "robustcv/dist.h"
#include "robustcv/error.h"
#include "robustcv/fileio.h"
#include "robustcv/metrics.h"
#include "robustcv/train.h"
#include "train/progress.h"

void rcv_train_cfg_defaults(rcv_train_cfg *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "smallcnn");
    rcv_model_cfg_defaults(&c->mcfg);
    snprintf(c->data, sizeof c->data, "fashion-mnist");
    c->epochs = 10;
    c->batch = 128;
    c->eval_batch = 0; // = batch
    c->opt = rcv_optim_defaults(RCV_OPT_SGD);
    c->opt.lr = 0.1f;
    c->opt.momentum = 0.9f;
    c->opt.weight_decay = 5e-4f;
    c->opt.nesterov = 1;
    snprintf(c->sched, sizeof c->sched, "cosine:warmup=0");
    c->seed = 0;
    snprintf(c->out_dir, sizeof c->out_dir, "runs/default");
    c->backend = RCV_BACKEND_CPU;
    c->loader_threads = 2;
    rcv_recipe_defaults(&c->recipe);
    c->bucket_mb = 25;
    rcv_mix_defaults(&c->mix);
    rcv_ema_defaults(&c->ema);
    rcv_swa_defaults(&c->swa);
}

// --- weight-averaging and mixing stages (average.h, mix.h) ---

// Mixup/CutMix: the batch in the input node (n, H, W, C) is mixed in place, the loss is the
// soft-target cross-entropy of its logits, its gradient seeded at the logits. Returns the loss.
typedef struct {
    float *scratch, *lam, *t; // (n, H, W, C) originals, (n) own-label weights, (n, K) targets
} mix_stage;

static float mix_step(const rcv_train_cfg *cfg, rcv_model *m, mix_stage *ms, rcv_rng *r) {
    rcv_graph *g = m->g;
    int n = g->batch, k = m->cfg.n_classes;
    rcv_mix_draws d = rcv_mix_draws_rng(r);
    rcv_mix_batch(&cfg->mix, &d, g->nodes[m->input].out, n, m->cfg.in_h, m->cfg.in_w, m->cfg.in_c, ms->lam, ms->scratch);
    rcv_mix_targets(g->nodes[m->labels].idata, ms->lam, n, k, cfg->label_smoothing, ms->t);
    rcv_graph_zero_grad(g);
    rcv_graph_forward(g);
    float *seed = g->nodes[m->logits].grad;
    double loss = rcv_soft_cross_entropy(g->nodes[m->logits].out, ms->t, n, k, seed);
    rcv_graph_backward_from(g, m->logits, seed);
    return (float)loss;
}

// Loads the parameters of a checkpoint of the same model into avg (EMA / SWA state on resume);
// its epoch must be the run's. 0 or -1 with a message.
static int load_average(const char *path, const rcv_model *m, int epoch, float *avg) {
    rcv_model t = {0};
    rcv_ckpt_info ti = {0};
    int rc = -1;
    if (rcv_ckpt_load_model(path, &t, &ti)) goto done;
    if (strcmp(t.name, m->name) || t.g->n_param_floats != m->g->n_param_floats) {
        rcv_fail("resume: %s holds model '%s', the run trains '%s'", path, t.name, m->name);
        goto done;
    }
    if (ti.epoch != epoch) {
        rcv_fail("resume: %s is from epoch %d, last.safetensors from epoch %d (killed between the two writes?); "
                 "remove it to restart the average from the current weights", path, ti.epoch, epoch);
        goto done;
    }
    memcpy(avg, t.g->params, m->g->n_param_floats * sizeof(float));
    rc = 0;
done:
    if (t.g) rcv_model_free(&t);
    rcv_ckpt_info_free(&ti);
    return rc;
}

// Evaluates (and saves, path != NULL) the model with the parameters avg in place of its own.
static int eval_average(rcv_model *m, float *avg, const rcv_dataset *test, int batch, rcv_backend be, const char *path,
                        const rcv_ckpt_info *ci, rcv_eval_result *ev) {
    rcv_params_swap(m->g, avg);
    int bad = rcv_evaluate(m, test, batch, be, ev) || (path && rcv_ckpt_save(path, m, NULL, ci));
    rcv_params_swap(m->g, avg);
    return bad ? -1 : 0;
}


// On resume, drop metric lines of epochs past the checkpoint (a run killed between
// writing its metrics and its checkpoint would otherwise repeat them).
static int trim_metrics(const char *path, int max_epoch) {
    uint8_t *data;
    size_t len;
    if (access(path, F_OK)) return 0;
    if (rcv_file_read(path, &data, &len)) return -1;
    char *out = rcv_xmalloc(len + 1), *w = out;
    for (char *line = (char *)data; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        const char *e = strstr(line, "\"epoch\":");
        if (!(e && e < line + n && atoi(e + 8) > max_epoch)) {
            memcpy(w, line, n);
            w += n;
        }
        line += n;
    }
    int rc = rcv_file_write_atomic(path, out, (size_t)(w - out));
    free(out);
    free(data);
    return rc;
}

// Atomic: a full disk or a file-size limit leaves the previous lines byte-identical.
static int append_line(const char *path, const char *line) { return rcv_file_append_atomic(path, line, strlen(line)); }

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

static void augment_sample(void *ctx, rcv_rng *r, float *x, int h, int w, int c, float *boxes, int n_boxes) {
    rcv_augment_apply(ctx, r, x, h, w, c, boxes, n_boxes);
}

// --- the run, stage by stage: setup, one epoch of steps, evaluation and checkpoints, teardown ---

// What one run holds between its stages (freed by trainer_free).
typedef struct {
    const rcv_train_cfg *cfg;
    int rank, nr, local, quiet; // local: this rank's slice of the global batch
    rcv_dataset train, test;
    rcv_model m;
    rcv_optim opt;
    rcv_sched sched;
    rcv_ckpt_info info; // of the checkpoint resumed from
    rcv_recipe rec;
    rcv_augment *aug;
    rcv_grad_sync *gsync;
    rcv_loader *loader;
    rcv_sample_fn sample_fn; // augmentation on the loader threads (NULL: none)
    void *sample_ctx;
    rcv_rng rng; // the run's stream: every epoch forks its streams from it
    int64_t step;
    int resuming, start_epoch, curriculum, mixing, with_ema, with_swa, with_box;
    int steps_per_epoch, k, on_dev, dev_recipe, good_steps;
    float loss_scale;
    size_t npf, x_floats;
    int *perm, *lperm; // (train.n): the epoch's global permutation, this rank's slices of it
    // A GPU plan is fed from host staging buffers; on the CPU x, lab, tbox, pbox and z point into the graph.
    float *stage_x, *stage_z, *box_px, *stage_box, *stage_pb; // (local, H, W, C), (local, k), 3 x (local, 4)
    int32_t *stage_lab;
    float *x, *tbox; // the batch (local, H, W, C) and its normalised boxes (local, 4)
    int32_t *lab;    // (local)
    const float *z, *pbox; // logits (local, k) (a recipe may point z elsewhere), predicted boxes (local, 4)
    float *ema, *swa;      // (npf) averages of the parameters
    mix_stage ms;
    char ckpt[600], metrics[600], ema_path[600], swa_path[600];
} trainer;

// One epoch's training numbers, for its metrics line.
typedef struct {
    int epoch, swa_epoch;
    float lr; // of the last step
    double swa_lr, loss_sum, box_loss_sum, iou_sum, t_train;
    long correct, seen;
} epoch_stats;

static int recipe_one_pass(rcv_recipe_kind k) { return k == RCV_RECIPE_STANDARD || k == RCV_RECIPE_AUGMENT_CURRICULUM; }

// Threads, the batch split over ranks and the output paths; allocates nothing.
static int trainer_init(trainer *t, const rcv_train_cfg *cfg) {
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->rank = rcv_dist_rank(), t->nr = rcv_dist_size();
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    else if (t->nr > 1) { // ranks on one machine share its cores
        int n = omp_get_num_procs() / rcv_dist_local_size();
        omp_set_num_threads(n > 0 ? n : 1);
    }
    if (cfg->batch <= 0 || cfg->epochs <= 0)
        return rcv_fail("train: batch %d and epochs %d must be positive", cfg->batch, cfg->epochs);
    if (cfg->batch % t->nr)
        return rcv_fail("train: --batch %d (the global batch) is not divisible by the %d ranks", cfg->batch, t->nr);
    t->local = cfg->batch / t->nr, t->quiet = cfg->quiet || t->rank != 0;
    snprintf(t->ema_path, sizeof t->ema_path, "%s/ema.safetensors", cfg->out_dir);
    snprintf(t->swa_path, sizeof t->swa_path, "%s/swa.safetensors", cfg->out_dir);
    snprintf(t->ckpt, sizeof t->ckpt, "%s/last.safetensors", cfg->out_dir);
    snprintf(t->metrics, sizeof t->metrics, "%s/metrics.jsonl", cfg->out_dir);
    t->mixing = rcv_mix_enabled(&cfg->mix), t->with_ema = cfg->ema.decay > 0, t->with_swa = cfg->swa.start >= 0;
    return 0;
}

static int setup_data(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    if (rcv_data_open(cfg->data, 1, &t->train) || rcv_data_open(cfg->data, 0, &t->test)) return -1;
    if (cfg->subset > 0) {
        if (t->train.n > cfg->subset) t->train.n = cfg->subset;
        if (t->test.n > cfg->subset) t->test.n = cfg->subset;
    }
    if (t->train.n < cfg->batch)
        return rcv_fail("train: %s has %d training images, fewer than one batch of %d", cfg->data, t->train.n,
                        cfg->batch);
    if (rcv_dist_any(t->rank == 0 && rcv_mkdir_p(cfg->out_dir))) {
        if (t->rank) rcv_fail("train: rank 0 could not create %s", cfg->out_dir);
        return -1;
    }
    return 0;
}

// The checkpoint's model (with its epoch, step and RNG) on resume, else a fresh one sized by the data.
static int setup_model(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_model *m = &t->m;
    rcv_rng_init(&t->rng, cfg->seed);
    t->resuming = cfg->resume && file_exists(t->ckpt);
    if (cfg->resume && !t->resuming && !t->quiet)
        fprintf(stderr, "resume: no checkpoint at %s, starting from scratch\n", t->ckpt);
    if (t->resuming) {
        if (rcv_ckpt_load_model(t->ckpt, m, &t->info)) return -1;
        if (strcmp(m->name, cfg->model))
            return rcv_fail("resume: %s holds model '%s', this run asks for '%s'", t->ckpt, m->name, cfg->model);
        t->start_epoch = t->info.epoch;
        t->step = t->info.step;
        t->rng = t->info.rng;
        return 0;
    }
    rcv_model_cfg mc = cfg->mcfg;
    mc.in_c = t->train.c;
    mc.in_h = t->train.h;
    mc.in_w = t->train.w;
    mc.n_classes = t->train.n_classes;
    mc.seed = cfg->seed;
    rcv_dataset_mean_std(&t->train, mc.mean, mc.std);
    return rcv_model_build(m, cfg->model, &mc);
}

// The model against the data and the options; then this command line's loss settings and transfer stage.
static int setup_loss(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_model *m = &t->m;
    const rcv_dataset *d = &t->train;
    if (m->cfg.in_c != d->c || m->cfg.in_h != d->h || m->cfg.in_w != d->w || m->cfg.n_classes != d->n_classes)
        return rcv_fail("train: model expects %dx%dx%d images and %d classes, %s has %dx%dx%d and %d", m->cfg.in_c,
                        m->cfg.in_h, m->cfg.in_w, m->cfg.n_classes, cfg->data, d->c, d->h, d->w, d->n_classes);
    if (cfg->label_smoothing > 0 && rcv_model_set_label_smoothing(m, cfg->label_smoothing)) return -1;
    t->with_box = m->boxes >= 0;
    if (t->with_box && !d->boxes)
        return rcv_fail("train: model '%s' has a box head and needs bounding boxes; data source %s has none (Tiny "
                        "ImageNet's train/ and val/ carry them)", m->name, cfg->data);
    // The other recipes build their own loss from the logits and would drop the box term.
    if (t->with_box && !recipe_one_pass(cfg->recipe.kind))
        return rcv_fail("train: --recipe %s does not support box models ('%s'); use standard or augment-curriculum",
                        rcv_recipe_name(cfg->recipe.kind), m->name);
    if (!t->with_box && cfg->mcfg.box_lambda != 1.0f)
        return rcv_fail("train: --box-lambda %g applies to box models (NAME+box); '%s' has no box head",
                        cfg->mcfg.box_lambda, m->name);
    // On resume the command line's lambda applies, as its other loss settings do.
    if (t->with_box && rcv_model_set_box_lambda(m, cfg->mcfg.box_lambda)) return -1;
    // Transfer learning: weights only on a fresh start; freezing and rates again on resume (not checkpointed).
    return rcv_transfer_apply(m, &cfg->transfer, !t->resuming, cfg->quiet);
}

// Optimizer (its state on resume), schedule, device and precision.
static int setup_optim(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    if (rcv_optim_init(&t->opt, &cfg->opt, t->m.g->n_param_floats)) return -1;
    if (t->resuming && rcv_ckpt_load_optim(t->ckpt, &t->opt)) return -1;
    if (rcv_sched_parse(&t->sched, cfg->sched)) return -1;
    rcv_sched_set_total(&t->sched, cfg->epochs);
    t->m.g->device = cfg->device;
    rcv_graph_set_precision(t->m.g, cfg->backend, cfg->precision);
    return 0;
}

// Augmentation on the loader threads: the caller's hook, else the --augment pipeline (every
// epoch; from raw_epochs on for augment-curriculum, whose default is the recipe's spec). Then
// the combinations of recipe, ranks, mixing, averages and backend that do not run.
static int setup_options(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_recipe_kind kind = cfg->recipe.kind;
    t->sample_fn = cfg->sample_fn;
    t->sample_ctx = cfg->sample_ctx;
    t->curriculum = kind == RCV_RECIPE_AUGMENT_CURRICULUM;
    const char *spec = cfg->augment[0] ? cfg->augment : t->curriculum ? cfg->recipe.augment : "";
    if (!t->sample_fn && spec[0]) {
        if (rcv_augment_parse(&t->aug, spec)) return -1;
        t->sample_fn = augment_sample, t->sample_ctx = t->aug;
    }
    if (t->curriculum && !t->sample_fn)
        return rcv_fail("train: --recipe augment-curriculum needs an augmentation pipeline (--augment SPEC)");
    // Data-parallel gradients are allreduced during one backward pass; the robust recipes run
    // two or more per step, so they stay on one rank.
    if (t->nr > 1 && !recipe_one_pass(kind))
        return rcv_fail("train: --recipe %s runs on one rank (it takes several backward passes per step); run it "
                        "without mpirun", rcv_recipe_name(kind));
    if (rcv_mix_check(&cfg->mix) || rcv_ema_check(&cfg->ema) || rcv_swa_check(&cfg->swa, cfg->epochs)) return -1;
    if ((t->mixing || t->with_ema || t->with_swa) && cfg->backend == RCV_BACKEND_CUDA)
        return rcv_fail("train: --mixup/--cutmix, --ema and --swa-start run on the cpu (or ref) backend only; use "
                        "--device cpu");
    if (t->mixing && (t->with_box || !recipe_one_pass(kind)))
        return rcv_fail("train: --mixup/--cutmix train on soft targets with the standard or augment-curriculum recipe "
                        "and no box head (here: recipe %s, model '%s')", rcv_recipe_name(kind), t->m.name);
    if (t->mixing && t->local % 2)
        return rcv_fail("train: --mixup/--cutmix pair image i with N-1-i and need an even batch per rank, got %d",
                        t->local);
    return 0;
}

// The recipe and the plan; every rank starts from rank 0's weights (they agree already: same
// seed or checkpoint) and allreduces its gradients in buckets.
static int setup_plan(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_graph *g = t->m.g;
    if (rcv_recipe_init(&t->rec, &cfg->recipe, &t->m)) return -1;
    if (rcv_graph_plan(g, t->local, cfg->backend)) return -1;
    if (cfg->profile) rcv_graph_profile(g, 1);
    rcv_dist_bcast(g->params, g->n_param_floats * sizeof(float), 0);
    rcv_graph_params_changed(g);
    rcv_dist_bcast(g->buffers, g->n_buffer_floats * sizeof(float), 0);
    if (cfg->sync_bn) rcv_dist_sync_bn(g, 1);
    g->shard = t->rank;
    g->n_shards = t->nr;
    t->gsync = rcv_grad_sync_new(g, (size_t)((double)cfg->bucket_mb * 1048576.0));
    t->npf = g->n_param_floats;
    return 0;
}

// Mixing buffers; EMA starts as a copy of the weights (timm's deepcopy), SWA's average fills at
// its first epoch; both resume from their files.
static int setup_averages(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    if (t->mixing) {
        size_t per = (size_t)t->train.c * t->train.h * t->train.w;
        t->ms.scratch = rcv_xmalloc((size_t)t->local * per * sizeof(float));
        t->ms.lam = rcv_xmalloc((size_t)t->local * sizeof(float));
        t->ms.t = rcv_xmalloc((size_t)t->local * t->m.cfg.n_classes * sizeof(float));
    }
    int resumed_steps = t->resuming && t->step > 0;
    if (t->with_ema) {
        t->ema = rcv_xmalloc(t->npf * sizeof(float));
        memcpy(t->ema, t->m.g->params, t->npf * sizeof(float));
        if (resumed_steps && !file_exists(t->ema_path)) {
            if (!t->quiet)
                fprintf(stderr, "resume: no %s (the run had no --ema?): the EMA starts from the current weights\n",
                        t->ema_path);
        } else if (resumed_steps && load_average(t->ema_path, &t->m, t->start_epoch, t->ema))
            return -1;
    }
    if (t->with_swa) {
        t->swa = rcv_xcalloc(t->npf, sizeof(float));
        if (t->resuming && t->start_epoch > cfg->swa.start && load_average(t->swa_path, &t->m, t->start_epoch, t->swa))
            return -1;
    }
    return 0;
}

// Rank 0 trims the metrics past the checkpoint (resume) or removes an old file; then the run's banner.
static int setup_metrics(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    int bad = 0;
    if (t->rank == 0) {
        if (t->resuming) bad = trim_metrics(t->metrics, t->start_epoch);
        else if (file_exists(t->metrics) && remove(t->metrics))
            bad = rcv_fail("cannot remove old %s: %s", t->metrics, strerror(errno));
    }
    if (rcv_dist_any(bad)) {
        if (t->rank) rcv_fail("train: rank 0 could not prepare %s", t->metrics);
        return -1;
    }
    if (!t->quiet) {
        fprintf(stderr, "train: %s (%zu parameters) on %s: %d train / %d test images, batch %d, %d epochs, recipe %s%s\n",
                t->m.name, rcv_graph_param_count(t->m.g), cfg->data, t->train.n, t->test.n, cfg->batch, cfg->epochs,
                rcv_recipe_name(cfg->recipe.kind), t->resuming ? " (resumed)" : "");
        if (t->nr > 1)
            fprintf(stderr, "train: %d ranks x batch %d, %d gradient bucket(s)%s\n", t->nr, t->local,
                    rcv_grad_sync_buckets(t->gsync), cfg->sync_bn ? ", synchronised batchnorm" : "");
    }
    return 0;
}

// The permutations and the step's inputs and outputs: graph memory on the CPU, host staging
// buffers for a GPU plan (its logits come back once per step).
static int setup_batches(trainer *t) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_graph *g = t->m.g;
    const rcv_model *m = &t->m;
    size_t local = (size_t)t->local;
    t->steps_per_epoch = t->train.n / cfg->batch; // the last partial batch is dropped (drop_last)
    t->perm = rcv_xmalloc((size_t)t->train.n * sizeof(int));
    t->lperm = rcv_xmalloc((size_t)t->train.n * sizeof(int));
    t->k = m->cfg.n_classes;
    t->on_dev = rcv_graph_on_device(g);
    t->x_floats = local * t->train.c * t->train.h * t->train.w;
    if (t->on_dev) {
        t->stage_x = rcv_xmalloc(t->x_floats * sizeof(float));
        t->stage_lab = rcv_xmalloc(local * sizeof(int32_t));
        t->stage_z = rcv_xmalloc(local * t->k * sizeof(float));
    }
    // Box models: the loader's boxes (local, 4) in pixels, the normalised targets and the predictions.
    if (t->with_box) {
        t->box_px = rcv_xmalloc(local * 4 * sizeof(float));
        if (t->on_dev) {
            t->stage_box = rcv_xmalloc(local * 4 * sizeof(float));
            t->stage_pb = rcv_xmalloc(local * 4 * sizeof(float));
        }
        t->tbox = t->on_dev ? t->stage_box : g->nodes[m->boxes].out;
        t->pbox = t->on_dev ? t->stage_pb : g->nodes[m->box].out;
    }
    t->x = t->on_dev ? t->stage_x : g->nodes[m->input].out;
    t->lab = t->on_dev ? t->stage_lab : g->nodes[m->labels].idata;
    t->z = t->on_dev ? t->stage_z : g->nodes[m->logits].out;
    // fp16: dynamic loss scaling (PyTorch GradScaler's defaults: 2^16, halve on overflow and
    // skip the step, double after 2000 good steps).
    // A robust recipe on the GPU runs its own forward/backward passes (rcv_recipe_step, unscaled).
    t->dev_recipe = t->on_dev && !recipe_one_pass(cfg->recipe.kind);
    t->loss_scale = cfg->precision == RCV_PREC_FP16 && t->on_dev && !t->dev_recipe ? 65536.0f : 1.0f;
    return 0;
}

static int setup(trainer *t) {
    if (setup_data(t) || setup_model(t) || setup_loss(t) || setup_optim(t) || setup_options(t) || setup_plan(t) ||
        setup_averages(t) || setup_metrics(t) || setup_batches(t))
        return -1;
    return 0;
}

// The batch's loss and gradients, its logits in t->z: the device plan's forward pass (its
// backward pass waits for the allreduced loss), the mixing step, or the recipe's step.
static float step_loss(trainer *t, rcv_rng *rr, rcv_rng *mr, float *box_loss) {
    rcv_graph *g = t->m.g;
    const rcv_model *m = &t->m;
    float loss;
    if (t->on_dev) {
        rcv_graph_upload(g, g->nodes[m->input].out, t->x, t->x_floats * sizeof(float));
        rcv_graph_upload(g, g->nodes[m->labels].idata, t->lab, (size_t)t->local * sizeof(int32_t));
        if (t->with_box) rcv_graph_upload(g, g->nodes[m->boxes].out, t->tbox, (size_t)t->local * 4 * sizeof(float));
        if (t->dev_recipe) {
            loss = rcv_recipe_step(&t->rec, rr);
            t->z = rcv_recipe_logits(&t->rec);
        } else {
            rcv_graph_forward(g);
            rcv_graph_download(g, &loss, g->nodes[m->loss].out, sizeof loss);
        }
        if (t->with_box) rcv_graph_download(g, box_loss, g->nodes[m->loss_box].out, sizeof *box_loss);
    } else if (t->mixing) {
        loss = mix_step(t->cfg, &t->m, &t->ms, mr); // logits in the node; accuracy against the unmixed labels
    } else {
        loss = rcv_recipe_step(&t->rec, rr); // forward, zero_grad, backward: the recipe's gradient
        t->z = rcv_recipe_logits(&t->rec);
        if (t->with_box) *box_loss = g->nodes[m->loss_box].out[0]; // outputs outlive the backward pass
    }
    return loss;
}

// fp16 loss scaling: unscales the gradients; 1 when they overflowed (the step is skipped, the scale halves).
static int unscale_grads(trainer *t) {
    if (t->loss_scale == 1.0f) return 0;
    float norm = rcv_grad_norm(t->m.g);
    if (!isfinite(norm)) {
        t->loss_scale *= 0.5f;
        t->good_steps = 0;
        return 1;
    }
    rcv_grad_scale(t->m.g, 1.0f / t->loss_scale);
    if (++t->good_steps == 2000) t->loss_scale *= 2.0f, t->good_steps = 0;
    return 0;
}

// The step's loss, box loss, IoU and top-1 hits into the epoch's sums.
static void tally_step(trainer *t, epoch_stats *es, float loss, float box_loss) {
    int local = t->local, k = t->k;
    es->loss_sum += loss;
    es->box_loss_sum += box_loss;
    for (int i = 0; t->with_box && i < local; i++)
        es->iou_sum += rcv_box_iou(t->pbox + 4 * (size_t)i, t->tbox + 4 * (size_t)i);
    for (int i = 0; i < local; i++) {
        const float *zi = t->z + (size_t)i * k;
        int am = 0;
        for (int j = 1; j < k; j++)
            if (zi[j] > zi[am]) am = j;
        es->correct += am == t->lab[i];
    }
    es->seen += local;
}

// Step s of the epoch: the next batch, its loss and gradients, the allreduce, clipping, the
// update and the EMA.
static int train_step(trainer *t, epoch_stats *es, int s, rcv_rng *rr, rcv_rng *mr) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_graph *g = t->m.g;
    const rcv_model *m = &t->m;
    if (rcv_loader_next(t->loader, t->x, t->lab, t->box_px)) return -1;
    if (t->with_box) rcv_boxes_normalize(t->box_px, t->local, t->train.w, t->train.h, t->tbox);
    float box_loss = 0;
    float loss = step_loss(t, rr, mr, &box_loss);
    if (t->nr > 1) { // the global batch's mean loss: every rank sees (and stops on) the same value
        double l[2] = {loss, box_loss};
        rcv_dist_allreduce_f64(l, 2);
        loss = (float)(l[0] / t->nr), box_loss = (float)(l[1] / t->nr);
    }
    if (!isfinite(loss))
        return rcv_fail("train: loss is %g at epoch %d step %d (lr %g); stopping. The last good checkpoint, if any, "
                        "is %s", loss, es->epoch + 1, s + 1, es->lr, t->ckpt);
    if (t->on_dev && !t->dev_recipe) {
        rcv_graph_zero_grad(g);
        rcv_graph_backward(g, m->loss, t->loss_scale);
    }
    rcv_grad_sync_finish(t->gsync); // the data-parallel allreduce (a no-op on one rank)
    int skip = unscale_grads(t);
    if (cfg->clip > 0 && !skip) rcv_clip_grad_norm(g, cfg->clip);
    es->lr = es->swa_epoch ? (float)es->swa_lr
                           : rcv_sched_lr(&t->sched, cfg->opt.lr, es->epoch + (double)s / t->steps_per_epoch);
    if (!skip && rcv_optim_step(&t->opt, g, es->lr)) return -1;
    if (!skip && t->with_ema) rcv_ema_update(t->ema, g->params, t->npf, rcv_ema_decay(&cfg->ema, t->step + 1));
    if (t->on_dev && !t->dev_recipe)
        rcv_graph_download(g, t->stage_z, g->nodes[m->logits].out, (size_t)t->local * t->k * sizeof(float));
    if (t->on_dev && t->with_box)
        rcv_graph_download(g, t->stage_pb, g->nodes[m->box].out, (size_t)t->local * 4 * sizeof(float));
    t->step++;
    tally_step(t, es, loss, box_loss);
    return 0;
}

// Opens the loader on this rank's slices of the epoch's permutation, its augmentation stream sr.
static int open_epoch_loader(trainer *t, int epoch, rcv_rng *sr) {
    const rcv_train_cfg *cfg = t->cfg;
    int local = t->local;
    // The augmentation curriculum trains its first raw_epochs on raw images.
    int aug_on = t->sample_fn && (!t->curriculum || rcv_recipe_augment_on(&cfg->recipe, epoch));
    // This rank's slice of every global batch (all of it on one rank).
    for (int st = 0; st < t->steps_per_epoch; st++)
        memmove(t->lperm + (size_t)st * local, t->perm + (size_t)st * cfg->batch + (size_t)t->rank * local,
                (size_t)local * sizeof(int));
    return rcv_loader_open(&t->loader, &t->train, local, t->lperm, t->steps_per_epoch, aug_on ? t->sample_fn : NULL,
                           t->sample_ctx, sr, cfg->loader_threads);
}

// One epoch of training steps. 0, 1 when --max-steps stopped the run, or -1 with a message.
static int train_epoch(trainer *t, int epoch, epoch_stats *es) {
    const rcv_train_cfg *cfg = t->cfg;
    rcv_graph *g = t->m.g;
    memset(es, 0, sizeof *es);
    es->epoch = epoch;
    // Shuffle and dropout streams depend only on (seed, epoch); augmentation streams are per
    // sample, forked from one per-epoch stream.
    rcv_rng er = rcv_rng_fork(&t->rng, (uint64_t)epoch);
    rcv_rng_permutation(&er, t->perm, t->train.n);
    g->rng = rcv_rng_fork(&t->rng, 1000000u + (uint64_t)epoch);
    rcv_rng sr = rcv_rng_fork(&t->rng, 2000000u + (uint64_t)epoch);
    rcv_rng rr = rcv_rng_fork(&t->rng, 3000000u + (uint64_t)epoch); // the recipe's noise, AugMix, PGD starts
    rcv_rng mr0 = rcv_rng_fork(&t->rng, 4000000u + (uint64_t)epoch); // mixing: one stream per rank
    rcv_rng mr = rcv_rng_fork(&mr0, (uint64_t)t->rank);
    es->swa_epoch = t->with_swa && epoch >= cfg->swa.start;
    es->swa_lr = es->swa_epoch ? rcv_swa_lr(&cfg->swa, rcv_sched_lr(&t->sched, cfg->opt.lr, cfg->swa.start), epoch) : 0;
    if (open_epoch_loader(t, epoch, &sr)) return -1;
    rcv_graph_set_training(g, 1);
    char label[64], extra[64];
    snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, cfg->epochs);
    rcv_progress pr;
    rcv_progress_start(&pr, label, (long)t->steps_per_epoch * cfg->batch, t->quiet);
    double t0 = rcv_now();
    for (int s = 0; s < t->steps_per_epoch; s++) {
        if (cfg->max_steps && t->step >= cfg->max_steps) {
            rcv_progress_end(&pr, "stopped at --max-steps");
            return 1;
        }
        if (train_step(t, es, s, &rr, &mr)) return -1;
        if (t->with_box)
            snprintf(extra, sizeof extra, "loss %.4f iou %.3f", es->loss_sum / (s + 1), es->iou_sum / es->seen);
        else snprintf(extra, sizeof extra, "loss %.4f", es->loss_sum / (s + 1));
        rcv_progress_update(&pr, es->seen * t->nr, extra);
    }
    rcv_loader_close(t->loader);
    t->loader = NULL;
    es->t_train = rcv_now() - t0;
    if (t->nr > 1) {
        int64_t cs[2] = {es->correct, es->seen};
        rcv_dist_allreduce_i64(cs, 2);
        es->correct = (long)cs[0], es->seen = (long)cs[1];
        if (t->with_box) rcv_dist_allreduce_f64(&es->iou_sum, 1);
        if (!cfg->sync_bn) rcv_dist_average_buffers(g); // one set of running stats to save
    }
    snprintf(extra, sizeof extra, "loss %.4f", es->loss_sum / t->steps_per_epoch);
    rcv_progress_end(&pr, extra);
    return 0;
}

// The EMA weights evaluated (and saved) beside the raw ones; their fields appended to avgf.
static int epoch_ema(trainer *t, const rcv_ckpt_info *ci, char *avgf, size_t cap) {
    if (!t->with_ema) return 0;
    rcv_eval_result eva;
    if (rcv_dist_any(eval_average(&t->m, t->ema, &t->test, t->local, t->cfg->backend, t->rank == 0 ? t->ema_path : NULL,
                                  ci, &eva)))
        return -1;
    size_t na = strlen(avgf);
    snprintf(avgf + na, cap - na, ", \"ema_test_loss\": %.6f, \"ema_test_top1\": %.6f, \"ema_test_top5\": %.6f",
             eva.loss, eva.top1, eva.top5);
    if (!t->quiet) fprintf(stderr, "ema: test loss %.4f top-1 %.2f%% (%s)\n", eva.loss, 100 * eva.top1, t->ema_path);
    rcv_eval_result_free(&eva);
    return 0;
}

// SWA's last epoch: the average's batchnorm statistics from the training data, then its
// evaluation; the model's own statistics are restored.
static int swa_eval_bn_updated(trainer *t, const rcv_ckpt_info *ci, rcv_eval_result *eva) {
    rcv_graph *g = t->m.g;
    float *bsave = rcv_xmalloc(g->n_buffer_floats * sizeof(float));
    int64_t *isave = rcv_xmalloc(g->n_ibuffers * sizeof(int64_t) + 1);
    memcpy(bsave, g->buffers, g->n_buffer_floats * sizeof(float));
    memcpy(isave, g->ibuffers, g->n_ibuffers * sizeof(int64_t));
    rcv_params_swap(g, t->swa);
    int bad = rcv_update_bn(&t->m, &t->train, t->train.n);
    rcv_params_swap(g, t->swa);
    bad = bad || eval_average(&t->m, t->swa, &t->test, t->local, t->cfg->backend, t->rank == 0 ? t->swa_path : NULL, ci,
                              eva);
    memcpy(g->buffers, bsave, g->n_buffer_floats * sizeof(float));
    memcpy(g->ibuffers, isave, g->n_ibuffers * sizeof(int64_t));
    free(bsave);
    free(isave);
    return bad;
}

// An SWA epoch: this epoch's weights join the average, which is evaluated (and saved); its
// fields appended to avgf.
static int epoch_swa(trainer *t, const epoch_stats *es, const rcv_ckpt_info *ci, char *avgf, size_t cap) {
    const rcv_train_cfg *cfg = t->cfg;
    if (!es->swa_epoch) return 0;
    int n = es->epoch - cfg->swa.start + 1; // models in the average
    rcv_swa_update(t->swa, t->m.g->params, t->npf, n - 1);
    int last_epoch = es->epoch + 1 == cfg->epochs;
    rcv_eval_result eva;
    int bad = last_epoch ? swa_eval_bn_updated(t, ci, &eva)
                         : eval_average(&t->m, t->swa, &t->test, t->local, cfg->backend,
                                        t->rank == 0 ? t->swa_path : NULL, ci, &eva);
    if (rcv_dist_any(bad)) return -1;
    size_t na = strlen(avgf);
    snprintf(avgf + na, cap - na, ", \"swa_lr\": %.6g, \"swa_models\": %d, \"swa_test_loss\": %.6f, "
             "\"swa_test_top1\": %.6f%s", es->swa_lr, n, eva.loss, eva.top1,
             last_epoch ? ", \"swa_bn_updated\": true" : "");
    if (!t->quiet)
        fprintf(stderr, "swa: %d model(s) averaged, lr %g, test top-1 %.2f%%%s (%s)\n", n, es->swa_lr, 100 * eva.top1,
                last_epoch ? " after update_bn" : " (running statistics not yet updated)", t->swa_path);
    rcv_eval_result_free(&eva);
    return 0;
}

// A cyclic schedule's snapshot at the end of each cycle (rank 0 writes).
static int epoch_snapshot(trainer *t, int epoch, const rcv_ckpt_info *ci) {
    int bad = 0;
    if (t->rank == 0 && rcv_sched_cycle_end(&t->sched, epoch)) {
        char snap[600];
        snprintf(snap, sizeof snap, "%s/snapshot_%d.safetensors", t->cfg->out_dir,
                 (epoch + 1) / (2 * t->sched.step_size + 1));
        bad = rcv_ckpt_save(snap, &t->m, NULL, ci);
        if (!bad && !t->quiet) fprintf(stderr, "snapshot: %s (end of cycle at epoch %d)\n", snap, epoch + 1);
    }
    return rcv_dist_any(bad) ? -1 : 0;
}

// The epoch's metrics line and checkpoint, and its summary on stderr. Box models add their
// terms (train_loss is then CE + lambda box loss; test_loss stays CE).
static int epoch_write(trainer *t, const epoch_stats *es, const rcv_eval_result *ev, const char *avgf,
                       const rcv_ckpt_info *ci) {
    double train_loss = es->loss_sum / t->steps_per_epoch;
    char boxf[256] = "", line[1280];
    if (t->with_box) {
        int nb = snprintf(boxf, sizeof boxf, ", \"train_box_loss\": %.6f, \"train_iou\": %.6f",
                          es->box_loss_sum / t->steps_per_epoch, es->iou_sum / es->seen);
        if (ev->box_n)
            snprintf(boxf + nb, sizeof boxf - (size_t)nb, ", \"test_box_loss\": %.6f, \"test_iou\": %.6f, "
                     "\"test_iou50\": %.6f", ev->box_loss, ev->box_iou, ev->box_iou50);
    }
    snprintf(line, sizeof line,
             "{\"epoch\": %d, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, \"train_acc\": %.6f, "
             "\"test_loss\": %.6f, \"test_top1\": %.6f, \"test_top5\": %.6f%s%s, \"train_seconds\": %.3f, "
             "\"images_per_second\": %.1f}\n",
             es->epoch + 1, (long long)t->step, es->lr, train_loss, (double)es->correct / es->seen, ev->loss, ev->top1,
             ev->top5, boxf, avgf, es->t_train, es->seen / es->t_train);
    // Rank 0 writes; the others wait here (and stop with it if it fails). The metrics line
    // first: a run killed before its checkpoint lands drops the line on resume (trim_metrics)
    // and redoes the epoch; the other order lost the line of a run killed in between.
    int bad = t->rank == 0 && (append_line(t->metrics, line) || rcv_ckpt_save(t->ckpt, &t->m, &t->opt, ci));
    if (rcv_dist_any(bad)) {
        if (t->rank) rcv_fail("train: rank 0 could not write %s or %s", t->ckpt, t->metrics);
        return -1;
    }
    if (!t->quiet) {
        char bt[96] = "", bv[96] = "";
        if (t->with_box)
            snprintf(bt, sizeof bt, " box %.4f iou %.3f", es->box_loss_sum / t->steps_per_epoch, es->iou_sum / es->seen);
        if (ev->box_n) snprintf(bv, sizeof bv, " iou %.3f (>= 0.5: %.1f%%)", ev->box_iou, 100 * ev->box_iou50);
        fprintf(stderr, "epoch %d/%d: train loss %.4f acc %.2f%%%s | test loss %.4f top-1 %.2f%% top-5 %.2f%%%s | %.1f s\n",
                es->epoch + 1, t->cfg->epochs, train_loss, 100.0 * es->correct / es->seen, bt, ev->loss,
                100 * ev->top1, 100 * ev->top5, bv, es->t_train);
    }
    return 0;
}

// After an epoch's steps: evaluation of the weights and of their averages, the snapshot, the
// metrics line and the checkpoint. EMA and SWA are saved before last.safetensors (resume
// checks their epochs against it).
static int finish_epoch(trainer *t, const epoch_stats *es) {
    rcv_graph *g = t->m.g;
    rcv_eval_result ev;
    double *prof = g->prof; // the profile is of training steps only
    g->prof = NULL;
    int bad = rcv_evaluate(&t->m, &t->test, t->local, t->cfg->backend, &ev);
    g->prof = prof;
    if (bad) return -1;
    rcv_eval_result_free(&ev); // the scalars stay
    rcv_ckpt_info ci = {es->epoch + 1, t->step, t->rng, t->train.class_names, t->train.n_classes};
    char avgf[512] = "";
    if (epoch_ema(t, &ci, avgf, sizeof avgf) || epoch_swa(t, es, &ci, avgf, sizeof avgf)) return -1;
    if (epoch_snapshot(t, es->epoch, &ci)) return -1;
    return epoch_write(t, es, &ev, avgf, &ci);
}

static void trainer_free(trainer *t) {
    rcv_loader_close(t->loader);
    rcv_recipe_free(&t->rec);
    rcv_augment_free(t->aug);
    rcv_grad_sync_free(t->gsync);
    free(t->perm);
    free(t->lperm);
    free(t->stage_x);
    free(t->stage_z);
    free(t->stage_lab);
    free(t->box_px);
    free(t->stage_box);
    free(t->stage_pb);
    free(t->ema);
    free(t->swa);
    free(t->ms.scratch);
    free(t->ms.lam);
    free(t->ms.t);
    rcv_optim_free(&t->opt);
    if (t->m.g) rcv_model_free(&t->m);
    rcv_ckpt_info_free(&t->info);
    rcv_dataset_free(&t->train);
    rcv_dataset_free(&t->test);
}

int rcv_train_run(const rcv_train_cfg *cfg) {
    trainer t;
    if (trainer_init(&t, cfg)) return -1;
    int rc = setup(&t); // 0, or -1 with a message
    double t_start = rcv_now();
    for (int epoch = t.start_epoch; rc == 0 && epoch < cfg->epochs; epoch++) {
        epoch_stats es;
        rc = train_epoch(&t, epoch, &es); // 1: stopped at --max-steps
        if (rc == 0) rc = finish_epoch(&t, &es);
    }
    if (rc == 0 && !t.quiet) fprintf(stderr, "train: done in %.1f s; checkpoint %s\n", rcv_now() - t_start, t.ckpt);
    if (rc == 0 && cfg->profile && t.rank == 0) rcv_graph_profile_print(t.m.g, stderr, 20);
    trainer_free(&t);
    return rc < 0 ? -1 : 0;
}
