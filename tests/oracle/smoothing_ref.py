"""scipy oracle for tests/test_smoothing.c (randomized smoothing's statistics).

Usage: /usr/bin/python3 tests/oracle/smoothing_ref.py CASES OUT

CASES has one query per line; OUT gets one value per line (repr, full precision), in order:
  cp NA N ALPHA   one-sided Clopper-Pearson lower bound as core.py computes it:
                  statsmodels' proportion_confint(NA, N, alpha=2*ALPHA, method="beta")[0], whose
                  definition is beta.ppf(alpha_2, count, nobs - count + 1) with alpha_2 = (2*ALPHA)/2,
                  and 0 when count = 0 (statsmodels is not installed here; its formula is written out)
  ppf P           scipy.stats.norm.ppf(P)
  binom C1 N      scipy.stats.binom_test(C1, N, 0.5) (two-sided; binomtest(...).pvalue where
                  binom_test is gone)
  betainc A B X   scipy.special.betainc(A, B, X)

Exits 77 when scipy is not importable (the C test then skips this part).
"""
import sys
import warnings

try:
    import scipy.special
    import scipy.stats
except ImportError as e:  # pragma: no cover
    print(f"smoothing_ref.py: {e}; skipping", file=sys.stderr)
    sys.exit(77)


def cp_lower(na, n, alpha):
    alpha_2 = 2 * alpha / 2.0
    if na == 0:
        return 0.0
    return float(scipy.stats.beta.ppf(alpha_2, na, n - na + 1))


def binom_test(c1, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if hasattr(scipy.stats, "binom_test"):
            return float(scipy.stats.binom_test(c1, n, p=0.5))
        return float(scipy.stats.binomtest(c1, n, p=0.5).pvalue)


def main():
    out = []
    with open(sys.argv[1]) as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            if t[0] == "cp":
                out.append(cp_lower(int(t[1]), int(t[2]), float(t[3])))
            elif t[0] == "ppf":
                out.append(float(scipy.stats.norm.ppf(float(t[1]))))
            elif t[0] == "binom":
                out.append(binom_test(int(t[1]), int(t[2])))
            elif t[0] == "betainc":
                out.append(float(scipy.special.betainc(float(t[1]), float(t[2]), float(t[3]))))
            else:
                raise SystemExit(f"smoothing_ref.py: unknown query {t[0]!r}")
    with open(sys.argv[2], "w") as f:
        for v in out:
            f.write(repr(v) + "\n")


main()
