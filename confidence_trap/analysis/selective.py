"""Selective prediction: does an uncertainty probe rank wrong answers last? AURC and PRR.

    >>> from confidence_trap.analysis.selective import selective
    >>> s = selective([0.1, 0.2, 0.9], [1, 1, 0])       # the uncertain answer is the wrong one
    >>> s["aurc"] == s["aurc_oracle"], s["prr"]
    (True, 1.0)

Inputs: `uncertainty[i]` (higher = more uncertain; negate a confidence such as mean_max_prob
before passing it, as confidence_trap.analysis.summary.PROBE_SIGN does) and `correct[i]` in [0, 1], a score
(1/0, or fractional VQA accuracy); the loss of answer i is 1 - correct[i]. Pairs whose
uncertainty or score is None or non-finite are left out; `n` counts the pairs used.

Ordering: answers sorted by uncertainty ascending (most certain first) with a STABLE sort, so
tied answers keep their input order. AURC therefore depends on input order among ties; pass
records in a canonical order (the summary sorts them) for reproducible numbers.

    risk(k)      = (sum of losses of the first k answers) / k,   coverage k / n,  k = 1..n
    AURC         = (1/n) sum_k risk(k)                 area under the risk-coverage curve
    AURC_random  = mean loss (the error rate): the expected risk(k) of a random order, for
                   every k, so the expected AURC of a random order, exactly
    AURC_oracle  = AURC with the answers sorted by their own loss (every right one first)
    PRR          = (AURC_random - AURC) / (AURC_random - AURC_oracle)
PRR is 1 for a perfect ranking, about 0 for an uninformative one and negative for one worse
than chance. AURC_oracle <= AURC_random, with equality exactly when every loss is the same
(all right, all wrong, or the same fractional score): then PRR is None, as it is with n = 0.
That test is on the losses themselves, not on the two AURCs, whose floats may differ in the
last bit for equal losses.

Relation to LM-Polygraph's prediction-rejection ratio (read: IINemo/lm-polygraph,
src/lm_polygraph/ue_metrics/pred_rej_area.py, PredictionRejectionArea, and the normalisation
in ue_metric.py, normalize_metric / get_random_scores, applied in utils/manager.py). There the
target is a QUALITY (higher = better), first min-max normalised to [0, 1]; answers are sorted by
np.argsort(estimator) (most certain first); the raw score is the area under the
quality-rejection curve, mean over k of (mean quality of the k most certain answers), and
    prr_normalized = (raw - random) / (oracle - random),
with oracle = the raw score when the estimator is -target and random = the mean raw score over
1000 random permutations (np.random.seed(42)). With quality q = 1 - loss each raw score is
1 - AURC of the same order, so their ratio equals ours term by term
((1 - A) - (1 - A_r)) / ((1 - A_o) - (1 - A_r)) = (A_r - A) / (A_r - A_o); and the min-max
normalisation is an affine map of q, which scales numerator and denominator alike, so it cancels.
Where they differ:
  * random: their Monte Carlo mean of 1000 shuffles vs our exact expectation (the error rate);
    the two agree up to Monte Carlo noise.
  * ties: np.argsort's default quicksort is not stable, so tied estimator values are ordered
    by the sort's internals; ours keep input order. Only tied probes (e.g. a constant probe,
    identical answers) can give different numbers.
  * degenerate sets: when oracle == random, normalize_metric returns the raw, unnormalised score;
    we return None.
  * max_rejection: newer versions offer prr_0.5 (rejecting at most half); we use the full range,
    their default max_rejection = 1.0.
  * missing values: they drop NaN targets / estimates (_delete_nans); we drop None/non-finite.

Everything returned is a plain Python float / int / list / dict, None where undefined (no NaN).
"""
from __future__ import annotations

import numpy as np

from confidence_trap.analysis import stats as S
from confidence_trap.analysis.clusters import Design, percentile_ci, wsum

DEFAULT_POINTS = 51


