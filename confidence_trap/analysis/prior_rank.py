"""Test 2 of the language prior: Spearman's ρ between H_prior - H_clean and Δ, its resampled form,
and the permutation of H_prior across questions that gives the shared term alone.

    from confidence_trap.analysis.prior_rank import spearman, weighted_spearman, shuffled_questions
    rho = spearman(x, delta)                         # over items
    weighted_spearman(x, delta, counts)              # [b] ρ of each resample (counts [b, n])
    shuffled_questions(h_prior, h_clean, delta, questions, rho, n_boot, seed, tag)

Δ = H_adv - H_clean and x = H_prior - H_clean share -H_clean, so ρ > 0 even where H_prior carries
nothing. The null that separates the two permutes H_prior, and H_prior lives at the level of the
question (the blank image is the same for every item): each question's H_prior (the mean over
its items) is handed to another question, every item keeping its own H_clean and Δ. With Q
questions there are Q! orderings: all of them are taken where Q! <= n_boot (an exact test, whose
smallest p is the share of orderings that leave ρ unchanged, at least 1/Q!), else n_boot drawn at
random (p = (1 + count) / (1 + n_boot)). One question: no ordering moves H_prior, p = 1.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as _st

from confidence_trap.analysis import stats as S


def spearman(x, y) -> float | None:
    """ρ of two [n] arrays (Pearson's r of their average ranks, as scipy.stats.spearmanr, summed
    elementwise rather than by a BLAS product, so the same bits on any CPU); None with fewer
    than 2 values or a constant one."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    dx, dy = _st.rankdata(x), _st.rankdata(y)
    dx, dy = dx - dx.mean(), dy - dy.mean()
    return S.fnum(np.sum(dx * dy) / np.sqrt(np.sum(dx * dx) * np.sum(dy * dy)))


def weighted_ranks(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[b, n] average ranks of x in each resample that holds x_i counts[b, i] times (ties get
    their mean rank, as scipy.stats.rankdata does on the expanded sample)."""
    values, inv = np.unique(x, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(values.size))
    per_value = np.add.reduceat(counts[:, order], starts, axis=1)  # [b, distinct values]
    ranks = np.cumsum(per_value, axis=1) - per_value + (per_value + 1) / 2
    return ranks[:, inv]


def weighted_spearman(x, y, counts: np.ndarray) -> np.ndarray:
    """[b] Spearman ρ of each resample (counts [b, n]); nan where a resample is constant."""
    counts = np.asarray(counts, dtype=np.float64)
    rx, ry = weighted_ranks(x, counts), weighted_ranks(y, counts)
    w = counts / counts.sum(axis=1, keepdims=True)
    dx = rx - (w * rx).sum(axis=1, keepdims=True)
    dy = ry - (w * ry).sum(axis=1, keepdims=True)
    return (w * dx * dy).sum(axis=1) / np.sqrt((w * dx * dx).sum(axis=1) * (w * dy * dy).sum(axis=1))


def _orderings(q: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[m, q] the orderings of q questions: all of them where q! <= n_boot, else n_boot drawn."""
    if math.factorial(q) <= n_boot:
        return np.array(list(itertools.permutations(range(q))), dtype=np.int64).reshape(-1, q)
    return rng.permuted(np.tile(np.arange(q), (n_boot, 1)), axis=1)


def shuffled_questions(h_prior, h_clean, delta, questions, rho, n_boot: int, seed: int, tag: str) -> dict:
    """{spearman_shuffled (mean ρ), spearman_shuffled_p (one-sided, ρ at least the observed),
    spearman_permutations}: H_prior permuted across questions (the module docstring). The
    observed ρ they are held against is the identity ordering's, each item given its question's
    mean H_prior (ρ itself where H_prior is the same for every item of a question)."""
    out = {"spearman_shuffled": None, "spearman_shuffled_p": None, "spearman_permutations": 0}
    if rho is None or n_boot < 1:
        return out
    q = int(questions.max()) + 1
    per_q = np.bincount(questions, weights=h_prior, minlength=q) / np.bincount(questions, minlength=q)
    perms = _orderings(q, n_boot, S.sub_rng(seed, "shuffle", tag))
    exact = math.factorial(q) <= n_boot
    ry = _st.rankdata(delta)
    ry -= ry.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        rx = _st.rankdata(per_q[perms][:, questions] - h_clean, axis=1)  # [m, n]
        rx -= rx.mean(axis=1, keepdims=True)
        rhos = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum())
    rhos = rhos[np.isfinite(rhos)]
    if rhos.size == 0:
        return out
    observed = spearman(per_q[questions] - h_clean, delta)  # ρ with each question's mean H_prior
    hits = int(np.sum(rhos >= (rho if observed is None else observed) - 1e-12))
    p = hits / rhos.size if exact else (1 + hits) / (1 + rhos.size)
    return {"spearman_shuffled": float(rhos.mean()), "spearman_shuffled_p": float(p),
            "spearman_permutations": int(rhos.size)}
