// The dihedral group of the square: k = 4 * flip + rot. Output pixel (i, j) reads input pixel
// S_k(i, j): first the optional horizontal flip, then `rot` counter-clockwise quarter turns
// (torch.rot90(x, rot, dims=(H, W)) after torch.flip(x, dims=(W,))).
#include "robustcv/augment.h"

// Source (row, col) of output (i, j) in an n x n image; `n1` is n - 1 for pixel indices or n for
// continuous coordinates.
static void sym_source(int k, float n1, float i, float j, float *si, float *sj) {
    float a, b;
    switch (k & 3) {
    case 0: a = i; b = j; break;
    case 1: a = j; b = n1 - i; break;
    case 2: a = n1 - i; b = n1 - j; break;
    default: a = n1 - j; b = i; break;
    }
    if (k & 4) b = n1 - b;
    *si = a;
    *sj = b;
}

void rcv_sym_apply(int k, const float *src, float *dst, int h, int w, int c) {
    int n = h; // h == w
    (void)w;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            float si, sj;
            sym_source(k, (float)(n - 1), (float)i, (float)j, &si, &sj);
            const float *s = src + ((size_t)si * n + (size_t)sj) * c;
            float *d = dst + ((size_t)i * n + j) * c;
            for (int t = 0; t < c; t++) d[t] = s[t];
        }
}

// Compose by acting on a 3 x 3 grid of distinct labels: the group acts faithfully on it.
int rcv_sym_compose(int a, int b) {
    float g[9], tb[9], tab[9];
    for (int i = 0; i < 9; i++) g[i] = (float)i;
    rcv_sym_apply(b, g, tb, 3, 3, 1);
    rcv_sym_apply(a, tb, tab, 3, 3, 1);
    for (int k = 0; k < 8; k++) {
        float t[9];
        rcv_sym_apply(k, g, t, 3, 3, 1);
        int same = 1;
        for (int i = 0; i < 9; i++) same &= t[i] == tab[i];
        if (same) return k;
    }
    return -1; // unreachable: the 8 elements are closed under composition
}

int rcv_sym_inverse(int k) {
    for (int m = 0; m < 8; m++)
        if (rcv_sym_compose(m, k) == 0) return m;
    return -1;
}

// A point of the input moves to S_{k^-1}(point) in the output (continuous coordinates).
void rcv_sym_point(int k, int w, float x, float y, float *ox, float *oy) {
    float si, sj;
    sym_source(rcv_sym_inverse(k), (float)w, y, x, &si, &sj);
    *ox = sj;
    *oy = si;
}