def _pairs(uncertainty, correct) -> tuple[np.ndarray, np.ndarray]:
    """(uncertainty, loss) float64 arrays of the usable pairs, in input order."""
    unc, score = S.pairs(uncertainty, correct, "uncertainty")
    if np.any((score < 0) | (score > 1)):
        raise ValueError("correct must lie in [0, 1]")
    return unc, 1.0 - score


def _risks(loss_in_order: np.ndarray) -> np.ndarray:
    """[n] risk(k) = cumulative loss of the first k / k, for k = 1..n."""
    return np.cumsum(loss_in_order) / np.arange(1, loss_in_order.size + 1)


def risk_coverage(uncertainty, correct) -> tuple[list, list]:
    """The full risk-coverage curve: (coverage [k/n], risk [risk(k)]) for k = 1..n."""
    u, loss = _pairs(uncertainty, correct)
    r = _risks(loss[np.argsort(u, kind="stable")])
    n = u.size
    return [k / n for k in range(1, n + 1)], [float(v) for v in r]


def aurc(uncertainty, correct) -> float | None:
    """Area under the risk-coverage curve (1/n) sum_k risk(k); None with no usable pairs."""
    u, loss = _pairs(uncertainty, correct)
    if u.size == 0:
        return None
    return float(_risks(loss[np.argsort(u, kind="stable")]).mean())


def _subsample(n: int, points: int) -> list[int]:
    """At most `points` values of k in 1..n, spread evenly, always 1 and n (integer maths)."""
    if points < 1:
        raise ValueError("points must be >= 1")
    if n <= points:
        return list(range(1, n + 1))
    if points == 1:
        return [n]
    m = points - 1
    return sorted({1 + ((n - 1) * j + m // 2) // m for j in range(points)})


def selective(uncertainty, correct, *, points: int = DEFAULT_POINTS) -> dict:
    """AURC, its random and oracle references, PRR and the risk-coverage curve, JSON-safe:

        {"n", "aurc", "aurc_random", "aurc_oracle", "prr",
         "curve": {"coverage": [...], "risk": [...]}}

    The curve holds at most `points` points of (k/n, risk(k)), k spread evenly over 1..n, the
    first answer and full coverage (k = n, risk = the error rate) always included. With n = 0
    every number is None and the curve is empty.
    """
    u, loss = _pairs(uncertainty, correct)
    n = int(u.size)
    if n == 0:
        return {"n": 0, "aurc": None, "aurc_random": None, "aurc_oracle": None, "prr": None,
                "curve": {"coverage": [], "risk": []}}
    risks = _risks(loss[np.argsort(u, kind="stable")])
    a = float(risks.mean())
    a_rand = float(loss.mean())
    a_orc = float(_risks(np.sort(loss)).mean())
    prr = None
    if loss.max() > loss.min():  # otherwise a_rand == a_orc: nothing to rank
        prr = float((a_rand - a) / (a_rand - a_orc))
    ks = _subsample(n, points)
    return {"n": n, "aurc": a, "aurc_random": a_rand, "aurc_oracle": a_orc, "prr": prr,
            "curve": {"coverage": [k / n for k in ks], "risk": [float(risks[k - 1]) for k in ks]}}


def _aurc_of_counts(counts: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """AURC of resamples given as counts: counts [b, n] of each answer, in the order the answers
    are ranked (most certain first), loss [n] in that order -> [b].

    A resample of N = sum_j c_j answers has AURC = (1/N) sum_k S_k / k = (1/N) sum_p loss(p)
    (H(N) - H(p - 1)) over the ranked positions p, H the harmonic numbers; a resample puts answer
    j's c_j copies at positions C_j - c_j + 1 .. C_j (C the cumulative counts), whose terms sum to
    c_j H(N) - (G(C_j) - G(C_j - c_j)) with G(m) = H(0) + ... + H(m - 1). Only answers with a
    loss contribute: O(n) a resample, no sort. N varies between resamples of a crossed draw."""
    hit = np.nonzero(loss > 0)[0]
    c = counts[:, hit]
    end = np.cumsum(counts, axis=1)
    total = end[:, -1]  # [b] N of each resample
    end = end[:, hit]
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, int(total.max()) + 1))])  # H(0..N)
    g = np.concatenate([[0.0], np.cumsum(harmonic)])  # G(0) .. G(N + 1): prefix sums, the same
    h_n = g[total + 1] - g[total]  # [b] H(N)              # floats whatever the block's largest N
    with np.errstate(invalid="ignore", divide="ignore"):
        return wsum(h_n[:, None] * c - (g[end] - g[end - c]), loss[hit]) / total


