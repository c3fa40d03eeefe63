// Subcommands. Each returns the process exit code (0 ok, 1 error, 2 usage).
#ifndef RCV_CLI_H
#define RCV_CLI_H

int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_models(int argc, char **argv);
int cli_attack(int argc, char **argv);
int cli_search(int argc, char **argv);
int cli_evaluate(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_ensemble(int argc, char **argv);
int cli_explain(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_denoise(int argc, char **argv);
int cli_corrupt(int argc, char **argv);
int cli_certify(int argc, char **argv);
int cli_convert(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_export(int argc, char **argv);

#include "robustcv/graph.h"
#include "robustcv/train.h"
// The train options (shared by train and search) into c. 0, 1 (--help printed) or 2 (usage error).
int cli_train_config(int argc, char **argv, const char *verb, const char *synopsis, rcv_train_cfg *c);
// --device NAME -> backend; prints and returns -1 on an unknown name.
// A device that cannot run here (cuda without GPU/driver) prints "no CUDA device/driver: ..."
// and exits 1.
int cli_parse_device(const char *v, rcv_backend *b);
// --precision fp32|tf32|bf16|fp16 (NULL: fp32); prints and returns -1 on an unknown name.
int cli_parse_precision(const char *v, rcv_precision *p);

#include "cli/args.h"
#include "robustcv/json.h"
#include "robustcv/suite.h"
// The suite's options (evaluate, run) into c; -1 after printing on a bad value.
int cli_suite_options(const rcv_opt *opts, rcv_suite_cfg *c);
// An --aa-attacks list (AutoAttack's attack names) checked; -1 after printing on a bad one.
int cli_aa_attacks_check(const char *v);
// The suite's results: a table on stdout; JSON ({"images", "models": [{"name", "ece",
// "uap_fooling_rate", "autoattack": [...], "sets": {NAME: {top1, top5, nll}}}], "ensemble_autoattack"}).
void cli_suite_print(const rcv_suite_result *r, const char *const *names);
void cli_suite_json(rcv_json_writer *w, const rcv_suite_result *r, const char *const *names);
// Model m's AutoAttack rows (m == n_models: the ensemble) as a JSON array: [{"norm", "eps", "images",
// "clean", "pgd", "autoattack", "after": {ATTACK: robust fraction}, "seconds": {...}, "warnings": [...]}].
void cli_aa_json(rcv_json_writer *w, const rcv_suite_result *r, int m);

#include "robustcv/smoothing.h"
// --sigma, --n, --n0, --alpha, --batch (certify, predict --smooth) into c, validated; -1 after printing.
int cli_smooth_options(const rcv_opt *opts, const char *verb, rcv_smooth_cfg *c);

#endif
