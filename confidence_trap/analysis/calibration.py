"""Calibration of answer confidences against correctness: ECE (10 bins), Brier, overconfidence.

    >>> from confidence_trap.analysis.calibration import calibration, sequence_prob
    >>> c = calibration([0.95, 0.95, 0.05, 0.05], [1, 1, 0, 0], n_boot=0)
    >>> round(c["ece"], 4), round(c["brier"], 4), round(c["overconfidence"], 4)
    (0.05, 0.0025, 0.0)
    >>> sequence_prob(0.0)
    1.0

Inputs are plain lists. `confidence[i]` in [0, 1] is how sure the model is of answer i (the
caller chooses: `sequence_prob(seq_nll)` = exp(-seq_nll), the probability of the whole greedy
answer, or `mean_max_prob`). `correct[i]` in [0, 1] is a score, not a flag: 1/0 for
exact-match references, fractional for VQA accuracy (min(#humans agreeing / 3, 1), averaged);
the "accuracy" of a set is the mean score and the loss of an answer is 1 - score.

Pairs where either value is None or non-finite are left out; `n` counts the pairs used. Values
within CLIP_TOL outside [0, 1] (float32 softmax can give 1.0000001) are clipped; values further
out raise ValueError, since they are not probabilities and binning them would hide a bug.

Binning rule (N_BINS = 10 equal-width bins [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0], the last
closed): the edges are the floats EDGES[k] = k / 10 (each a correctly rounded division, so
EDGES[3] is the same float as the literal 0.3, never an accumulated 0.1 * 3 =
0.30000000000000004), and bin(c) = the largest k <= 9 with c >= EDGES[k], i.e.
min(searchsorted(EDGES, c, side="right") - 1, 9). So a confidence equal to 0.3 goes in
[0.3, 0.4), 0.0 in the first bin, 1.0 in the last, and the float just below 0.3 in [0.2, 0.3).
The shortcut min(floor(c * 10), 9) agrees almost everywhere but not at every float:
0.8999999999999999 * 10 rounds to 9.0, which would put a value below 0.9 into [0.9, 1.0].

ECE = sum_b (|B_b| / n) * |acc(B_b) - conf(B_b)| = (1/n) sum_b |sum_{i in B_b} (y_i - c_i)|.
The bootstrap CI is the percentile interval of that statistic over n_boot resamples, drawn by
confidence_trap/analysis/clusters.py's Design under the name "ece" and the tag "name|tag" after
sorting the pairs canonically (by confidence, then correctness, then cluster), so neither record
order nor other statistics move it. With `clusters` (one (image, question) key per pair) a
resample draws images and questions, crossed, and each pair enters with their weight; without,
it draws pairs.

Everything returned is a plain Python float / int / list / dict, None where undefined (no NaN).
"""
from __future__ import annotations

import math

import numpy as np

from confidence_trap.analysis import stats as S
from confidence_trap.analysis.clusters import Design, boot, ids_of, percentile_ci

N_BINS = 10
EDGES = np.array([k / N_BINS for k in range(N_BINS + 1)])  # [11] 0.0, 0.1, ..., 1.0
CLIP_TOL = 1e-6
CONFIDENCES = ("sequence_prob", "mean_max_prob")  # the two confidences the summary reports


def sequence_prob(seq_nll) -> float | None:
    """exp(-seq_nll): the probability the model gave its whole answer; None if undefined.

    A slightly negative seq_nll (float round-off of a sum of -log p >= 0) gives 1.0, not more.
    """
    if seq_nll is None:
        return None
    x = float(seq_nll)
    if not math.isfinite(x):
        return 0.0 if x == math.inf else None  # +inf: probability 0; nan / -inf: undefined
    return float(min(1.0, math.exp(-max(x, 0.0))))


def bin_index(c: float) -> int:
    """The bin (0..9) of one confidence in [0, 1] (the rule is in the module docstring)."""
    return int(_bins(np.asarray([float(c)]))[0])


def _unit_interval(x: np.ndarray, what: str) -> np.ndarray:
    bad = (x < -CLIP_TOL) | (x > 1.0 + CLIP_TOL)
    if np.any(bad):
        raise ValueError(f"{what} must lie in [0, 1]; got {x[bad][:5].tolist()}")
    return np.clip(x, 0.0, 1.0)


