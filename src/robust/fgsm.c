// FGSM (Goodfellow et al. 2015): one signed-gradient step of size eps, clamped
// to [0, 1] (the seed's x_adv = clamp(x + eps * sign(grad_x loss), 0, 1)).
#include <string.h>

#include "robust/robust.h"
#include "robustcv/error.h"

void rcv_fgsm_defaults(rcv_fgsm_cfg *c) {
    memset(c, 0, sizeof *c);
    c->eps = 8.0f / 255.0f;
}

int rcv_attack_fgsm(rcv_model *const *models, int n_models, const float *x, const int32_t *y, int n,
                    const rcv_fgsm_cfg *c, float *x_adv) {
    if (rcv_attack_check_models(models, n_models)) return -1;
    if (!(c->eps >= 0)) return rcv_fail("fgsm: eps %g, expected >= 0", c->eps);
    // One model: the step in the plan's storage (on a GPU plan, no gradient comes to the host).
    if (n_models == 1) return rcv_attack_linf_resident(models[0], x, y, NULL, n, NULL, c->eps, -1, 1, c->targeted, x_adv);
    size_t total = (size_t)n * rcv_attack_per_image(models[0]);
    float *grad = rcv_xmalloc(total * sizeof(float));
    rcv_attack_input_grad(models, n_models, x, y, n, c->targeted, grad, NULL);
    for (size_t e = 0; e < total; e++) x_adv[e] = rcv_clamp01(x[e] + c->eps * rcv_signf(grad[e]));
    free(grad);
    return 0;
}
