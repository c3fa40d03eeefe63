// Subcommands. Each returns the process exit code (0 ok, 1 error, 2 usage).
#ifndef RCV_CLI_H
#define RCV_CLI_H

int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_models(int argc, char **argv);
int cli_denoise(int argc, char **argv);
int cli_corrupt(int argc, char **argv);

#include "robustcv/graph.h"
// --device NAME -> backend; prints and returns -1 on an unknown name.
int cli_parse_device(const char *v, rcv_backend *b);

#endif
