// robustcv attack: autoattack, fab-t, square and cw (src/cli/attack_robust.c).
#ifndef RCV_CLI_ATTACK_ROBUST_H
#define RCV_CLI_ATTACK_ROBUST_H

#include <stdint.h>

#include "cli/args.h"
#include "robustcv/attack.h"
#include "robustcv/json.h"

typedef struct {
    int kind; // 0 autoattack, 1 fab-t, 2 square, 3 cw
    rcv_autoattack_cfg aa;
    rcv_fab_cfg fab;
    rcv_square_cfg sq;
    rcv_cw_cfg cw;
    float noise_sigma; // the classifier randomized by Gaussian input noise (--noise-sigma; AutoAttack rand)
    rcv_autoattack_result res;
} cli_robust_attack;

// 0..3 for the names above, -1 otherwise.
int cli_robust_attack_kind(const char *name);
// Options (--version, --aa-attacks, --steps, --n-queries, --p-init, --c, --kappa, --lr,
// --binary-steps, --noise-sigma, --eot-iter) into a; eps < 0: the defaults. 0, or 2 after a message.
int cli_robust_attack_parse(const rcv_opt *opts, int kind, rcv_norm norm, float eps, cli_robust_attack *a);
// All n images at once; robust: 1 where still classified correctly.
int cli_robust_attack_run(cli_robust_attack *a, const rcv_classifier *f, const float *x, const int32_t *y, int n,
                          rcv_rng *rng, float *x_adv, uint8_t *robust);
// AutoAttack's trace as JSON keys: "after" (robust fraction after each attack), seconds_key (each
// attack's seconds), "warnings" (the reference's checks that fired). evaluate and attack share it.
void cli_aa_trace_json(rcv_json_writer *w, const rcv_autoattack_result *r, const char *seconds_key);
// The attack's settings (and AutoAttack's per-attack trace) as results.json keys.
void cli_robust_attack_json(rcv_json_writer *w, const cli_robust_attack *a);

#endif
