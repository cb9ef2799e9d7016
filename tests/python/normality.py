"""Check that seispipe's Gaussian noise is N(0, std²), against scipy.stats.

usage: normality.py NOISE.npy STD

The file holds noise added to all-zero inputs. Checks (each fails loudly):
* chi-square over 200 equiprobable bins (edges from scipy.stats.norm.ppf);
* Kolmogorov-Smirnov against norm(0, std);
* the tails: counts beyond ±2, ±3, ±4 std within 5 binomial sigmas of
  n·2·norm.sf(k) (the ziggurat's wedge and tail code paths live here).
Prints a JSON line with the statistics.
"""
import json
import sys

import numpy as np
from scipy import stats

x = np.load(sys.argv[1]).astype(np.float64).ravel() / float(sys.argv[2])
n = x.size
edges = stats.norm.ppf(np.linspace(0, 1, 201))
counts = np.histogram(x, bins=edges)[0]
chi2, p_chi2 = stats.chisquare(counts)
ks, p_ks = stats.kstest(x, "norm")
tails = {}
for k in (2, 3, 4):
    expect = n * 2 * stats.norm.sf(k)
    got = int(np.sum(np.abs(x) > k))
    sigma = np.sqrt(expect * (1 - expect / n))
    tails[k] = (got, expect)
    assert abs(got - expect) < 5 * sigma + 1, f"tail beyond {k}: got {got}, expected {expect:.1f}"
assert p_chi2 > 1e-4, f"chi-square p = {p_chi2}"
assert p_ks > 1e-4, f"KS p = {p_ks}"
assert abs(x.mean()) < 5 / np.sqrt(n), x.mean()
print(json.dumps({"n": n, "p_chi2": p_chi2, "p_ks": p_ks, "tails": tails}))
