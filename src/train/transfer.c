// Transfer learning: start from a torchvision state_dict, re-initialise the
// classifier for a new class count, train only part of the network (frozen
// parameters get no updates and frozen batchnorm uses and keeps its running
// statistics, like calling .eval() on those modules in PyTorch), and scale the
// learning rate per parameter group.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/pth.h"
#include "robustcv/safetensors.h"
#include "robustcv/train.h"

int rcv_name_under(const char *name, const char *prefix) {
    size_t n = strlen(prefix);
    while (n && prefix[n - 1] == '.') n--; // "layer1." == "layer1"
    if (!n || strncmp(name, prefix, n)) return 0;
    return name[n] == '\0' || name[n] == '.';
}

// Calls fn(item) for each comma-separated item of list (items up to 255 chars, empty ones skipped).
typedef int (*item_fn)(rcv_model *m, const char *item, void *arg);
static int each_item(rcv_model *m, const char *list, item_fn fn, void *arg) {
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char item[256];
        if (n >= sizeof item) return rcv_fail("'%.40s...': list item too long", p);
        memcpy(item, p, n);
        item[n] = 0;
        if (n && fn(m, item, arg)) return -1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int in_list(const char *name, const char *list) {
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char item[256];
        if (n && n < sizeof item) {
            memcpy(item, p, n);
            item[n] = 0;
            if (rcv_name_under(name, item)) return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static int count_under(const rcv_graph *g, const char *prefix) {
    int n = 0;
    for (int i = 0; i < g->n_params; i++) n += rcv_name_under(g->param_info[i].name, prefix);
    return n;
}

static int no_match(const char *opt, const char *prefix, const rcv_model *m) {
    return rcv_fail("%s '%s': no parameter of model '%s' lies under that module (names are torchvision's, "
                    "e.g. '%s'; see `robustcv models`)",
                    opt, prefix, m->name, m->g->n_params ? m->g->param_info[0].name : "?");
}

static int check_reset(rcv_model *m, const char *item, void *arg) {
    (void)arg;
    return count_under(m->g, item) ? 0 : no_match("--reset", item, m);
}

static int do_freeze(rcv_model *m, const char *item, void *arg) {
    (void)arg;
    rcv_graph *g = m->g;
    if (!count_under(g, item)) return no_match("--freeze", item, m);
    for (int i = 0; i < g->n_params; i++)
        if (g->param_info[i].kind == RCV_PARAM && rcv_name_under(g->param_info[i].name, item))
            g->param_info[i].frozen = 1;
    return 0;
}

static int do_lr_mult(rcv_model *m, const char *item, void *arg) {
    (void)arg;
    rcv_graph *g = m->g;
    char *eq = strchr(item, '=');
    char *end = NULL;
    float x = eq ? strtof(eq + 1, &end) : 0;
    if (!eq || end == eq + 1 || *end || !(x >= 0))
        return rcv_fail("--lr-mult '%s': expected PREFIX=X with X >= 0, e.g. fc=10", item);
    *eq = 0;
    if (!count_under(g, item)) return no_match("--lr-mult", item, m);
    for (int i = 0; i < g->n_params; i++)
        if (rcv_name_under(g->param_info[i].name, item)) g->param_info[i].lr_mult = x;
    return 0;
}

// Appends "name" to a bounded list for the messages ("a, b, c, ... (N in all)").
static void list_add(char *buf, size_t cap, int *count, const char *name) {
    if (++*count <= 8) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s%s", l ? ", " : "", name);
    }
}

static int load_init(rcv_model *m, const rcv_finetune_cfg *t, int quiet) {
    rcv_graph *g = m->g;
    rcv_safetensors st;
    if (rcv_weights_open(&st, t->init)) return rcv_fail_ctx("--init: "); // safetensors or torch.save .pth
    uint8_t *used = rcv_xcalloc((size_t)st.n + 1, 1);
    char missing[512] = "", unused[512] = "";
    int n_missing = 0, n_unused = 0, n_loaded = 0, n_reset = 0, rc = -1;
    for (int i = 0; i < g->n_params; i++) {
        rcv_param *p = &g->param_info[i];
        const rcv_st_tensor *x = rcv_st_find(&st, p->name);
        if (x) used[x - st.t] = 1;
        if (in_list(p->name, t->reset)) {
            n_reset++;
            continue; // keeps the fresh initialisation, whatever the file holds
        }
        if (!x) {
            list_add(missing, sizeof missing, &n_missing, p->name);
            continue;
        }
        int same = x->numel == p->numel && (x->ndim == p->ndim || p->numel == 1);
        for (int d = 0; same && d < p->ndim && x->ndim == p->ndim; d++) same = x->shape[d] == p->shape[d];
        if (!same) {
            char a[64] = "", b[64] = "";
            for (int d = 0; d < x->ndim; d++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? "x" : "", (long long)x->shape[d]);
            for (int d = 0; d < p->ndim; d++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? "x" : "", (long long)p->shape[d]);
            rcv_fail("--init %s: tensor %s has shape [%s], model '%s' expects [%s]; for a new class count "
                     "re-initialise the classifier with --reset (e.g. --reset %.*s)",
                     t->init, p->name, a, m->name, b, (int)(strrchr(p->name, '.') ? strrchr(p->name, '.') - p->name : 2),
                     p->name);
            goto out;
        }
        int r = p->kind == RCV_BUFFER_I64 ? rcv_st_read_i64(&st, p->name, rcv_param_i64(g, i), 1)
                                         : rcv_st_read_f32(&st, p->name, rcv_param_data(g, i), p->numel);
        if (r) goto out;
        n_loaded++;
    }
    for (int i = 0; i < st.n; i++)
        if (!used[i]) list_add(unused, sizeof unused, &n_unused, st.t[i].name);
    if (!quiet) {
        fprintf(stderr, "init: %d tensors from %s, %d re-initialised (--reset)\n", n_loaded, t->init, n_reset);
        if (n_missing)
            fprintf(stderr, "init: warning: %d tensors of the model are not in the file and keep their "
                            "initialisation: %s%s\n", n_missing, missing, n_missing > 8 ? ", ..." : "");
        if (n_unused)
            fprintf(stderr, "init: warning: %d tensors of the file are not in model '%s' and are ignored: %s%s\n",
                    n_unused, m->name, unused, n_unused > 8 ? ", ..." : "");
    }
    rc = 0;
out:
    free(used);
    rcv_st_close(&st);
    return rc;
}

int rcv_transfer_apply(rcv_model *m, const rcv_finetune_cfg *t, int with_init, int quiet) {
    rcv_graph *g = m->g;
    rcv_graph_params_changed(g); // --init loads, --reset re-initialises
    if (each_item(m, t->reset, check_reset, NULL)) return -1;
    if (with_init && t->init[0] && load_init(m, t, quiet)) return -1;
    if (each_item(m, t->freeze, do_freeze, NULL)) return -1;
    if (t->train_from[0]) {
        int first = -1;
        for (int i = 0; i < g->n_params && first < 0; i++)
            if (rcv_name_under(g->param_info[i].name, t->train_from)) first = i;
        if (first < 0) return no_match("--train-from", t->train_from, m);
        for (int i = 0; i < first; i++)
            if (g->param_info[i].kind == RCV_PARAM) g->param_info[i].frozen = 1;
    }
    if (each_item(m, t->lr_mult, do_lr_mult, NULL)) return -1;
    // Batchnorm in a frozen part runs in eval mode: its weight frozen means the module is frozen.
    int frozen = 0, bn_frozen = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        rcv_node *n = &g->nodes[i];
        if (n->op == RCV_OP_BATCHNORM2D && n->param[0] >= 0) {
            n->frozen_stats = (uint8_t)g->param_info[n->param[0]].frozen;
            bn_frozen += n->frozen_stats;
        }
    }
    for (int i = 0; i < g->n_params; i++) frozen += g->param_info[i].frozen;
    if (!quiet && frozen)
        fprintf(stderr, "transfer: %d parameter tensors frozen, %d batchnorm layers use their running statistics\n",
                frozen, bn_frozen);
    return 0;
}
