#include <stdio.h>
#include "cli/cli.h"
int cli_train(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "not yet\n"); return 1; }
int cli_eval(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cli_predict(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cli_models(int argc, char **argv) { (void)argc; (void)argv; return 1; }
