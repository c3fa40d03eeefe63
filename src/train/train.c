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

int rcv_train_run(const rcv_train_cfg *cfg) {
    int rank = rcv_dist_rank(), nr = rcv_dist_size();
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    else if (nr > 1) { // ranks on one machine share its cores
        int t = omp_get_num_procs() / rcv_dist_local_size();
        omp_set_num_threads(t > 0 ? t : 1);
    }
    if (cfg->batch <= 0 || cfg->epochs <= 0)
        return rcv_fail("train: batch %d and epochs %d must be positive", cfg->batch, cfg->epochs);
    if (cfg->batch % nr)
        return rcv_fail("train: --batch %d (the global batch) is not divisible by the %d ranks", cfg->batch, nr);
    int local = cfg->batch / nr, quiet = cfg->quiet || rank != 0;
    rcv_grad_sync *gsync = NULL;
    rcv_dataset train = {0}, test = {0};
    rcv_model m = {0};
    rcv_optim opt = {0};
    rcv_ckpt_info info = {0};
    rcv_recipe rec = {0};
    rcv_augment *aug = NULL;
    int *perm = NULL, *lperm = NULL, rc = -1;
    rcv_loader *loader = NULL;
    float *stage_x = NULL, *stage_z = NULL, *box_px = NULL, *stage_box = NULL, *stage_pb = NULL;
    float *ema = NULL, *swa = NULL;
    mix_stage ms = {0};
    char ema_path[600], swa_path[600];
    snprintf(ema_path, sizeof ema_path, "%s/ema.safetensors", cfg->out_dir);
    snprintf(swa_path, sizeof swa_path, "%s/swa.safetensors", cfg->out_dir);
    int mixing = rcv_mix_enabled(&cfg->mix), with_ema = cfg->ema.decay > 0, with_swa = cfg->swa.start >= 0;
    int32_t *stage_lab = NULL;
    char ckpt[600], metrics[600];
    snprintf(ckpt, sizeof ckpt, "%s/last.safetensors", cfg->out_dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", cfg->out_dir);

    if (rcv_data_open(cfg->data, 1, &train) || rcv_data_open(cfg->data, 0, &test)) goto out;
    if (cfg->subset > 0) {
        if (train.n > cfg->subset) train.n = cfg->subset;
        if (test.n > cfg->subset) test.n = cfg->subset;
    }
    if (train.n < cfg->batch) {
        rcv_fail("train: %s has %d training images, fewer than one batch of %d", cfg->data, train.n, cfg->batch);
        goto out;
    }
    if (rcv_dist_any(rank == 0 && rcv_mkdir_p(cfg->out_dir))) {
        if (rank) rcv_fail("train: rank 0 could not create %s", cfg->out_dir);
        goto out;
    }

    int start_epoch = 0;
    int64_t step = 0;
    rcv_rng rng;
    rcv_rng_init(&rng, cfg->seed);
    int resuming = cfg->resume && file_exists(ckpt);
    if (cfg->resume && !resuming && !quiet)
        fprintf(stderr, "resume: no checkpoint at %s, starting from scratch\n", ckpt);
    if (resuming) {
        if (rcv_ckpt_load_model(ckpt, &m, &info)) goto out;
        if (strcmp(m.name, cfg->model)) {
            rcv_fail("resume: %s holds model '%s', this run asks for '%s'", ckpt, m.name, cfg->model);
            goto out;
        }
        start_epoch = info.epoch;
        step = info.step;
        rng = info.rng;
    } else {
        rcv_model_cfg mc = cfg->mcfg;
        mc.in_c = train.c;
        mc.in_h = train.h;
        mc.in_w = train.w;
        mc.n_classes = train.n_classes;
        mc.seed = cfg->seed;
        rcv_dataset_mean_std(&train, mc.mean, mc.std);
        if (rcv_model_build(&m, cfg->model, &mc)) goto out;
    }
    if (m.cfg.in_c != train.c || m.cfg.in_h != train.h || m.cfg.in_w != train.w || m.cfg.n_classes != train.n_classes) {
        rcv_fail("train: model expects %dx%dx%d images and %d classes, %s has %dx%dx%d and %d", m.cfg.in_c,
                 m.cfg.in_h, m.cfg.in_w, m.cfg.n_classes, cfg->data, train.c, train.h, train.w, train.n_classes);
        goto out;
    }
    if (cfg->label_smoothing > 0 && rcv_model_set_label_smoothing(&m, cfg->label_smoothing)) goto out;
    int with_box = m.boxes >= 0;
    if (with_box && !train.boxes) {
        rcv_fail("train: model '%s' has a box head and needs bounding boxes; data source %s has none (Tiny "
                 "ImageNet's train/ and val/ carry them)", m.name, cfg->data);
        goto out;
    }
    // The other recipes build their own loss from the logits and would drop the box term.
    if (with_box && cfg->recipe.kind != RCV_RECIPE_STANDARD && cfg->recipe.kind != RCV_RECIPE_AUGMENT_CURRICULUM) {
        rcv_fail("train: --recipe %s does not support box models ('%s'); use standard or augment-curriculum",
                 rcv_recipe_name(cfg->recipe.kind), m.name);
        goto out;
    }
    if (!with_box && cfg->mcfg.box_lambda != 1.0f) {
        rcv_fail("train: --box-lambda %g applies to box models (NAME+box); '%s' has no box head", cfg->mcfg.box_lambda,
                 m.name);
        goto out;
    }
    // On resume the command line's lambda applies, as its other loss settings do.
    if (with_box && rcv_model_set_box_lambda(&m, cfg->mcfg.box_lambda)) goto out;
    // Transfer learning: weights only on a fresh start; freezing and rates again on resume (not checkpointed).
    if (rcv_transfer_apply(&m, &cfg->transfer, !resuming, cfg->quiet)) goto out;

    if (rcv_optim_init(&opt, &cfg->opt, m.g->n_param_floats)) goto out;
    if (resuming && rcv_ckpt_load_optim(ckpt, &opt)) goto out;
    rcv_sched sched;
    if (rcv_sched_parse(&sched, cfg->sched)) goto out;
    rcv_sched_set_total(&sched, cfg->epochs);

    m.g->device = cfg->device;
    rcv_graph_set_precision(m.g, cfg->backend, cfg->precision);
    // Augmentation on the loader threads: the caller's hook, else the --augment pipeline (every
    // epoch; from raw_epochs on for augment-curriculum, whose default is the recipe's spec).
    rcv_sample_fn sample_fn = cfg->sample_fn;
    void *sample_ctx = cfg->sample_ctx;
    int curriculum = cfg->recipe.kind == RCV_RECIPE_AUGMENT_CURRICULUM;
    const char *spec = cfg->augment[0] ? cfg->augment : curriculum ? cfg->recipe.augment : "";
    if (!sample_fn && spec[0]) {
        if (rcv_augment_parse(&aug, spec)) goto out;
        sample_fn = augment_sample, sample_ctx = aug;
    }
    if (curriculum && !sample_fn) {
        rcv_fail("train: --recipe augment-curriculum needs an augmentation pipeline (--augment SPEC)");
        goto out;
    }
    // Data-parallel gradients are allreduced during one backward pass; the robust recipes run
    // two or more per step, so they stay on one rank.
    if (nr > 1 && cfg->recipe.kind != RCV_RECIPE_STANDARD && cfg->recipe.kind != RCV_RECIPE_AUGMENT_CURRICULUM) {
        rcv_fail("train: --recipe %s runs on one rank (it takes several backward passes per step); run it "
                 "without mpirun", rcv_recipe_name(cfg->recipe.kind));
        goto out;
    }
    if (rcv_mix_check(&cfg->mix) || rcv_ema_check(&cfg->ema) || rcv_swa_check(&cfg->swa, cfg->epochs)) goto out;
    if ((mixing || with_ema || with_swa) && cfg->backend == RCV_BACKEND_CUDA) {
        rcv_fail("train: --mixup/--cutmix, --ema and --swa-start run on the cpu (or ref) backend only; use --device cpu");
        goto out;
    }
    if (mixing && (with_box || (cfg->recipe.kind != RCV_RECIPE_STANDARD && cfg->recipe.kind != RCV_RECIPE_AUGMENT_CURRICULUM))) {
        rcv_fail("train: --mixup/--cutmix train on soft targets with the standard or augment-curriculum recipe and "
                 "no box head (here: recipe %s, model '%s')", rcv_recipe_name(cfg->recipe.kind), m.name);
        goto out;
    }
    if (mixing && local % 2) {
        rcv_fail("train: --mixup/--cutmix pair image i with N-1-i and need an even batch per rank, got %d", local);
        goto out;
    }
    if (rcv_recipe_init(&rec, &cfg->recipe, &m)) goto out;
    if (rcv_graph_plan(m.g, local, cfg->backend)) goto out;
    if (cfg->profile) rcv_graph_profile(m.g, 1);
    // Every rank starts from rank 0's weights (they agree already: same seed or checkpoint).
    rcv_dist_bcast(m.g->params, m.g->n_param_floats * sizeof(float), 0);
    rcv_graph_params_changed(m.g);
    rcv_dist_bcast(m.g->buffers, m.g->n_buffer_floats * sizeof(float), 0);
    if (cfg->sync_bn) rcv_dist_sync_bn(m.g, 1);
    m.g->shard = rank;
    m.g->n_shards = nr;
    gsync = rcv_grad_sync_new(m.g, (size_t)((double)cfg->bucket_mb * 1048576.0));
    size_t npf = m.g->n_param_floats;
    if (mixing) {
        size_t per = (size_t)train.c * train.h * train.w;
        ms.scratch = rcv_xmalloc((size_t)local * per * sizeof(float));
        ms.lam = rcv_xmalloc((size_t)local * sizeof(float));
        ms.t = rcv_xmalloc((size_t)local * m.cfg.n_classes * sizeof(float));
    }
    // EMA starts as a copy of the weights (timm's deepcopy); SWA's average fills at its first epoch.
    if (with_ema) {
        ema = rcv_xmalloc(npf * sizeof(float));
        memcpy(ema, m.g->params, npf * sizeof(float));
        if (resuming && step > 0 && !file_exists(ema_path) && !quiet)
            fprintf(stderr, "resume: no %s (the run had no --ema?): the EMA starts from the current weights\n", ema_path);
        else if (resuming && step > 0 && load_average(ema_path, &m, start_epoch, ema)) goto out;
    }
    if (with_swa) {
        swa = rcv_xcalloc(npf, sizeof(float));
        if (resuming && start_epoch > cfg->swa.start && load_average(swa_path, &m, start_epoch, swa)) goto out;
    }
    int bad = 0;
    if (rank == 0) {
        if (resuming) bad = trim_metrics(metrics, start_epoch);
        else if (file_exists(metrics) && remove(metrics))
            bad = rcv_fail("cannot remove old %s: %s", metrics, strerror(errno));
    }
    if (rcv_dist_any(bad)) {
        if (rank) rcv_fail("train: rank 0 could not prepare %s", metrics);
        goto out;
    }
    if (!quiet) {
        fprintf(stderr, "train: %s (%zu parameters) on %s: %d train / %d test images, batch %d, %d epochs, recipe %s%s\n",
                m.name, rcv_graph_param_count(m.g), cfg->data, train.n, test.n, cfg->batch, cfg->epochs,
                rcv_recipe_name(cfg->recipe.kind), resuming ? " (resumed)" : "");
        if (nr > 1)
            fprintf(stderr, "train: %d ranks x batch %d, %d gradient bucket(s)%s\n", nr, local,
                    rcv_grad_sync_buckets(gsync), cfg->sync_bn ? ", synchronised batchnorm" : "");
    }

    int steps_per_epoch = train.n / cfg->batch; // the last partial batch is dropped (drop_last)
    perm = rcv_xmalloc((size_t)train.n * sizeof(int));
    lperm = rcv_xmalloc((size_t)train.n * sizeof(int));
    rcv_graph *g = m.g;
    int k = m.cfg.n_classes;
    // A GPU plan is fed from host staging buffers; its logits come back once per step.
    int on_dev = rcv_graph_on_device(g);
    size_t x_floats = (size_t)local * train.c * train.h * train.w;
    if (on_dev) {
        stage_x = rcv_xmalloc(x_floats * sizeof(float));
        stage_lab = rcv_xmalloc((size_t)local * sizeof(int32_t));
        stage_z = rcv_xmalloc((size_t)local * k * sizeof(float));
    }
    // Box models: the loader's boxes (local, 4) in pixels, the normalised targets and the predictions.
    float *tbox = NULL;
    const float *pbox = NULL;
    if (with_box) {
        box_px = rcv_xmalloc((size_t)local * 4 * sizeof(float));
        if (on_dev) {
            stage_box = rcv_xmalloc((size_t)local * 4 * sizeof(float));
            stage_pb = rcv_xmalloc((size_t)local * 4 * sizeof(float));
        }
        tbox = on_dev ? stage_box : g->nodes[m.boxes].out;
        pbox = on_dev ? stage_pb : g->nodes[m.box].out;
    }
    float *x = on_dev ? stage_x : g->nodes[m.input].out;
    int32_t *lab = on_dev ? stage_lab : g->nodes[m.labels].idata;
    const float *z = on_dev ? stage_z : g->nodes[m.logits].out; // a recipe may point it elsewhere
    // fp16: dynamic loss scaling (PyTorch GradScaler's defaults: 2^16, halve on overflow and
    // skip the step, double after 2000 good steps).
    // A robust recipe on the GPU runs its own forward/backward passes (rcv_recipe_step, unscaled).
    int dev_recipe = on_dev && cfg->recipe.kind != RCV_RECIPE_STANDARD && cfg->recipe.kind != RCV_RECIPE_AUGMENT_CURRICULUM;
    float loss_scale = cfg->precision == RCV_PREC_FP16 && on_dev && !dev_recipe ? 65536.0f : 1.0f;
    int good_steps = 0;
    double t_start = rcv_now();
    for (int epoch = start_epoch; epoch < cfg->epochs; epoch++) {
        // Shuffle and dropout streams depend only on (seed, epoch).
        rcv_rng er = rcv_rng_fork(&rng, (uint64_t)epoch);
        rcv_rng_permutation(&er, perm, train.n);
        g->rng = rcv_rng_fork(&rng, 1000000u + (uint64_t)epoch);
        // Augmentation streams: per sample, forked from one per-epoch stream. The
        // augmentation curriculum trains its first raw_epochs on raw images.
        rcv_rng sr = rcv_rng_fork(&rng, 2000000u + (uint64_t)epoch);
        rcv_rng rr = rcv_rng_fork(&rng, 3000000u + (uint64_t)epoch); // the recipe's noise, AugMix, PGD starts
        rcv_rng mr0 = rcv_rng_fork(&rng, 4000000u + (uint64_t)epoch), mr = rcv_rng_fork(&mr0, (uint64_t)rank); // mixing
        int swa_epoch = with_swa && epoch >= cfg->swa.start;
        double swa_lr = swa_epoch ? rcv_swa_lr(&cfg->swa, rcv_sched_lr(&sched, cfg->opt.lr, cfg->swa.start), epoch) : 0;
        int aug_on = sample_fn && (!curriculum || rcv_recipe_augment_on(&cfg->recipe, epoch));
        // This rank's slice of every global batch (all of it on one rank).
        for (int st = 0; st < steps_per_epoch; st++)
            memmove(lperm + (size_t)st * local, perm + (size_t)st * cfg->batch + (size_t)rank * local,
                    (size_t)local * sizeof(int));
        if (rcv_loader_open(&loader, &train, local, lperm, steps_per_epoch, aug_on ? sample_fn : NULL, sample_ctx,
                            &sr, cfg->loader_threads))
            goto out;
        rcv_graph_set_training(g, 1);
        char label[64];
        snprintf(label, sizeof label, "epoch %d/%d", epoch + 1, cfg->epochs);
        rcv_progress pr;
        rcv_progress_start(&pr, label, (long)steps_per_epoch * cfg->batch, quiet);
        double loss_sum = 0, box_loss_sum = 0, iou_sum = 0, t0 = rcv_now();
        long correct = 0, seen = 0;
        float lr = 0;
        for (int s = 0; s < steps_per_epoch; s++) {
            if (cfg->max_steps && step >= cfg->max_steps) {
                rcv_progress_end(&pr, "stopped at --max-steps");
                rc = 0;
                goto out;
            }
            if (rcv_loader_next(loader, x, lab, box_px)) goto out;
            if (with_box) rcv_boxes_normalize(box_px, local, train.w, train.h, tbox);
            float loss, box_loss = 0;
            if (on_dev) {
                rcv_graph_upload(g, g->nodes[m.input].out, x, x_floats * sizeof(float));
                rcv_graph_upload(g, g->nodes[m.labels].idata, lab, (size_t)local * sizeof(int32_t));
                if (with_box) rcv_graph_upload(g, g->nodes[m.boxes].out, tbox, (size_t)local * 4 * sizeof(float));
                if (dev_recipe) {
                    loss = rcv_recipe_step(&rec, &rr);
                    z = rcv_recipe_logits(&rec);
                } else {
                    rcv_graph_forward(g);
                    rcv_graph_download(g, &loss, g->nodes[m.loss].out, sizeof loss);
                }
                if (with_box) rcv_graph_download(g, &box_loss, g->nodes[m.loss_box].out, sizeof box_loss);
            } else if (mixing) {
                loss = mix_step(cfg, &m, &ms, &mr); // logits in the node; accuracy against the unmixed labels
            } else {
                loss = rcv_recipe_step(&rec, &rr); // forward, zero_grad, backward: the recipe's gradient
                z = rcv_recipe_logits(&rec);
                if (with_box) box_loss = g->nodes[m.loss_box].out[0]; // outputs outlive the backward pass
            }
            if (nr > 1) { // the global batch's mean loss: every rank sees (and stops on) the same value
                double l[2] = {loss, box_loss};
                rcv_dist_allreduce_f64(l, 2);
                loss = (float)(l[0] / nr), box_loss = (float)(l[1] / nr);
            }
            if (!isfinite(loss)) {
                rcv_fail("train: loss is %g at epoch %d step %d (lr %g); stopping. The last good checkpoint, if any, "
                         "is %s", loss, epoch + 1, s + 1, lr, ckpt);
                goto out;
            }
            if (on_dev && !dev_recipe) {
                rcv_graph_zero_grad(g);
                rcv_graph_backward(g, m.loss, loss_scale);
            }
            rcv_grad_sync_finish(gsync); // the data-parallel allreduce (a no-op on one rank)
            int skip = 0;
            if (loss_scale != 1.0f) {
                float norm = rcv_grad_norm(g);
                if (!isfinite(norm)) {
                    skip = 1;
                    loss_scale *= 0.5f;
                    good_steps = 0;
                } else {
                    rcv_grad_scale(g, 1.0f / loss_scale);
                    if (++good_steps == 2000) loss_scale *= 2.0f, good_steps = 0;
                }
            }
            if (cfg->clip > 0 && !skip) rcv_clip_grad_norm(g, cfg->clip);
            lr = swa_epoch ? (float)swa_lr : rcv_sched_lr(&sched, cfg->opt.lr, epoch + (double)s / steps_per_epoch);
            if (!skip && rcv_optim_step(&opt, g, lr)) goto out;
            if (!skip && with_ema) rcv_ema_update(ema, g->params, npf, rcv_ema_decay(&cfg->ema, step + 1));
            if (on_dev && !dev_recipe) rcv_graph_download(g, stage_z, g->nodes[m.logits].out, (size_t)local * k * sizeof(float));
            if (on_dev && with_box) rcv_graph_download(g, stage_pb, g->nodes[m.box].out, (size_t)local * 4 * sizeof(float));
            step++;
            loss_sum += loss;
            box_loss_sum += box_loss;
            for (int i = 0; with_box && i < local; i++) iou_sum += rcv_box_iou(pbox + 4 * (size_t)i, tbox + 4 * (size_t)i);
            for (int i = 0; i < local; i++) {
                const float *zi = z + (size_t)i * k;
                int am = 0;
                for (int j = 1; j < k; j++)
                    if (zi[j] > zi[am]) am = j;
                correct += am == lab[i];
            }
            seen += local;
            char extra[64];
            if (with_box) snprintf(extra, sizeof extra, "loss %.4f iou %.3f", loss_sum / (s + 1), iou_sum / seen);
            else snprintf(extra, sizeof extra, "loss %.4f", loss_sum / (s + 1));
            rcv_progress_update(&pr, seen * nr, extra);
        }
        rcv_loader_close(loader);
        loader = NULL;
        double t_train = rcv_now() - t0;
        if (nr > 1) {
            int64_t cs[2] = {correct, seen};
            rcv_dist_allreduce_i64(cs, 2);
            correct = (long)cs[0], seen = (long)cs[1];
            if (with_box) rcv_dist_allreduce_f64(&iou_sum, 1);
            if (!cfg->sync_bn) rcv_dist_average_buffers(g); // one set of running stats to save
        }
        char extra[64];
        snprintf(extra, sizeof extra, "loss %.4f", loss_sum / steps_per_epoch);
        rcv_progress_end(&pr, extra);

        rcv_eval_result ev;
        double *prof = g->prof; // the profile is of training steps only
        g->prof = NULL;
        bad = rcv_evaluate(&m, &test, local, cfg->backend, &ev);
        g->prof = prof;
        if (bad) goto out;
        rcv_eval_result_free(&ev);

        rcv_ckpt_info ci = {epoch + 1, step, rng, train.class_names, train.n_classes};
        // EMA and SWA: evaluated beside the raw weights, saved before last.safetensors (resume checks the epochs).
        char avgf[512] = "";
        int na = 0;
        rcv_eval_result eva;
        if (with_ema) {
            if (rcv_dist_any(eval_average(&m, ema, &test, local, cfg->backend, rank == 0 ? ema_path : NULL, &ci, &eva)))
                goto out;
            na += snprintf(avgf + na, sizeof avgf - (size_t)na, ", \"ema_test_loss\": %.6f, \"ema_test_top1\": %.6f, "
                           "\"ema_test_top5\": %.6f", eva.loss, eva.top1, eva.top5);
            if (!quiet) fprintf(stderr, "ema: test loss %.4f top-1 %.2f%% (%s)\n", eva.loss, 100 * eva.top1, ema_path);
            rcv_eval_result_free(&eva);
        }
        if (swa_epoch) {
            rcv_swa_update(swa, g->params, npf, epoch - cfg->swa.start);
            int last_epoch = epoch + 1 == cfg->epochs;
            if (last_epoch) { // the average's batchnorm statistics from the training data, the model's restored
                float *bsave = rcv_xmalloc(g->n_buffer_floats * sizeof(float));
                int64_t *isave = rcv_xmalloc(g->n_ibuffers * sizeof(int64_t) + 1);
                memcpy(bsave, g->buffers, g->n_buffer_floats * sizeof(float));
                memcpy(isave, g->ibuffers, g->n_ibuffers * sizeof(int64_t));
                rcv_params_swap(g, swa);
                bad = rcv_update_bn(&m, &train, train.n);
                rcv_params_swap(g, swa);
                bad = bad || eval_average(&m, swa, &test, local, cfg->backend, rank == 0 ? swa_path : NULL, &ci, &eva);
                memcpy(g->buffers, bsave, g->n_buffer_floats * sizeof(float));
                memcpy(g->ibuffers, isave, g->n_ibuffers * sizeof(int64_t));
                free(bsave);
                free(isave);
            } else {
                bad = eval_average(&m, swa, &test, local, cfg->backend, rank == 0 ? swa_path : NULL, &ci, &eva);
            }
            if (rcv_dist_any(bad)) goto out;
            na += snprintf(avgf + na, sizeof avgf - (size_t)na, ", \"swa_lr\": %.6g, \"swa_models\": %d, "
                           "\"swa_test_loss\": %.6f, \"swa_test_top1\": %.6f%s", swa_lr, epoch - cfg->swa.start + 1,
                           eva.loss, eva.top1, last_epoch ? ", \"swa_bn_updated\": true" : "");
            if (!quiet)
                fprintf(stderr, "swa: %d model(s) averaged, lr %g, test top-1 %.2f%%%s (%s)\n", epoch - cfg->swa.start + 1,
                        swa_lr, 100 * eva.top1, last_epoch ? " after update_bn" : " (running statistics not yet updated)",
                        swa_path);
            rcv_eval_result_free(&eva);
        }
        bad = 0;
        if (rank == 0 && rcv_sched_cycle_end(&sched, epoch)) {
            char snap[600];
            snprintf(snap, sizeof snap, "%s/snapshot_%d.safetensors", cfg->out_dir, (epoch + 1) / (2 * sched.step_size + 1));
            bad = rcv_ckpt_save(snap, &m, NULL, &ci);
            if (!bad && !quiet) fprintf(stderr, "snapshot: %s (end of cycle at epoch %d)\n", snap, epoch + 1);
        }
        if (rcv_dist_any(bad)) goto out;
        // Box models add their terms (train_loss is then CE + lambda box loss; test_loss stays CE).
        char boxf[256] = "";
        if (with_box) {
            int nb = snprintf(boxf, sizeof boxf, ", \"train_box_loss\": %.6f, \"train_iou\": %.6f",
                              box_loss_sum / steps_per_epoch, iou_sum / seen);
            if (ev.box_n)
                snprintf(boxf + nb, sizeof boxf - (size_t)nb, ", \"test_box_loss\": %.6f, \"test_iou\": %.6f, "
                         "\"test_iou50\": %.6f", ev.box_loss, ev.box_iou, ev.box_iou50);
        }
        char line[1280];
        snprintf(line, sizeof line,
                 "{\"epoch\": %d, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                 "\"test_loss\": %.6f, \"test_top1\": %.6f, \"test_top5\": %.6f%s%s, \"train_seconds\": %.3f, "
                 "\"images_per_second\": %.1f}\n",
                 epoch + 1, (long long)step, lr, loss_sum / steps_per_epoch, (double)correct / seen, ev.loss, ev.top1,
                 ev.top5, boxf, avgf, t_train, seen / t_train);
        // Rank 0 writes; the others wait here (and stop with it if it fails). The metrics line
        // first: a run killed before its checkpoint lands drops the line on resume (trim_metrics)
        // and redoes the epoch; the other order lost the line of a run killed in between.
        bad = rank == 0 && (append_line(metrics, line) || rcv_ckpt_save(ckpt, &m, &opt, &ci));
        if (rcv_dist_any(bad)) {
            if (rank) rcv_fail("train: rank 0 could not write %s or %s", ckpt, metrics);
            goto out;
        }
        if (!quiet) {
            char bt[96] = "", bv[96] = "";
            if (with_box) snprintf(bt, sizeof bt, " box %.4f iou %.3f", box_loss_sum / steps_per_epoch, iou_sum / seen);
            if (ev.box_n) snprintf(bv, sizeof bv, " iou %.3f (>= 0.5: %.1f%%)", ev.box_iou, 100 * ev.box_iou50);
            fprintf(stderr, "epoch %d/%d: train loss %.4f acc %.2f%%%s | test loss %.4f top-1 %.2f%% top-5 %.2f%%%s | %.1f s\n",
                    epoch + 1, cfg->epochs, loss_sum / steps_per_epoch, 100.0 * correct / seen, bt, ev.loss,
                    100 * ev.top1, 100 * ev.top5, bv, t_train);
        }
    }
    if (!quiet) fprintf(stderr, "train: done in %.1f s; checkpoint %s\n", rcv_now() - t_start, ckpt);
    if (cfg->profile && rank == 0) rcv_graph_profile_print(m.g, stderr, 20);
    rc = 0;
out:
    rcv_loader_close(loader);
    rcv_recipe_free(&rec);
    rcv_augment_free(aug);
    rcv_grad_sync_free(gsync);
    free(perm);
    free(lperm);
    free(stage_x);
    free(stage_z);
    free(stage_lab);
    free(box_px);
    free(stage_box);
    free(stage_pb);
    free(ema);
    free(swa);
    free(ms.scratch);
    free(ms.lam);
    free(ms.t);
    rcv_optim_free(&opt);
    if (m.g) rcv_model_free(&m);
    rcv_ckpt_info_free(&info);
    rcv_dataset_free(&train);
    rcv_dataset_free(&test);
    return rc;
}
