// The model registry: name -> builder, and the frame every model shares
// (input -> normalize -> network -> logits; labels; loss). See models.h.
#include <math.h>
#include <string.h>

#include "nn/nn.h"
#include "robustcv/error.h"
#include "robustcv/init.h"

static const rcv_resnet_arch resnet18 = {RCV_BASIC_BLOCK, {2, 2, 2, 2}};
static const rcv_resnet_arch resnet34 = {RCV_BASIC_BLOCK, {3, 4, 6, 3}};
static const rcv_resnet_arch resnet50 = {RCV_BOTTLENECK, {3, 4, 6, 3}};
static const rcv_resnet_arch resnet101 = {RCV_BOTTLENECK, {3, 4, 23, 3}};
static const rcv_resnet_arch resnet152 = {RCV_BOTTLENECK, {3, 8, 36, 3}};
static const rcv_densenet_arch densenet121 = {{6, 12, 24, 16}};
static const rcv_densenet_arch densenet169 = {{6, 12, 32, 32}};
static const rcv_densenet_arch densenet201 = {{6, 12, 48, 32}};
#define M (-1)
static const rcv_vgg_arch vgg11 = {13, {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}};
static const rcv_vgg_arch vgg13 = {15, {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M}};
static const rcv_vgg_arch vgg16 = {18, {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M}};
static const rcv_vgg_arch vgg19 = {21, {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512,
                                        512, 512, M}};
static const rcv_smallcnn_arch smallcnn = {7, {32, 32, M, 64, 64, M, 128}};
static const rcv_smallcnn_arch smallcnn6 = {8, {32, 32, M, 64, 64, M, 128, 128}};
#undef M
static const rcv_attention_arch attention56 = {{1, 1, 1}};
static const rcv_attention_arch attention92 = {{1, 2, 3}};

// To add a model: a builder in its own file (declared in nn.h), one line here and its name below.
static const rcv_model_spec specs[] = {
    {"smallcnn", "5 conv3x3-bn-relu layers (32-32-64-64-128), 2 max-pools, global pool, fc; 0.14M params",
     rcv_nn_smallcnn, rcv_nn_smallcnn_init, &smallcnn},
    {"smallcnn6", "smallcnn with a second 128-channel conv at 1/4 resolution (32-32-64-64-128-128); 0.29M params; "
                  "the demo's model",
     rcv_nn_smallcnn, rcv_nn_smallcnn_init, &smallcnn6},
    {"resnet18", "torchvision ResNet-18 (BasicBlock, [2, 2, 2, 2]); 11.7M params at 1000 classes", rcv_nn_resnet,
     rcv_nn_resnet_init, &resnet18},
    {"resnet34", "torchvision ResNet-34 (BasicBlock, [3, 4, 6, 3]); 21.8M params at 1000 classes", rcv_nn_resnet,
     rcv_nn_resnet_init, &resnet34},
    {"resnet50", "torchvision ResNet-50 (Bottleneck, [3, 4, 6, 3]); 25.6M params at 1000 classes", rcv_nn_resnet,
     rcv_nn_resnet_init, &resnet50},
    {"resnet101", "torchvision ResNet-101 (Bottleneck, [3, 4, 23, 3]); 44.5M params at 1000 classes",
     rcv_nn_resnet, rcv_nn_resnet_init, &resnet101},
    {"resnet152", "torchvision ResNet-152 (Bottleneck, [3, 8, 36, 3]); 60.2M params at 1000 classes; "
                  "--gamma 0.04278 gives the seed paper's ResNet-152D",
     rcv_nn_resnet, rcv_nn_resnet_init, &resnet152},
    {"densenet121", "torchvision DenseNet-121 (growth 32, blocks [6, 12, 24, 16]); 8.0M params at 1000 classes",
     rcv_nn_densenet, rcv_nn_densenet_init, &densenet121},
    {"densenet169", "torchvision DenseNet-169 (growth 32, blocks [6, 12, 32, 32]); 14.1M params at 1000 classes",
     rcv_nn_densenet, rcv_nn_densenet_init, &densenet169},
    {"densenet201", "torchvision DenseNet-201 (growth 32, blocks [6, 12, 48, 32]); 20.0M params at 1000 classes",
     rcv_nn_densenet, rcv_nn_densenet_init, &densenet201},
    {"vgg11_bn", "torchvision VGG-11 with batchnorm; 132.9M params at 1000 classes", rcv_nn_vgg, rcv_nn_vgg_init,
     &vgg11},
    {"vgg13_bn", "torchvision VGG-13 with batchnorm; 133.1M params at 1000 classes", rcv_nn_vgg, rcv_nn_vgg_init,
     &vgg13},
    {"vgg16_bn", "torchvision VGG-16 with batchnorm; 138.4M params at 1000 classes", rcv_nn_vgg, rcv_nn_vgg_init,
     &vgg16},
    {"vgg19_bn", "torchvision VGG-19 with batchnorm; 143.7M params at 1000 classes", rcv_nn_vgg, rcv_nn_vgg_init,
     &vgg19},
    {"attention56", "Residual Attention Network, Attention-56 (Wang et al. 2017; p=1, t=2, r=1; 1-1-1 modules)",
     rcv_nn_attention, rcv_nn_resnet_init, &attention56},
    {"attention92", "Residual Attention Network, Attention-92 (Wang et al. 2017; p=1, t=2, r=1; 1-2-3 modules)",
     rcv_nn_attention, rcv_nn_resnet_init, &attention92},
};
#define N_MODELS ((int)(sizeof specs / sizeof specs[0]))

