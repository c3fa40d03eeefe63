// Losses on one sample's logits for the attacks (attack.h): cross-entropy, Croce & Hein's DLR and
// targeted DLR, and the margin. Each returns the loss and, when dz is given, dL/dz (k floats).
#include <math.h>
#include <string.h>

#include "robust/robust.h"

double rcv_loss_ce(const float *z, int k, int y, float *dz) { return rcv_ce_seed(z, k, y, 1.0f, dz); }

// Indices of the four largest logits (descending; ties to the lowest index first).
static void top4(const float *z, int k, int *p) {
    p[0] = p[1] = p[2] = p[3] = -1;
    for (int j = 0; j < k; j++) {
        int at = 4;
        while (at > 0 && (p[at - 1] < 0 || z[j] > z[p[at - 1]])) at--;
        if (at == 4) continue;
        for (int s = 3; s > at; s--) p[s] = p[s - 1];
        p[at] = j;
    }
}

// Largest logit other than y's.
static int max_other(const float *z, int k, int y) {
    int o = -1;
    for (int j = 0; j < k; j++)
        if (j != y && (o < 0 || z[j] > z[o])) o = j;
    return o;
}

double rcv_loss_margin(const float *z, int k, int y, float *dz) {
    int o = max_other(z, k, y);
    if (dz) {
        memset(dz, 0, (size_t)k * sizeof(float));
        dz[y] += 1, dz[o] -= 1;
    }
    return (double)z[y] - z[o];
}

// L = -(z_y - z_o) / D:  dL/dz_y = -1/D, dL/dz_o = 1/D, dL/dD = (z_y - z_o) / D^2.
double rcv_loss_dlr(const float *z, int k, int y, float *dz) {
    int p[4];
    top4(z, k, p);
    int o = p[0] == y ? p[1] : p[0];
    double num = (double)z[y] - z[o], den = (double)z[p[0]] - z[p[2]] + 1e-12;
    if (dz) {
        memset(dz, 0, (size_t)k * sizeof(float));
        double dd = num / (den * den);
        dz[y] += (float)(-1 / den), dz[o] += (float)(1 / den);
        dz[p[0]] += (float)dd, dz[p[2]] -= (float)dd;
    }
    return -num / den;
}

double rcv_loss_dlr_targeted(const float *z, int k, int y, int t, float *dz) {
    int p[4];
    top4(z, k, p);
    double num = (double)z[y] - z[t], den = (double)z[p[0]] - 0.5 * ((double)z[p[2]] + z[p[3]]) + 1e-12;
    if (dz) {
        memset(dz, 0, (size_t)k * sizeof(float));
        double dd = num / (den * den);
        dz[y] += (float)(-1 / den), dz[t] += (float)(1 / den);
        dz[p[0]] += (float)dd, dz[p[2]] -= (float)(0.5 * dd), dz[p[3]] -= (float)(0.5 * dd);
    }
    return -num / den;
}
