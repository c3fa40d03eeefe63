// Top-k, NLL, expected calibration error and corruption errors (see metrics.h).
#include <math.h>
#include <string.h>

#include "robustcv/error.h"
#include "robustcv/metrics.h"

void rcv_softmax_rows(const float *logits, int n, int k, float *probs) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k;
        double mx = z[0], s = 0;
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
        // Read z[j] before writing p[j]: probs may alias logits.
        for (int j = 0; j < k; j++) p[j] = (float)(exp((double)z[j] - mx) / s);
    }
}

void rcv_argmax_rows(const float *scores, int n, int k, int32_t *pred) {
    for (int i = 0; i < n; i++) {
        const float *z = scores + (size_t)i * k;
        int am = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[am]) am = j;
        pred[i] = am;
    }
}

double rcv_metric_topk(const float *scores, const int32_t *labels, int n, int k, int topk) {
    if (n <= 0) return 0;
    long hit = 0;
    for (int i = 0; i < n; i++) {
        const float *z = scores + (size_t)i * k;
        int y = labels[i], r = 0;
        for (int j = 0; j < k && r < topk; j++) r += z[j] > z[y] || (z[j] == z[y] && j < y);
        hit += r < topk;
    }
    return (double)hit / n;
}

double rcv_metric_nll_logits(const float *logits, const int32_t *labels, int n, int k) {
    if (n <= 0) return 0;
    double tot = 0;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        double mx = z[0], s = 0;
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        for (int j = 0; j < k; j++) s += exp((double)z[j] - mx);
        tot += log(s) + mx - (double)z[labels[i]];
    }
    return tot / n;
}

double rcv_metric_nll_probs(const float *probs, const int32_t *labels, int n, int k) {
    if (n <= 0) return 0;
    double tot = 0;
    for (int i = 0; i < n; i++) {
        double p = probs[(size_t)i * k + labels[i]];
        tot -= log(p > 1e-12 ? p : 1e-12);
    }
    return tot / n;
}

double rcv_metric_ece(const float *probs, const int32_t *labels, int n, int k, int n_bins, int64_t *bin_count,
                      double *bin_acc, double *bin_conf) {
    if (n_bins <= 0) n_bins = 15;
    int64_t cnt[n_bins];
    double acc[n_bins], conf[n_bins];
    memset(cnt, 0, sizeof cnt);
    memset(acc, 0, sizeof acc);
    memset(conf, 0, sizeof conf);
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * k;
        int am = 0;
        for (int j = 1; j < k; j++)
            if (p[j] > p[am]) am = j;
        double c = p[am];
        // Bin b holds (b/B, (b+1)/B]: ceil(c * B) - 1, with 0 put in the first bin.
        int b = (int)ceil(c * n_bins) - 1;
        b = b < 0 ? 0 : b >= n_bins ? n_bins - 1 : b;
        cnt[b]++;
        acc[b] += am == labels[i];
        conf[b] += c;
    }
    double ece = 0;
    for (int b = 0; b < n_bins; b++) {
        if (cnt[b]) {
            acc[b] /= cnt[b];
            conf[b] /= cnt[b];
            ece += (double)cnt[b] / n * fabs(acc[b] - conf[b]);
        }
        if (bin_count) bin_count[b] = cnt[b];
        if (bin_acc) bin_acc[b] = acc[b];
        if (bin_conf) bin_conf[b] = conf[b];
    }
    return ece;
}

int rcv_metric_corruption(const double *err, const double *base_err, int n_corr, int n_sev, double clean_err,
                          double base_clean_err, double *ce, double *rel_ce, double *mce, double *rel_mce) {
    if (n_corr <= 0 || n_sev <= 0)
        return rcv_fail("corruption error: %d corruptions x %d severities, expected at least 1 x 1", n_corr, n_sev);
    double sum_ce = 0, sum_rel = 0;
    for (int c = 0; c < n_corr; c++) {
        double e = 0, be = 0, re = 0, rbe = 0;
        for (int s = 0; s < n_sev; s++) {
            e += err[c * n_sev + s];
            be += base_err[c * n_sev + s];
            re += err[c * n_sev + s] - clean_err;
            rbe += base_err[c * n_sev + s] - base_clean_err;
        }
        if (be == 0)
            return rcv_fail("corruption error: the baseline's error on corruption %d is 0 at every severity, so CE "
                            "(a ratio to it) is undefined",
                            c);
        double v = e / be, rv = rbe == 0 ? NAN : re / rbe;
        if (ce) ce[c] = v;
        if (rel_ce) rel_ce[c] = rv;
        sum_ce += v;
        sum_rel += rv;
    }
    if (mce) *mce = sum_ce / n_corr;
    if (rel_mce) *rel_mce = sum_rel / n_corr;
    return 0;
}

double rcv_box_iou(const float *a, const float *b) {
    double aw = fmax(0.0, (double)a[2] - a[0]), ah = fmax(0.0, (double)a[3] - a[1]);
    double bw = fmax(0.0, (double)b[2] - b[0]), bh = fmax(0.0, (double)b[3] - b[1]);
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    double inter = (iw > 0 && ih > 0) ? iw * ih : 0.0;
    double uni = aw * ah + bw * bh - inter;
    return uni > 0 ? inter / uni : 0.0;
}
