// Class activation maps and the images that show them.
//
// Methods, for image x, target class k and a feature map A = layer(x) of shape (C, h, w):
//   CAM       (Zhou et al. 2016) for models whose head is global-average-pool -> linear (fc);
//             the layer is m->features, the pool's input: cam = sum_c W[k, c] A_c (no bias, no ReLU).
//   Grad-CAM  (Selvaraju et al. 2017) any layer: g = d logit_k / dA, w_c = mean_{ij} g_c,
//             cam = ReLU(sum_c w_c A_c).
//   Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the gradient powers of a linear output, as
//             pytorch-grad-cam computes it): a_cij = g^2 / (2 g^2 + (sum_ij A_c) g^3 + 1e-6), a = 0
//             where g = 0; w_c = sum_ij ReLU(g_cij) a_cij; cam = ReLU(sum_c w_c A_c).
// Normalisation (pytorch-grad-cam's scale_cam_image, applied as its BaseCAM does): the map at the
// layer's resolution is min-max scaled, x' = (x - min) / (max - min + 1e-7), resized bilinearly to
// the input size (half-pixel centres, edges clamped: cv2.resize INTER_LINEAR = PyTorch's
// align_corners=False), then min-max scaled again. Maps are in [0, 1]; a constant map gives 0.
// The model runs in eval mode; the logit is the raw score, before softmax.
#ifndef RCV_EXPLAIN_H
#define RCV_EXPLAIN_H

#include <stdint.h>

#include "robustcv/draw.h"
#include "robustcv/graph.h"
#include "robustcv/image.h"
#include "robustcv/models.h"

typedef enum { RCV_CAM_CAM = 0, RCV_CAM_GRADCAM = 1, RCV_CAM_GRADCAMPP = 2 } rcv_cam_method;
// "cam", "gradcam", "gradcam++" (also "gradcampp"); -1 with a message listing them otherwise.
int rcv_cam_method_parse(const char *s, rcv_cam_method *out);
const char *rcv_cam_method_name(rcv_cam_method m);

typedef struct {
    rcv_model *m;
    rcv_cam_method method;
    int layer;         // node id of the feature map
    int batch;         // planned batch size
    float *seed;       // (batch, K) one-hot logit gradients
    double *cam;       // (h, w) scratch
} rcv_explainer;

// Sets up maps of `method` at module `layer` (rcv_model_find_node names; NULL or "" = the model's
// feature map, m->features). Marks the layer for gradients and plans the graph for `batch` images
// on `backend` (re-planning any earlier plan). CAM checks that the layer feeds global-avg-pool
// -> (dropout) -> linear logits. -1 with a message naming the layer otherwise.
int rcv_explainer_init(rcv_explainer *e, rcv_model *m, rcv_cam_method method, const char *layer, int batch,
                       rcv_backend backend);
// x: (n, H, W, C) pixels in [0,1], n <= batch; classes: n target classes; maps: (n, H, W) in [0,1].
// Afterwards the model's logits node holds the logits of x (first n rows). Parameter gradients
// are left modified (zero them before training with this model).
int rcv_explainer_run(rcv_explainer *e, const float *x, int n, const int32_t *classes, float *maps);
void rcv_explainer_free(rcv_explainer *e);

// The normalisation above: cam (h, w) -> out (H, W).
void rcv_cam_scale(const double *cam, int h, int w, int H, int W, float *out);
// Bilinear resize of a float map (half-pixel centres, clamped edges): in (h, w) -> out (H, W).
void rcv_resize_bilinear_f32(const float *in, int h, int w, int H, int W, float *out);

// --- images ---
// Pixels in [0,1] (H, W, C), C = 1 or 3 -> 8-bit image.
void rcv_image_from_float(const float *x, int w, int h, int c, rcv_image *out);
// RGB overlay: out = (1 - alpha) * img + alpha * jet(map); img gray or RGB, map (img->h, img->w).
void rcv_cam_overlay(const rcv_image *img, const float *map, float alpha, rcv_image *out);

// A figure of captioned panels: rows x cols cells, panel r*cols+c drawn at `scale` (nearest), its
// caption (may hold '\n', NULL = none) centred under it, an optional title on top. Cells are as
// wide as the widest panel or caption line in their column. out is allocated (RGB).
typedef struct {
    const rcv_image *img; // NULL = empty cell
    const char *caption;
} rcv_panel;
void rcv_panel_grid(const rcv_panel *p, int rows, int cols, int scale, const char *title, rcv_image *out);

// One row per image: image | top-1 | top-2 | top-3 overlays (n_top <= 3 columns after the image),
// captioned "1. <class name>\n<prob>%". maps: (n_img, n_top, H, W); classes, probs: (n_img, n_top);
// names: class names indexed by class (NULL = numbers). Written with rcv_png_write.
int rcv_cam_grid_png(const char *path, const rcv_image *imgs, int n_img, int n_top, const float *maps,
                     const int32_t *classes, const float *probs, const char *const *names, int scale,
                     const char *title);
// Clean vs adversarial: clean | clean map | adversarial | adversarial map, each map for the
// class its image is predicted as (captions "clean: <name> <p>%" and "adv: <name> <p>%").
int rcv_cam_pair_png(const char *path, const rcv_image *clean, const float *clean_map, const char *clean_caption,
                     const rcv_image *adv, const float *adv_map, const char *adv_caption, int scale,
                     const char *title);
// First-layer filters: a conv weight (O, I, kh, kw) as a grid of O tiles, each min-max scaled on
// its own; RGB when I = 3, else the mean over input channels in gray. `tile` pixels per weight.
int rcv_filters_png(const char *path, const float *weight, int o, int i, int kh, int kw, int tile,
                    const char *title);

#endif
