// A small option parser: --name VALUE, --name=VALUE, boolean --flag; positional
// arguments kept in order. Unknown options are an error listing the known ones.
#ifndef RCV_ARGS_H
#define RCV_ARGS_H

#include <stddef.h>

typedef struct {
    const char *name;  // without "--"
    const char *meta;  // NULL for a boolean flag, else e.g. "N"
    const char *help;  // includes the default
    const char *value; // set by parsing (flags: "1")
} rcv_opt;

// Returns 0, 1 for --help (usage printed), or 2 on a usage error (message printed).
int rcv_args_parse(int argc, char **argv, rcv_opt *opts, const char *verb, const char *synopsis,
                   const char **pos, int *n_pos, int max_pos);
const char *rcv_arg(const rcv_opt *opts, const char *name); // NULL if not given
// Parse helpers: print "--name: 'v' is not ..." and return -1 on bad values.
int rcv_arg_int(const rcv_opt *opts, const char *name, int *out);
int rcv_arg_float(const rcv_opt *opts, const char *name, float *out); // decimal or A/B (8/255), finite
int rcv_arg_u64(const rcv_opt *opts, const char *name, unsigned long long *out);
// Copies the value into out[cap]; a value that does not fit is refused (not cut short).
int rcv_arg_str(const rcv_opt *opts, const char *name, char *out, size_t cap);

#endif
