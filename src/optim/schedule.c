// Learning-rate schedules (see optim.h for the formulas) and their command-line spelling.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/optim.h"

float rcv_sched_lr(const rcv_sched *s, float base_lr, double epoch) {
    if (epoch < 0) epoch = 0;
    switch (s->kind) {
    case RCV_SCHED_CONSTANT: return base_lr;
    case RCV_SCHED_STEP: return (float)(base_lr * pow(s->gamma, floor(floor(epoch) / s->step_size)));
    case RCV_SCHED_MULTISTEP: {
        int k = 0;
        for (int i = 0; i < s->n_milestones; i++) k += floor(epoch) >= s->milestones[i];
        return (float)(base_lr * pow(s->gamma, k));
    }
    case RCV_SCHED_COSINE: {
        if (epoch < s->warmup)
            return (float)(base_lr * (s->warmup_start + (1.0 - s->warmup_start) * epoch / s->warmup));
        double t = s->t_max - s->warmup;
        if (t <= 0) return base_lr;
        return (float)(s->eta_min + (base_lr - s->eta_min) * (1.0 + cos(M_PI * (epoch - s->warmup) / t)) / 2.0);
    }
    case RCV_SCHED_CYCLIC: {
        float high = s->high > 0 ? s->high : base_lr, low = s->low > 0 ? s->low : high / 10;
        long pos = (long)floor(epoch) % (2L * s->step_size + 1);
        return pos < s->step_size ? high : low;
    }
    }
    return base_lr;
}

void rcv_sched_set_total(rcv_sched *s, int epochs) {
    if (s->kind == RCV_SCHED_COSINE && s->t_max <= 0) s->t_max = epochs;
}

int rcv_sched_cycle_end(const rcv_sched *s, int epoch) {
    if (s->kind != RCV_SCHED_CYCLIC) return 0;
    return epoch % (2 * s->step_size + 1) == 2 * s->step_size;
}

static const char *const names = "constant, step, multistep, cosine, cyclic";

static const char *valid_keys(rcv_sched_kind k) {
    switch (k) {
    case RCV_SCHED_CONSTANT: return "(none)";
    case RCV_SCHED_STEP: return "step_size, gamma";
    case RCV_SCHED_MULTISTEP: return "milestones, gamma";
    case RCV_SCHED_COSINE: return "warmup, start, t_max, eta_min";
    case RCV_SCHED_CYCLIC: return "high, low, step_size";
    }
    return "";
}

// Valid ranges (docs/fuzzing.md and `--schedule` help): rates (eta_min, high, low) 0..RATE_MAX,
// gamma 0..1 (a decay: more would overflow over a long run), epochs (warmup, t_max) 0..EPOCHS_MAX,
// integers (step_size, milestones) 1..EPOCHS_MAX. Non-finite values are refused.
#define RATE_MAX 10.0
#define EPOCHS_MAX 1000000

static int num(const char *spec, const char *key, const char *val, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(val, &end);
    if (end == val || *end || errno || !isfinite(x) || x < lo || x > hi)
        return rcv_fail("schedule '%s': %s=%s, expected a number in %g..%g", spec, key, val, lo, hi);
    *out = x;
    return 0;
}

static int integer(const char *spec, const char *key, const char *val, long lo, int *out) {
    char *end;
    errno = 0;
    long x = strtol(val, &end, 10);
    if (end == val || *end || errno || x < lo || x > EPOCHS_MAX)
        return rcv_fail("schedule '%s': %s=%s, expected an integer in %ld..%d", spec, key, val, lo, EPOCHS_MAX);
    *out = (int)x;
    return 0;
}