static const char *const names[] = {"smallcnn",    "smallcnn6",   "resnet18",    "resnet34",    "resnet50",    "resnet101",
                                    "resnet152",   "densenet121", "densenet169", "densenet201", "vgg11_bn",
                                    "vgg13_bn",    "vgg16_bn",    "vgg19_bn",    "attention56", "attention92"};
_Static_assert(sizeof names / sizeof names[0] == sizeof specs / sizeof specs[0], "one name per registry entry");

const char *const *rcv_model_names(int *n) {
    if (n) *n = N_MODELS;
    return names;
}

static const rcv_model_spec *find_spec(const char *name) {
    for (int i = 0; i < N_MODELS; i++)
        if (name && !strcmp(specs[i].name, name)) return &specs[i];
    return NULL;
}

const char *rcv_model_description(const char *name) {
    const rcv_model_spec *s = find_spec(name);
    return s ? s->description : NULL;
}

void rcv_model_cfg_defaults(rcv_model_cfg *c) {
    memset(c, 0, sizeof *c);
    c->in_c = 3;
    c->in_h = c->in_w = 224;
    c->n_classes = 1000;
    for (int i = 0; i < 4; i++) c->std[i] = 1.0f;
    c->dropout = -1.0f; // the model's own: none, VGG's 0.5 in its classifier
    c->box_lambda = 1.0f;
}

static int check_cfg(const char *name, const rcv_model_cfg *c) {
    if (c->in_c < 1 || c->in_c > 4 || c->in_h < 1 || c->in_w < 1 || c->in_h > RCV_MAX_SIDE || c->in_w > RCV_MAX_SIDE ||
        (long long)c->in_h * c->in_w > RCV_MAX_PIXELS)
        return rcv_fail("model '%s': input %dx%dx%d (CxHxW), expected 1..4 channels, sides 1..%d and at most %d "
                        "pixels (H x W)", name, c->in_c, c->in_h, c->in_w, RCV_MAX_SIDE, RCV_MAX_PIXELS);
    if (c->n_classes < 1 || c->n_classes > RCV_MAX_CLASSES)
        return rcv_fail("model '%s': %d classes, expected 1..%d", name, c->n_classes, RCV_MAX_CLASSES);
    for (int i = 0; i < c->in_c; i++)
        if (!isfinite(c->mean[i]) || !(c->std[i] > 0) || !isfinite(c->std[i]))
            return rcv_fail("model '%s': normalization mean[%d] = %g, std[%d] = %g; expected finite, std > 0", name,
                            i, c->mean[i], i, c->std[i]);
    if (!(c->dropout < 1) || isnan(c->dropout))
        return rcv_fail("model '%s': dropout %g, expected 0 <= p < 1 (or < 0 for the model's default)", name,
                        c->dropout);
    if (!(c->box_lambda >= 0) || !isfinite(c->box_lambda))
        return rcv_fail("model '%s': box loss weight lambda %g, expected a finite number >= 0", name, c->box_lambda);
    if (!isfinite(c->gamma)) return rcv_fail("model '%s': gamma %g, expected a finite number", name, c->gamma);
    if (!(c->label_smoothing >= 0 && c->label_smoothing <= 1))
        return rcv_fail("model '%s': label smoothing %g, expected 0..1", name, c->label_smoothing);
    return 0;
}

static void reset_ids(rcv_model *m) {
    m->input = m->labels = m->logits = m->loss = m->features = -1;
    m->boxes = m->box = m->loss_cls = m->loss_box = -1;
}

#define BOX_SUFFIX "+box"

// "resnet18+box" -> spec of "resnet18", *box = 1.
static const rcv_model_spec *find_spec_full(const char *name, int *box) {
    *box = 0;
    if (!name) return NULL;
    size_t n = strlen(name), k = strlen(BOX_SUFFIX);
    if (n > k && !strcmp(name + n - k, BOX_SUFFIX)) {
        char base[64];
        if (n - k >= sizeof base) return NULL;
        memcpy(base, name, n - k);
        base[n - k] = 0;
        *box = 1;
        return find_spec(base);
    }
    return find_spec(name);
}

