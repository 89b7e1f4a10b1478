"""Verdicts with a size: does entropy fall, rise, stay within δ, or can the run not tell?

    from confidence_trap.analysis.verdicts import delta_stats, verdict, MIN_EFFECT
    d = delta_stats(pairs, seed=0, n_boot=1000, tag="proxy|0.3", min_effect=0.01, noise_floor=0.0)
    d["verdict"]       # "falls", "rises", "equivalent" or "inconclusive"

`pairs` are confidence_trap.analysis.clusters.pair_deltas tuples (image, question, trial, Δ). The rule (RULE):
  falls         the 95% cluster-bootstrap CI of the mean Δ lies below 0, the mean Δ < -δ, and
                |mean Δ| > the noise floor;
  rises         the mirror: CI above 0, mean Δ > +δ, |mean Δ| > the noise floor;
  equivalent    the 90% cluster-bootstrap CI lies inside (-δ, +δ): two one-sided tests at
                α = 0.05 (Schuirmann's TOST is the 1 - 2α interval inside the margin), on the
                same cluster resamples, so |Δ| < δ is shown, not merely a change not found;
  inconclusive  neither.
A shift can be significant and still equivalent (the committed proxy at 8/255: +0.002 nats,
CI [+0.0003, +0.0038], n = 1600, is equivalent at δ = 0.01): a verdict needs a size.

The noise floor is the far end of the null control's 95% cluster CI of its mean Δ,
max(|lo|, |hi|) (confidence_trap/analysis/noise.py): the largest mean shift that generating the same inputs in
another batch composition plausibly puts into a mean by itself. It is compared with |mean Δ|
because both are means over items: the largest single |Δ_null| (max_abs_delta) is a per-answer
bound, the wrong scale for a mean over hundreds of pairs (on a GPU, where a few near-tied
answers flip, it is the size of one flipped answer and would forbid every verdict), while the
per-answer scatter already widens the Δ's own CI, since perturbed answers carry the same
scatter. What that CI cannot see is a shift the batching itself adds to every answer; the null
control's CI bounds it. Without a null control (--no-null-control, or records from before it
existed: noise_floor None) a run has no noise floor, so it calls no fall and no rise: a verdict
needs a size and a noise floor. Equivalence needs no floor (noise only widens the CI it reads),
and the report says that the run has no noise floor.

δ (MIN_EFFECT, --min-effect, Config.min_effect) defaults to 0.01 nats because (MIN_EFFECT_WHY):
  * it lies below the smallest change the original study reports (-0.018 nats at ε = 0.2), so a
    reproduction of the study's effect at its own size can be called a fall;
  * it is five times the +0.002-nat shift the former rule called a rise, and a hundred times the
    ~1e-4-nat drift of later tokens between two identical GPU runs (issue 19);
  * it is the project's floor, confidence_trap.analysis.quality.FLOOR_NATS: an answer below 0.01 nats counts as
    certain, so a mean change smaller than that is smaller than the gap between an answer
    at the floor and a certain one.
"""
from __future__ import annotations

import numpy as np

from confidence_trap.analysis import stats as S
from confidence_trap.analysis.clusters import cluster_mean_stats

MIN_EFFECT = 0.01
MIN_EFFECT_WHY = ("the default δ, 0.01 nats, lies below the smallest change the original study reports "
                  "(-0.018 nats), is five times the +0.002-nat shift the former rule called a rise, and "
                  "is the project's floor, below which an answer's entropy counts as certain")
VERDICTS = ("falls", "rises", "equivalent", "inconclusive")
TOST_ALPHA = 0.05


def rule(min_effect: float = MIN_EFFECT) -> str:
    """The verdict rule in one sentence, with δ's value."""
    return (f"falls if the 95% cluster-bootstrap CI of the mean Δ lies below 0, the mean Δ is below "
            f"-δ and |mean Δ| exceeds the run's noise floor (a run without one calls neither); rises, the mirror; equivalent if the 90% "
            f"cluster-bootstrap CI lies inside (-δ, +δ) (two one-sided tests, α = {TOST_ALPHA}); "
            f"otherwise inconclusive (δ = {min_effect:g} nats)")


def verdict(mean, ci95, ci90, min_effect: float = MIN_EFFECT, noise_floor=None) -> str:
    """The verdict of one mean Δ (see the module docstring); noise_floor None (no null control):
    never a fall or a rise."""
    if mean is None:
        return "inconclusive"
    beyond = noise_floor is not None and abs(mean) > noise_floor
    if ci95 is not None and ci95[1] < 0 and mean < -min_effect and beyond:
        return "falls"
    if ci95 is not None and ci95[0] > 0 and mean > min_effect and beyond:
        return "rises"
    if ci90 is not None and -min_effect < ci90[0] and ci90[1] < min_effect:
        return "equivalent"
    return "inconclusive"


def delta_stats(pairs: list[tuple], seed: int = 0, n_boot: int = S.N_BOOT, tag: str = "",
                min_effect: float = MIN_EFFECT, noise_floor=None) -> dict:
    """{n, n_clusters, mean_delta, ci95, ci90, wilcoxon_p, noise_floor, verdict} of Δ pairs:
    CIs resample clusters (confidence_trap/analysis/clusters.py), the signed-rank test runs on cluster means."""
    st = cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], n_boot, seed, tag)
    return {"n": st["n"], "n_clusters": st["n_clusters"], "mean_delta": st["mean"],
            "ci95": st["ci95"], "ci90": st["ci90"],
            "wilcoxon_p": S.wilcoxon_p(np.asarray(st["cluster_means"])),
            "noise_floor": noise_floor,
            "verdict": verdict(st["mean"], st["ci95"], st["ci90"], min_effect, noise_floor)}
