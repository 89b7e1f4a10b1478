"""Plain statistics for the entropy analysis: AUROC, bootstrap CIs, Wilcoxon, pass rates.

    >>> from confidence_trap.analysis.stats import auroc
    >>> auroc([0.1, 0.2], [0.3, 0.4])        # positives all above negatives
    1.0

Every function takes plain sequences of floats and returns plain Python floats (or None where
the number is undefined), so summary.json never holds NaN. No torch, no model. The bootstraps
here resample single values; summary.json's CIs resample clusters (confidence_trap/analysis/clusters.py), and
keep bootstrap_mean_ci only for the pair-level interval it shows for comparison (ci95_pairs).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
from scipy import stats as _st

ALPHA = 0.05
PASS_PERCENTILES = (50, 75, 90, 95)
# Percentile bootstrap resamples of every CI (Efron & Tibshirani's floor for percentile intervals).
N_BOOT = 1000
# Bootstrap resamples are drawn in blocks of about this many values, so a CI of a 9,000-row run
# needs a few MB at a time, not n_boot × n; the draws are the same whatever the block size.
BOOT_VALUES = 500_000


def finite(values) -> np.ndarray:
    """float64 array of the finite entries; None, nan and inf dropped."""
    out = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return np.asarray(out, dtype=np.float64)


def usable(x, y, what: str = "values") -> np.ndarray:
    """[n] bool: both x[i] and y[i] are given and finite."""
    x, y = list(x), list(y)
    if len(x) != len(y):
        raise ValueError(f"{what} has {len(x)} values, correct {len(y)}")
    return np.asarray([a is not None and b is not None and math.isfinite(float(a)) and math.isfinite(float(b))
                       for a, b in zip(x, y)], dtype=bool).reshape(-1)


def pairs(x, y, what: str = "values") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float64 arrays of the pairs where both are given and finite, in input order."""
    keep = usable(x, y, what)
    x, y = list(x), list(y)
    return (np.asarray([float(a) for a, k in zip(x, keep) if k], dtype=np.float64).reshape(-1),
            np.asarray([float(b) for b, k in zip(y, keep) if k], dtype=np.float64).reshape(-1))


def fnum(x):
    """A plain JSON float, or None for None/nan/inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def sub_rng(seed: int, *tags) -> np.random.Generator:
    """A generator for one statistic, derived from the seed and a stable tag.

    Each CI draws from its own stream, so adding an attack or an ε to a run does not move the
    CIs of the others (a shared sequential generator would).
    """
    tag = zlib.crc32("|".join(str(t) for t in tags).encode())
    return np.random.default_rng([int(seed), tag])


def std(x) -> float | None:
    """Sample standard deviation (ddof=1); None with fewer than 2 values."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.std(x, ddof=1)) if x.size >= 2 else None


def auroc(negatives, positives) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U / n0 n1).

    None when either class is empty.
    """
    neg, pos = finite(negatives), finite(positives)
    if neg.size == 0 or pos.size == 0:
        return None
    ranks = _st.rankdata(np.concatenate([neg, pos]))  # average ranks: a tie scores 1/2
    u = ranks[neg.size:].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def bootstrap_mean_ci(x, n_boot: int = N_BOOT, seed: int = 0, tag: str = "") -> list | None:
    """Percentile bootstrap 95% CI of the mean: [lo, hi]; None with fewer than 2 values."""
    x = np.sort(finite(x))  # sorted: the CI does not depend on the order records were written
    if x.size < 2:
        return None
    rng = sub_rng(seed, "mean", tag)
    chunk = max(1, min(n_boot, BOOT_VALUES // x.size))  # bounded memory on large runs
    means = np.concatenate([x[rng.integers(0, x.size, size=(min(chunk, n_boot - s), x.size))]
                            .mean(axis=1) for s in range(0, n_boot, chunk)])  # [B]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo), float(hi)]


def resample_counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """[b, n] multinomial counts: how often each of n values is drawn in each of b resamples."""
    idx = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
    return np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)


def bootstrap_auroc_ci(negatives, positives, n_boot: int = N_BOOT, seed: int = 0,
                       tag: str = "") -> list | None:
    """Stratified percentile bootstrap 95% CI of the AUROC: each class resampled on its own,
    so every resample keeps both classes. None when a class has fewer than 2 values.

    A resample is a count per original value, so its AUROC is
    sum_j c1_j (#neg below pos_j + #neg tied / 2) / (n0 n1) with the negative counts summed
    cumulatively over the sorted negatives: O(n) per resample, no re-ranking.
    """
    neg, pos = np.sort(finite(negatives)), np.sort(finite(positives))  # order-independent
    if neg.size < 2 or pos.size < 2:
        return None
    rng = sub_rng(seed, "auroc", tag)
    lo = np.searchsorted(neg, pos, side="left")  # [n1] negatives strictly below pos_j
    hi = np.searchsorted(neg, pos, side="right")  # [n1] ... below or tied
    chunk = max(1, min(n_boot, BOOT_VALUES // (neg.size + pos.size)))  # bounded memory
    vals = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        cum0 = np.zeros((b, neg.size + 1))
        np.cumsum(resample_counts(rng, b, neg.size), axis=1, out=cum0[:, 1:])  # [b, n0 + 1]
        score = cum0[:, lo] + 0.5 * (cum0[:, hi] - cum0[:, lo])  # [b, n1]
        vals.append((resample_counts(rng, b, pos.size) * score).sum(axis=1) / (neg.size * pos.size))
    lo_ci, hi_ci = np.percentile(np.concatenate(vals), [2.5, 97.5])
    return [float(lo_ci), float(hi_ci)]


def wilcoxon_p(deltas) -> float | None:
    """Two-sided Wilcoxon signed-rank p of Δ against 0.

    None when there are fewer than 2 values or every Δ is 0 (the test has nothing to rank).
    """
    d = finite(deltas)
    if d.size < 2 or not np.any(d != 0):
        return None
    return fnum(_st.wilcoxon(d, alternative="two-sided").pvalue)


def pass_rates(clean, perturbed, percentiles=PASS_PERCENTILES) -> dict:
    """Share of clean and perturbed inputs that pass an entropy filter tuned on clean inputs.

    τ is the p-th percentile of the clean entropies (numpy's linear interpolation); an input
    passes when its entropy <= τ. Returns {"p50": {"clean", "perturbed", "tau"}, ...}; rates are
    None when their set is empty, and everything is None without clean entropies.
    """
    c, a = finite(clean), finite(perturbed)
    out = {}
    for p in percentiles:
        tau = float(np.percentile(c, p)) if c.size else None
        out[f"p{p}"] = {
            "tau": tau,
            "clean": float(np.mean(c <= tau)) if tau is not None else None,
            "perturbed": float(np.mean(a <= tau)) if tau is not None and a.size else None,
        }
    return out


def confidently_wrong(entropies, correct, taus: dict) -> dict:
    """{"p50": share of answers that are wrong yet pass (entropy <= τ), ...}.

    The share is over all the answers given (right or wrong); None when there are none.
    """
    h = np.asarray(entropies, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    return {k: (float(np.mean(wrong & (h <= tau))) if h.size and tau is not None else None)
            for k, tau in taus.items()}