def _prr_of_counts(w: np.ndarray, loss: np.ndarray, ranks: list) -> np.ndarray:
    """[b', probes] the PRR of each probe (its ranking in `ranks`) in each resample of weights w
    [b, n] whose losses vary (the others, PRR undefined, are left out)."""
    w = w[w.sum(axis=1) > 0]
    drawn = w > 0
    w = w[(drawn & (loss > loss.min())).any(axis=1) & (drawn & (loss < loss.max())).any(axis=1)]
    if not w.shape[0]:
        return np.zeros((0, len(ranks)))
    oracle = np.argsort(loss, kind="stable")  # every right answer before every wrong one
    orc = _aurc_of_counts(w[:, oracle], loss[oracle])
    rand = wsum(w, loss) / w.sum(axis=1)
    return np.stack([(rand - _aurc_of_counts(w[:, r], loss[r])) / (rand - orc) for r in ranks], axis=1)


def bootstrap_prr_ci(uncertainty, correct, n_boot: int = S.N_BOOT, seed: int = 0, tag: str = "",
                     clusters=None) -> list | None:
    """Percentile bootstrap 95% CI of the PRR: [lo, hi], or None with fewer than 2 pairs (or
    clusters) or fewer than 2 resamples whose losses vary (PRR undefined in the others).

    A resample ranks its answers as `selective` ranks the data: by uncertainty, ties (and an
    answer's copies) in input order (pass records in canonical order). Drawn as weights per
    answer by confidence_trap/analysis/clusters.py's Design under the name "prr" (with `clusters`, an
    (image, question) key per answer, the crossed draw; without, each answer its own), in blocks
    of confidence_trap.analysis.stats.BOOT_VALUES values; each AURC then costs O(n) (_aurc_of_counts)."""
    return bootstrap_prr_cis({None: uncertainty}, correct, n_boot, seed, tag, clusters)[None]


def bootstrap_prr_cis(uncertainties: dict, correct, n_boot: int = S.N_BOOT, seed: int = 0, tag: str = "",
                      clusters=None) -> dict:
    """bootstrap_prr_ci of several probes of the same answers, {name: CI}, on common resamples:
    probes whose usable answers are the same share one draw (and its oracle), so the cost is one
    draw plus an O(n) pass per probe, and their intervals compare like with like."""
    out, groups = {}, {}
    for name, u in uncertainties.items():  # group the probes by which answers they can score
        key = tuple(S.usable(u, correct, "uncertainty"))
        groups.setdefault(key, []).append(name)
    for usable, names in groups.items():
        pairs = {name: _pairs(uncertainties[name], correct) for name in names}
        loss = next(iter(pairs.values()))[1]
        design = Design([c for c, ok in zip(clusters, usable) if ok] if clusters is not None else None,
                        n=int(loss.size))
        if loss.size < 2 or design.n_images * design.n_questions < 2 or n_boot < 1:
            out.update({name: None for name in names})
            continue
        ranks = [np.argsort(pairs[name][0], kind="stable") for name in names]
        vals = np.concatenate([_prr_of_counts(w, loss, ranks)
                               for w in design.resamples(n_boot, seed, "prr", tag)])  # [B', probes]
        out.update({name: percentile_ci(vals[:, i]) for i, name in enumerate(names)})
    return out
