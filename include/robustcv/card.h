// A model card (card.json) per evaluated checkpoint, with RobustBench's model-entry fields, so a
// robustcv result reads like a leaderboard entry: accuracies as percent strings with two
// decimals ("91.08"), eps as RobustBench writes it ("8/255" when it is k/255, else "0.1").
//
//   {"name", "architecture", "dataset", "threat_model": "Linf", "eps", "clean_acc",
//    "autoattack_acc", "pgd_acc", "autoattack_images", "clean_images", "corruptions_acc",
//    "corruptions_mce", "mce_baseline", "additional_data": false, "number_forward_passes",
//    "checkpoint", "recipe", "evaluation": "robustcv AutoAttack standard ..."}
// Fields not measured are null.
#ifndef RCV_CARD_H
#define RCV_CARD_H

#include "robustcv/json.h"
#include "robustcv/suite.h"

typedef struct {
    const char *name, *architecture, *dataset, *checkpoint, *recipe; // recipe may be NULL
    double eps;                   // the AutoAttack row's (L-inf)
    double clean_acc;             // fraction, on clean_images
    int clean_images;
    double autoattack_acc, pgd_acc; // fractions on autoattack_images; NaN when not run
    int autoattack_images;
    double corruptions_acc;       // mean top-1 over every corruption and severity; NaN when not run
    double corruptions_mce;       // mCE (ratio) against the model mce_baseline; NaN when not run
    const char *mce_baseline;
    int number_forward_passes;    // forward passes per prediction (an ensemble of M models: M)
} rcv_card;

// Fills c from suite row m (the ensemble when m == r->n_models and r->aa_ensemble), the first
// AutoAttack eps, corruption errors against model `base`. Names are borrowed.
void rcv_card_from_suite(rcv_card *c, const rcv_suite_result *r, int m, int base, const char *name, const char *arch,
                         const char *dataset, const char *checkpoint);
void rcv_card_json(rcv_json_writer *w, const rcv_card *c);
// Written atomically; -1 with a message naming the path.
int rcv_card_write(const char *path, const rcv_card *c);
// "8/255" or "%g" (buf of at least 32 bytes).
const char *rcv_eps_string(double eps, char *buf);

#endif
