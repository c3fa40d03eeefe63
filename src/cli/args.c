#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f, const rcv_opt *opts, const char *verb, const char *synopsis) {
    fprintf(f, "usage: robustcv %s %s\n\noptions:\n", verb, synopsis);
    for (const rcv_opt *o = opts; o->name; o++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", o->name, o->meta ? " " : "", o->meta ? o->meta : "");
        fprintf(f, "  %-26s %s\n", lhs, o->help);
    }
}

int rcv_args_parse(int argc, char **argv, rcv_opt *opts, const char *verb, const char *synopsis,
                   const char **pos, int *n_pos, int max_pos) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, opts, verb, synopsis);
            return 1;
        }
        if (strncmp(a, "--", 2)) {
            if (*n_pos >= max_pos) {
                fprintf(stderr, "robustcv %s: unexpected argument '%s'\n", verb, a);
                return 2;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nl = eq ? (size_t)(eq - name) : strlen(name);
        rcv_opt *o = opts;
        for (; o->name; o++)
            if (strlen(o->name) == nl && !strncmp(o->name, name, nl)) break;
        if (!o->name) {
            fprintf(stderr, "robustcv %s: unknown option '%s'\n", verb, a);
            usage(stderr, opts, verb, synopsis);
            return 2;
        }
        if (!o->meta) {
            o->value = eq ? eq + 1 : "1";
        } else if (eq) {
            o->value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "robustcv %s: option --%s needs a value (%s)\n", verb, o->name, o->meta);
                return 2;
            }
            o->value = argv[++i];
        }
    }
    return 0;
}

const char *rcv_arg(const rcv_opt *opts, const char *name) {
    for (const rcv_opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o->value;
    return NULL;
}

int rcv_arg_int(const rcv_opt *opts, const char *name, int *out) {
    const char *v = rcv_arg(opts, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < -2147483647L || x > 2147483647L) {
        fprintf(stderr, "robustcv: --%s '%s' is not an integer\n", name, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int rcv_arg_float(const rcv_opt *opts, const char *name, float *out) {
    const char *v = rcv_arg(opts, name);
    if (!v) return 0;
    char *end;
    double x = strtod(v, &end);
    if (end != v && *end == '/') { // a fraction, as eps is usually written: 8/255
        const char *d = end + 1;
        double den = strtod(d, &end);
        x = end == d || den == 0 ? NAN : x / den;
    }
    if (end == v || *end || !isfinite(x) || fabs(x) > 3.4e38) {
        fprintf(stderr, "robustcv: --%s '%s' is not a finite number (a decimal or A/B)\n", name, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

int rcv_arg_u64(const rcv_opt *opts, const char *name, unsigned long long *out) {
    const char *v = rcv_arg(opts, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-') {
        fprintf(stderr, "robustcv: --%s '%s' is not a non-negative integer\n", name, v);
        return -1;
    }
    *out = x;
    return 0;
}

int rcv_arg_str(const rcv_opt *opts, const char *name, char *out, size_t cap) {
    const char *v = rcv_arg(opts, name);
    if (!v) return 0;
    size_t len = strlen(v);
    if (len >= cap) {
        fprintf(stderr, "robustcv: --%s '%.40s...' is %zu characters long, at most %zu are accepted\n", name, v, len,
                cap - 1);
        return -1;
    }
    memcpy(out, v, len + 1);
    return 0;
}