def _pairs(confidence, correct, clusters=None) -> tuple[np.ndarray, np.ndarray, list | None]:
    """(confidence, correct, their cluster keys or None) of the usable pairs, sorted canonically."""
    c, y = S.pairs(confidence, correct, "confidence")
    keys = None if clusters is None else [k for k, ok in zip(clusters, S.usable(confidence, correct)) if ok]
    # canonical: record order does not change a single float operation
    order = np.lexsort((y, c) if keys is None else (ids_of(keys)[0], y, c))
    return (_unit_interval(c[order], "confidence"), _unit_interval(y[order], "correct"),
            None if keys is None else [keys[i] for i in order])


def _bins(c: np.ndarray) -> np.ndarray:
    """[n] int64 bin of each confidence: the last edge <= c, the top bin closed at 1.0."""
    return np.clip(np.searchsorted(EDGES, c, side="right") - 1, 0, N_BINS - 1).astype(np.int64)


def ece(confidence, correct) -> float | None:
    """Expected calibration error over the 10 equal-width bins; None with no usable pairs."""
    c, y, _ = _pairs(confidence, correct)
    if c.size == 0:
        return None
    sums = np.bincount(_bins(c), weights=y - c, minlength=N_BINS)
    return float(np.abs(sums).sum() / c.size)


def brier(confidence, correct) -> float | None:
    """Mean squared gap (confidence - correct)^2; None with no usable pairs."""
    c, y, _ = _pairs(confidence, correct)
    return float(np.mean((c - y) ** 2)) if c.size else None


def bootstrap_ece_ci(confidence, correct, n_boot: int = S.N_BOOT, seed: int = 0,
                     name: str = "", tag: str = "", clusters=None) -> list | None:
    """Percentile bootstrap 95% CI of the ECE: [lo, hi]; None with fewer than 2 pairs (or
    clusters) or n_boot < 1.

    A resample gives each pair a weight w (how often it, or its image and question, is drawn);
    its ECE is (1/sum w) sum_b |sum of w (y - c) over the pairs in bin b|, each bin's sum an
    elementwise product reduced by numpy's add (clusters.wsum's rule: no BLAS product, so the
    same bytes on any CPU).
    """
    c, y, keys = _pairs(confidence, correct, clusters)
    design = Design(keys, n=c.size)
    if c.size < 2 or design.n_images * design.n_questions < 2 or n_boot < 1:
        return None
    members = [np.nonzero(_bins(c) == k)[0] for k in range(N_BINS)]
    d = y - c

    def stat(w):
        wd = w * d  # [b, n]
        gaps = sum(np.abs(wd[:, m].sum(axis=1)) for m in members if m.size)  # bins in a fixed order
        return gaps / w.sum(axis=1)
    return percentile_ci(boot(design, stat, n_boot, seed, "ece", f"{name}|{tag}"))


def reliability_bins(confidence, correct) -> list[dict]:
    """The 10 bins, always all listed: [{"lo", "hi", "n", "accuracy", "confidence"}, ...];
    accuracy (mean score) and confidence (mean confidence) are None for an empty bin."""
    c, y, _ = _pairs(confidence, correct)
    idx = _bins(c)
    out = []
    for k in range(N_BINS):
        m = idx == k
        cnt = int(m.sum())
        out.append({"lo": float(EDGES[k]), "hi": float(EDGES[k + 1]), "n": cnt,
                    "accuracy": float(y[m].mean()) if cnt else None,
                    "confidence": float(c[m].mean()) if cnt else None})
    return out


def calibration(confidence, correct, *, name: str = "sequence_prob", n_boot: int = S.N_BOOT,
                seed: int = 0, tag: str = "", clusters=None) -> dict:
    """Every calibration number of one set of answers, JSON-safe:

        {"confidence": name, "n", "accuracy", "mean_confidence", "ece", "ece_ci95": [lo, hi],
         "brier", "overconfidence", "bins": [10 x {"lo", "hi", "n", "accuracy", "confidence"}]}

    overconfidence = mean_confidence - accuracy (> 0: surer than right). With n = 0 every
    number is None and the 10 bins are listed empty; ece_ci95 is None with fewer than 2 pairs.
    `name` labels the confidence and, with `tag` (e.g. "proxy|0.3"), picks the bootstrap stream;
    `clusters` (a key per pair) makes the CI resample clusters.
    """
    c, y, _ = _pairs(confidence, correct)
    n = int(c.size)
    acc = float(y.mean()) if n else None
    mc = float(c.mean()) if n else None
    return {
        "confidence": name, "n": n, "accuracy": acc, "mean_confidence": mc,
        "ece": ece(c, y), "ece_ci95": bootstrap_ece_ci(confidence, correct, n_boot, seed, name, tag, clusters),
        "brier": brier(c, y),
        "overconfidence": (mc - acc) if n else None,
        "bins": reliability_bins(c, y),
    }
