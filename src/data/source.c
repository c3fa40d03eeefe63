// Data source specs shared by every command: "kind[:PATH][:more fields][:options]".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/listing.h"
#include "robustcv/error.h"

// Splits spec at ':' into at most 16 fields (in buf).
static int split_spec(const char *spec, char *buf, size_t cap, char **f) {
    snprintf(buf, cap, "%s", spec);
    int n = 0;
    for (char *s = buf; n < 16;) {
        f[n++] = s;
        char *c = strchr(s, ':');
        if (!c) break;
        *c = 0;
        s = c + 1;
    }
    return n;
}

// Options after the positional fields: size=N, gray, skip-bad, no-cache, cache=DIR.
static int parse_opts(const char *spec, char **f, int n, rcv_source_opts *o) {
    rcv_source_opts_defaults(o);
    for (int i = 0; i < n; i++) {
        char *eq = strchr(f[i], '=');
        const char *v = eq ? eq + 1 : NULL;
        size_t kl = eq ? (size_t)(eq - f[i]) : strlen(f[i]);
        if (kl == 4 && !strncmp(f[i], "size", 4) && v) {
            char *end;
            long s = strtol(v, &end, 10);
            if (end == v || *end || s < 1 || s > 4096)
                return rcv_fail("--data '%s': size=%s, expected an integer in 1..4096", spec, v);
            o->size = (int)s;
        } else if (!strcmp(f[i], "gray")) o->gray = 1;
        else if (!strcmp(f[i], "skip-bad")) o->skip_bad = 1;
        else if (!strcmp(f[i], "no-cache")) o->no_cache = 1;
        else if (kl == 5 && !strncmp(f[i], "cache", 5) && v && *v) o->cache_dir = v;
        else
            return rcv_fail("--data '%s': unknown option '%s', expected size=N, gray, skip-bad, no-cache or cache=DIR",
                            spec, f[i]);
    }
    return 0;
}

static int open_folder(const char *spec, const char *root, int train, const rcv_source_opts *o, rcv_dataset *d) {
    char tr[4096], te[4096];
    snprintf(tr, sizeof tr, "%s/train", root);
    int has_train = rcv_is_dir(tr);
    const char *classes = has_train ? tr : root;
    if (train) return rcv_folder_load(d, classes, NULL, o);
    const char *sub[2] = {"val", "test"};
    for (int i = 0; i < 2; i++) {
        snprintf(te, sizeof te, "%s/%s", root, sub[i]);
        if (rcv_is_dir(te)) return rcv_folder_load(d, te, classes, o);
    }
    if (has_train) fprintf(stderr, "robustcv: warning: --data '%s': no val/ or test/ in %s; testing on train/\n", spec, root);
    return rcv_folder_load(d, classes, NULL, o);
}

int rcv_data_spec_parse(const char *spec, int train, rcv_data_spec *s) {
    memset(s, 0, sizeof *s);
    rcv_source_opts_defaults(&s->o);
    if (!spec) spec = "";
    if (strlen(spec) >= sizeof s->buf)
        return rcv_fail("--data '%.40s...': longer than %zu characters", spec, sizeof s->buf - 1);
    char **f = s->f;
    int n = split_spec(spec, s->buf, sizeof s->buf, f);
    const char *kind = f[0];
    if (!strcmp(kind, "fashion-mnist")) {
        s->kind = RCV_DATA_FASHION_MNIST;
        s->path = n > 1 && *f[1] ? f[1] : RCV_FASHION_MNIST_DIR;
        return 0;
    }
    if (!strcmp(kind, "tiny-imagenet") || !strcmp(kind, "folder")) {
        if (n < 2 || !*f[1]) return rcv_fail("--data '%s': expected %s:PATH[:options]", spec, kind);
        if (parse_opts(spec, f + 2, n - 2, &s->o)) return -1;
        s->kind = kind[0] == 'f' ? RCV_DATA_FOLDER : RCV_DATA_TINY_IMAGENET;
        s->path = f[1];
        return 0;
    }
    if (!strcmp(kind, "tiny-imagenet-c")) {
        if (n < 4 || !*f[1] || !*f[2])
            return rcv_fail("--data '%s': expected tiny-imagenet-c:PATH:CORRUPTION:SEVERITY[:options]", spec);
        char *end;
        long sev = strtol(f[3], &end, 10);
        if (end == f[3] || *end || sev < 1 || sev > 5)
            return rcv_fail("--data '%s': severity '%s', expected 1..5", spec, f[3]);
        if (train)
            return rcv_fail("--data '%s': Tiny-ImageNet-C has only a test split (train on tiny-imagenet:PATH)", spec);
        if (parse_opts(spec, f + 4, n - 4, &s->o)) return -1;
        s->kind = RCV_DATA_TINY_IMAGENET_C;
        s->path = f[1];
        s->corruption = f[2];
        s->severity = (int)sev;
        return 0;
    }
    return rcv_fail("--data '%s': unknown source '%s', expected fashion-mnist[:DIR], tiny-imagenet:PATH, folder:PATH "
                    "or tiny-imagenet-c:PATH:CORRUPTION:SEVERITY",
                    spec, kind);
}

int rcv_data_open(const char *spec, int train, rcv_dataset *d) {
    memset(d, 0, sizeof *d);
    rcv_data_spec *s = rcv_xmalloc(sizeof *s);
    int rc = rcv_data_spec_parse(spec, train, s);
    if (!rc) {
        switch (s->kind) {
        case RCV_DATA_FASHION_MNIST: rc = rcv_fashion_mnist_load(d, s->path, train); break;
        case RCV_DATA_FOLDER: rc = open_folder(spec, s->path, train, &s->o, d); break;
        case RCV_DATA_TINY_IMAGENET:
            rc = rcv_tinyimagenet_load(d, s->path, train ? RCV_SPLIT_TRAIN : RCV_SPLIT_VAL, &s->o);
            break;
        case RCV_DATA_TINY_IMAGENET_C: rc = rcv_tinyimagenet_c_load(d, s->path, s->corruption, s->severity, &s->o); break;
        }
    }
    free(s);
    return rc;
}