int rcv_model_build(rcv_model *m, const char *name, const rcv_model_cfg *cfg) {
    memset(m, 0, sizeof *m);
    reset_ids(m);
    int box;
    const rcv_model_spec *s = find_spec_full(name, &box);
    if (!s) {
        char list[512] = "";
        for (int i = 0; i < N_MODELS; i++) {
            if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
            strncat(list, specs[i].name, sizeof list - strlen(list) - 1);
        }
        return rcv_fail("unknown model '%s'; valid names: %s (each also as NAME" BOX_SUFFIX
                        " with a bounding-box head)", name ? name : "(null)", list);
    }
    rcv_model_cfg c;
    if (cfg) c = *cfg;
    else rcv_model_cfg_defaults(&c);
    if (check_cfg(name, &c)) return -1;
    if (c.gamma != 0.0f && s->build != rcv_nn_resnet)
        return rcv_fail("model '%s': gamma %g is a ResNet option (geometric residual sum); expected 0", name,
                        c.gamma);
    m->cfg = c;
    snprintf(m->name, sizeof m->name, "%s%s", s->name, box ? BOX_SUFFIX : "");

    rcv_graph *g = m->g = rcv_graph_new();
    m->input = rcv_input(g, "input", c.in_c, c.in_h, c.in_w);              // (N, C, H, W) in [0, 1]
    int x = m->input < 0 ? -1 : rcv_normalize(g, "normalize", m->input, c.mean, c.std);
    m->logits = x < 0 ? -1 : s->build(m, x, s->arg);                       // (N, n_classes, 1, 1)
    if (m->logits >= 0) m->labels = rcv_labels(g, "labels");
    if (m->labels >= 0 && !box) m->loss = rcv_cross_entropy(g, "loss", m->logits, m->labels, c.label_smoothing);
    if (m->labels >= 0 && box && rcv_nn_box_head(m, c.box_lambda)) m->loss = -1;
    if (m->loss < 0) {
        rcv_fail_ctx("model '%s' (input %dx%dx%d, %d classes): ", name, c.in_c, c.in_h, c.in_w, c.n_classes);
        rcv_model_free(m);
        return -1;
    }
    if (c.max_numel) { // before rcv_graph_seal_params allocates them
        size_t numel = 0;
        for (int i = 0; i < g->n_params; i++) numel += g->param_info[i].numel;
        if (numel > c.max_numel) {
            rcv_fail("model '%s' (input %dx%dx%d, %d classes) has %zu parameter and buffer elements, more than the "
                     "%zu allowed", name, c.in_c, c.in_h, c.in_w, c.n_classes, numel, c.max_numel);
            rcv_model_free(m);
            return -1;
        }
    }
    if (c.no_init) {
        rcv_graph_seal_params(g);
        return 0;
    }
    if (rcv_model_init(m, c.seed)) {
        rcv_model_free(m);
        return -1;
    }
    return 0;
}

int rcv_model_init(rcv_model *m, uint64_t seed) {
    int box;
    const rcv_model_spec *s = find_spec_full(m->name, &box);
    if (!s || !m->g) return rcv_fail("rcv_model_init: model '%s' is not built", m->name);
    rcv_graph_params_changed(m->g);
    rcv_rng root;
    rcv_rng_init(&root, seed);
    if (rcv_init_default(m->g, &root)) return rcv_fail_ctx("model '%s': ", m->name);
    if (s->init) s->init(m, &root);
    m->cfg.seed = seed;
    return 0;
}

void rcv_model_free(rcv_model *m) {
    if (!m) return;
    rcv_graph_free(m->g);
    memset(m, 0, sizeof *m);
    reset_ids(m);
}

int rcv_model_find_node(const rcv_model *m, const char *module) {
    if (!m->g || !module || !module[0]) return -1;
    size_t len = strlen(module);
    for (int i = m->g->n_nodes - 1; i >= 0; i--) {
        const char *n = m->g->nodes[i].name;
        if (!strncmp(n, module, len) && (n[len] == '\0' || n[len] == '.')) return i;
    }
    return -1;
}

int rcv_model_set_label_smoothing(rcv_model *m, float ls) {
    if (!m->g || m->loss < 0) return rcv_fail("rcv_model_set_label_smoothing: model is not built");
    if (!(ls >= 0 && ls <= 1)) return rcv_fail("label smoothing %g, expected 0..1", ls);
    m->g->nodes[m->loss_cls >= 0 ? m->loss_cls : m->loss].attr.loss.label_smoothing = ls;
    m->cfg.label_smoothing = ls;
    return 0;
}

int rcv_model_set_box_lambda(rcv_model *m, float lambda) {
    if (!m->g || m->loss < 0) return rcv_fail("rcv_model_set_box_lambda: model is not built");
    if (m->loss_box < 0) return rcv_fail("--box-lambda %g: model '%s' has no box head (use NAME+box)", lambda, m->name);
    if (!(lambda >= 0) || !isfinite(lambda))
        return rcv_fail("box loss weight lambda %g, expected a finite number >= 0", lambda);
    m->g->nodes[m->loss].attr.loss.beta2 = lambda; // the "loss" node is scale_add(loss_cls, loss_box, 1, lambda)
    m->cfg.box_lambda = lambda;
    return 0;
}
