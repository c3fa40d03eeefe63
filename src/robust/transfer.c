// Transfer (black-box) attacks: examples crafted on one or more source models
// (the seed crafted FGSM on DenseNet and attacked a ResNet) and scored on a
// target model whose gradients are never read.
#include "robust/robust.h"
#include "robustcv/error.h"

int rcv_attack_transfer(rcv_model *const *sources, int n_sources, rcv_model *target, const rcv_transfer_cfg *c,
                        const float *x, const int32_t *y, int n, rcv_rng *rng, float *x_adv, rcv_attack_stats *st) {
    if (rcv_attack_check_models(sources, n_sources)) return -1;
    const rcv_model *s0 = sources[0];
    if (s0->cfg.in_c != target->cfg.in_c || s0->cfg.in_h != target->cfg.in_h || s0->cfg.in_w != target->cfg.in_w ||
        s0->cfg.n_classes != target->cfg.n_classes)
        return rcv_fail("transfer: source '%s' (%dx%dx%d, %d classes) and target '%s' (%dx%dx%d, %d classes) differ",
                        s0->name, s0->cfg.in_c, s0->cfg.in_h, s0->cfg.in_w, s0->cfg.n_classes, target->name,
                        target->cfg.in_c, target->cfg.in_h, target->cfg.in_w, target->cfg.n_classes);
    int rc = c->kind == RCV_TRANSFER_FGSM ? rcv_attack_fgsm(sources, n_sources, x, y, n, &c->fgsm, x_adv)
                                          : rcv_attack_pgd(sources, n_sources, x, y, n, &c->pgd, rng, x_adv);
    if (rc) return -1;
    if (st) rcv_attack_stats_add(st, target, x, x_adv, y, NULL, n);
    return 0;
}