int rcv_sched_parse(rcv_sched *s, const char *spec) {
    memset(s, 0, sizeof *s);
    s->gamma = 0.1f;
    s->step_size = 1;
    if (!spec || !*spec) spec = "constant";
    char buf[512];
    if (strlen(spec) >= sizeof buf) return rcv_fail("schedule '%.40s...': longer than %zu characters", spec, sizeof buf - 1);
    strcpy(buf, spec);
    char *colon = strchr(buf, ':');
    if (colon) *colon = 0;
    const char *name = buf;
    if (!strcmp(name, "constant")) s->kind = RCV_SCHED_CONSTANT;
    else if (!strcmp(name, "step")) { s->kind = RCV_SCHED_STEP; s->step_size = 0; }
    else if (!strcmp(name, "multistep")) s->kind = RCV_SCHED_MULTISTEP;
    else if (!strcmp(name, "cosine")) s->kind = RCV_SCHED_COSINE;
    else if (!strcmp(name, "cyclic")) { s->kind = RCV_SCHED_CYCLIC; s->step_size = 0; }
    else return rcv_fail("schedule '%s': unknown name '%s', expected one of %s", spec, name, names);
    int have_milestones = 0;
    for (char *save, *kv = colon ? strtok_r(colon + 1, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq) return rcv_fail("schedule '%s': '%s' is not key=value", spec, kv);
        *eq = 0;
        const char *key = kv, *val = eq + 1;
        double x = 0;
        int ok = 0;
        switch (s->kind) {
        case RCV_SCHED_STEP:
            if (!strcmp(key, "step_size")) { if (integer(spec, key, val, 1, &s->step_size)) return -1; ok = 1; }
            else if (!strcmp(key, "gamma")) { if (num(spec, key, val, 0, 1, &x)) return -1; s->gamma = (float)x; ok = 1; }
            break;
        case RCV_SCHED_MULTISTEP:
            if (!strcmp(key, "gamma")) { if (num(spec, key, val, 0, 1, &x)) return -1; s->gamma = (float)x; ok = 1; }
            else if (!strcmp(key, "milestones")) {
                char mb[256];
                snprintf(mb, sizeof mb, "%s", val);
                s->n_milestones = 0;
                for (char *s2, *m = strtok_r(mb, "+", &s2); m; m = strtok_r(NULL, "+", &s2)) {
                    if (s->n_milestones == RCV_SCHED_MAX_MILESTONES)
                        return rcv_fail("schedule '%s': more than %d milestones", spec, RCV_SCHED_MAX_MILESTONES);
                    int e = 0;
                    if (integer(spec, "milestone", m, 1, &e)) return -1;
                    if (s->n_milestones && e <= s->milestones[s->n_milestones - 1])
                        return rcv_fail("schedule '%s': milestones must increase (%d after %d)", spec, e,
                                        s->milestones[s->n_milestones - 1]);
                    s->milestones[s->n_milestones++] = e;
                }
                have_milestones = s->n_milestones > 0;
                ok = 1;
            }
            break;
        case RCV_SCHED_COSINE:
            if (!strcmp(key, "warmup")) { if (num(spec, key, val, 0, EPOCHS_MAX, &s->warmup)) return -1; ok = 1; }
            else if (!strcmp(key, "start")) {
                if (num(spec, key, val, 0, 1, &x)) return -1; // a fraction of the base lr
                s->warmup_start = (float)x;
                ok = 1;
            }
            else if (!strcmp(key, "t_max")) { if (num(spec, key, val, 0, EPOCHS_MAX, &s->t_max)) return -1; ok = 1; }
            else if (!strcmp(key, "eta_min")) { if (num(spec, key, val, 0, RATE_MAX, &x)) return -1; s->eta_min = (float)x; ok = 1; }
            break;
        case RCV_SCHED_CYCLIC:
            if (!strcmp(key, "step_size")) { if (integer(spec, key, val, 1, &s->step_size)) return -1; ok = 1; }
            else if (!strcmp(key, "high")) { if (num(spec, key, val, 0, RATE_MAX, &x)) return -1; s->high = (float)x; ok = 1; }
            else if (!strcmp(key, "low")) { if (num(spec, key, val, 0, RATE_MAX, &x)) return -1; s->low = (float)x; ok = 1; }
            break;
        case RCV_SCHED_CONSTANT: break;
        }
        if (!ok) return rcv_fail("schedule '%s': unknown key '%s' for %s, expected %s", spec, key, name, valid_keys(s->kind));
    }
    if (s->kind == RCV_SCHED_STEP && s->step_size <= 0)
        return rcv_fail("schedule '%s': step needs step_size=N (epochs between decays)", spec);
    if (s->kind == RCV_SCHED_CYCLIC && s->step_size <= 0)
        return rcv_fail("schedule '%s': cyclic needs step_size=N (epochs at the high rate per cycle)", spec);
    if (s->kind == RCV_SCHED_MULTISTEP && !have_milestones)
        return rcv_fail("schedule '%s': multistep needs milestones=E1+E2+...", spec);
    if (s->kind == RCV_SCHED_COSINE && s->t_max > 0 && s->t_max <= s->warmup)
        return rcv_fail("schedule '%s': t_max=%g must exceed warmup=%g", spec, s->t_max, s->warmup);
    return 0;
}
