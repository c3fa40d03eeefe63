// The statistics of randomized smoothing (smoothing.h): the normal quantile, the regularized
// incomplete beta and its inverse, the Clopper-Pearson lower bound and the two-sided binomial test
// at p = 1/2, in plain C (no statistics library), checked against scipy by tests/test_smoothing.c.
#include <math.h>

#include "robustcv/smoothing.h"

static const double LN_2PI = 1.837877066409345483560659472811; // log(2 pi)

// Stirling's error log(n!) - log(sqrt(2 pi n) (n / e)^n) for real n > 0 (Loader 2000): the series
// above 15, lgamma below (the values are small there, so no cancellation worth the name).
static double stirlerr(double n) {
    const double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680, S4 = 1.0 / 1188;
    if (n <= 0) return 0;
    if (n <= 15) return lgamma(n + 1) - (n + 0.5) * log(n) + n - 0.5 * LN_2PI;
    double nn = n * n;
    if (n > 500) return (S0 - S1 / nn) / n;
    if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

// Deviance term x log(x / np) + np - x without cancellation when x is near np (Loader 2000).
static double bd0(double x, double np) {
    if (fabs(x - np) < 0.1 * (x + np)) {
        double v = (x - np) / (x + np), s = (x - np) * v, ej = 2 * x * v, v2 = v * v;
        for (int j = 1; j < 1000; j++) {
            ej *= v2;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s) return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / np) + np - x;
}

// Binomial density generalised to real x, n: Gamma(n+1) / (Gamma(x+1) Gamma(n-x+1)) p^x q^(n-x),
// q = 1 - p given separately (no rounding of 1 - p), relative error ~1e-15 even for n ~ 1e6,
// where exp(lgamma sums) would lose ~1e-10.
static double dbinom_raw(double x, double n, double p, double q) {
    if (p == 0) return x == 0 ? 1 : 0;
    if (q == 0) return x == n ? 1 : 0;
    if (x == 0) return n == 0 ? 1 : exp(p < 0.1 ? -bd0(n, n * q) - n * p : n * log(q));
    if (x == n) return exp(q < 0.1 ? -bd0(n, n * p) - n * q : n * log(p));
    if (x < 0 || x > n) return 0;
    double lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q);
    double lf = LN_2PI + log(x) + log1p(-x / n);
    return exp(lc - 0.5 * lf);
}

// x^a y^b / (a B(a, b)), y = 1 - x: the factor in front of the continued fraction;
// = b / (a + b) * dbinom_raw(a, a + b, x, y).
static double front(double a, double b, double x, double y) { return b / (a + b) * dbinom_raw(a, a + b, x, y); }

// The continued fraction of I_x(a, b) / front (modified Lentz); converges fast for
// x < (a + 1) / (a + b + 2), in O(sqrt(max(a, b))) terms.
static double betacf(double a, double b, double x) {
    const double TINY = 1e-300, EPS = 2e-16;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < TINY) d = TINY;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 200000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < TINY) d = TINY;
        c = 1 + aa / c;
        if (fabs(c) < TINY) c = TINY;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < TINY) d = TINY;
        c = 1 + aa / c;
        if (fabs(c) < TINY) c = TINY;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < EPS) break;
    }
    return h;
}

// I_x(a, b) with y = 1 - x given exactly; the fraction on the side where it converges.
static double betainc_xy(double a, double b, double x, double y) {
    if (x <= 0) return 0;
    if (y <= 0) return 1;
    if (x < (a + 1) / (a + b + 2)) return front(a, b, x, y) * betacf(a, b, x);
    return 1 - front(b, a, y, x) * betacf(b, a, y);
}

double rcv_betainc(double a, double b, double x) {
    if (!(a > 0) || !(b > 0) || !(x >= 0 && x <= 1)) return NAN;
    return betainc_xy(a, b, x, 1 - x);
}

double rcv_beta_ppf(double p, double a, double b) {
    if (!(a > 0) || !(b > 0) || !(p >= 0 && p <= 1)) return NAN;
    if (p == 0) return 0;
    if (p == 1) return 1;
    // Newton on f(x) = I_x(a, b) - p, kept inside a bisection bracket [lo, hi] (a step that leaves
    // it, or an underflowed density, bisects instead); f is increasing.
    double lo = 0, hi = 1, x = a / (a + b);
    for (int it = 0; it < 2000; it++) {
        double y = 1 - x, f = betainc_xy(a, b, x, y) - p;
        if (f == 0) return x;
        if (f < 0) lo = x;
        else hi = x;
        double dens = front(a, b, x, y) * a / (x * y); // x^(a-1) y^(b-1) / B(a, b)
        double xn = x - f / dens;
        if (!(xn > lo && xn < hi)) xn = 0.5 * (lo + hi);
        if (fabs(xn - x) <= 1e-15 * x || hi - lo <= 1e-16 * hi) return xn;
        x = xn;
    }
    return x;
}

double rcv_cp_lower(long na, long n, double alpha) {
    if (na <= 0) return 0;
    return rcv_beta_ppf(alpha, (double)na, (double)(n - na + 1));
}

// Phi(x) - p for the Halley step, without cancellation: erfc in the lower tail, erf around 1/2
// (p - 1/2 is exact there).
static double phi_minus(double x, double p) {
    if (p < 0.25) return 0.5 * erfc(-x * M_SQRT1_2) - p;
    return 0.5 * erf(x * M_SQRT1_2) - (p - 0.5);
}

double rcv_norm_ppf(double p) {
    if (!(p >= 0 && p <= 1)) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    if (p > 0.5 && 1 - p < 0.25) return -rcv_norm_ppf(1 - p); // 1 - p is exact for p >= 1/2
    // Acklam's approximation (relative error 1.15e-9), then Halley steps.
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                6.680131188771972e+01,  -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                3.754408661907416e+00};
    double x;
    if (p < 0.02425) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    }
    for (int it = 0; it < 2; it++) {
        double u = phi_minus(x, p) * sqrt(2 * M_PI) * exp(0.5 * x * x);
        x -= u / (1 + 0.5 * x * u);
    }
    return x;
}

double rcv_binom_test_half(long c1, long n) {
    if (n <= 0 || c1 < 0 || c1 > n) return NAN;
    if (2 * c1 == n) return 1;
    long k = c1 < n - c1 ? c1 : n - c1;
    // P(X <= k) = I_{1/2}(n - k, k + 1) for X ~ Bin(n, 1/2)
    double cdf = betainc_xy((double)(n - k), (double)(k + 1), 0.5, 0.5);
    double pv = 2 * cdf;
    return pv < 1 ? pv : 1;
}
