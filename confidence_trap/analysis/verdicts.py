"""Verdicts with a size: does entropy fall, rise, stay within δ, or can the run not tell?

    from confidence_trap.analysis.verdicts import delta_stats, verdict, MIN_EFFECT
    d = delta_stats(pairs, seed=0, n_boot=1000, tag="proxy|0.3", min_effect=0.01, null={item: Δ_null})
    d["verdict"], d["direction"]   # "falls", "rises", "equivalent" or "inconclusive"; "up", "down" or None

`pairs` are confidence_trap.analysis.clusters.pair_deltas tuples (image, question, trial, Δ), `null`
the null control's Δ_null = H_again - H_clean of each item (None: the run has no null control).

The test (RULE) reads Δ - Δ_null, pair by pair: the perturbed answer's change minus its item's
change when nothing was perturbed, i.e. the perturbed pass against the repeat pass. A shift that
the batch composition alone puts into every answer is subtracted, and the null control's scatter
widens the interval, so the run's own noise sits inside the test instead of beside it. Its 90%
CI (images and questions resampled, crossed: confidence_trap/analysis/clusters.py) decides:
  falls         the CI lies below -δ: one-sided, Δ < -δ at α = 0.05, the mirror of TOST (and
                the 95% CI lies below 0, so no verdict stands beside a shown interval holding 0);
  rises         the mirror: the CI lies above +δ (and the 95% CI above 0);
  equivalent    the CI lies inside (-δ, +δ): two one-sided tests at α = 0.05 (Schuirmann);
  inconclusive  anything else, or no null control (no noise in the test: nothing is called).
`direction` says which way the change goes where the 95% CI of Δ - Δ_null (of Δ, without a null
control) excludes 0 ("up", "down"; else None): with an inconclusive verdict, the run sees a
change but cannot show that it exceeds δ.
So a verdict needs a size (δ, shown by the interval, not by the point estimate) and a noise floor
(the null control, inside the interval), and a CI containing 0 is never a finding.

δ (MIN_EFFECT, --min-effect, Config.min_effect) defaults to 0.01 nats because (MIN_EFFECT_WHY):
  * it lies below the smallest change the original study reports (-0.018 nats at ε = 0.2), so a
    reproduction of the study's effect at its own size can be called a fall;
  * it is a hundred times the ~1e-4-nat drift of later tokens between two identical GPU runs
    (issue 19);
  * it is the project's floor, confidence_trap.analysis.quality.FLOOR_NATS: an answer below 0.01 nats counts
    as certain, so a mean change smaller than that is smaller than the gap between an answer at
    the floor and a certain one.
"""
from __future__ import annotations

import numpy as np

from confidence_trap.analysis import stats as S
from confidence_trap.analysis.clusters import cluster_mean_stats

MIN_EFFECT = 0.01
MIN_EFFECT_WHY = ("the default δ, 0.01 nats, lies below the smallest change the original study reports "
                  "(-0.018 nats), and is the project's floor, below which an answer's entropy counts as "
                  "certain")
VERDICTS = ("falls", "rises", "equivalent", "inconclusive")
TOST_ALPHA = 0.05


def rule(min_effect: float = MIN_EFFECT) -> str:
    """The verdict rule in one sentence, with δ's value."""
    return (f"falls if the 90% CI of the mean of Δ − Δ_null (each change minus its item's change in the "
            f"null control, so the run's noise is inside the test; images and questions drawn, crossed) "
            f"lies below −δ and the 95% CI below 0; rises, the mirror; equivalent if the 90% CI lies inside "
            f"(−δ, +δ) (one-sided tests at α = {TOST_ALPHA}); otherwise inconclusive; without a null control, "
            f"inconclusive (δ = {min_effect:g} nats)")


def verdict(mean, ci95, ci90, min_effect: float = MIN_EFFECT, noise_floor=None) -> str:
    """The verdict of one mean (module docstring): mean, ci95 and ci90 are those of the tested
    statistic, Δ - Δ_null; noise_floor None says the run has no null control, so nothing is
    called. Only the interval decides, never the point estimate."""
    if mean is None or ci90 is None or noise_floor is None:
        return "inconclusive"
    if ci90[1] < -min_effect and (ci95 is None or ci95[1] < 0):
        return "falls"
    if ci90[0] > min_effect and (ci95 is None or ci95[0] > 0):
        return "rises"
    if -min_effect < ci90[0] and ci90[1] < min_effect:
        return "equivalent"
    return "inconclusive"


def direction(ci95) -> str | None:
    """"up" or "down" where the 95% CI excludes 0, else None."""
    if ci95 is None:
        return None
    return "up" if ci95[0] > 0 else "down" if ci95[1] < 0 else None


def delta_stats(pairs: list[tuple], seed: int = 0, n_boot: int = S.N_BOOT, tag: str = "",
                min_effect: float = MIN_EFFECT, null: dict | None = None, noise_floor=None) -> dict:
    """{n, n_clusters, mean_delta, ci95, ci90, wilcoxon_p, noise_floor, tested {n, n_clusters,
    mean, ci95, ci90} or None, verdict, direction} of Δ pairs: the CIs of Δ and of Δ - Δ_null (the
    pairs whose item has a null-control Δ) on the same crossed draws, the signed-rank test on item
    means. direction reads the 95% CI of Δ - Δ_null, or of Δ without a null control; noise_floor
    is the null block's, shown beside it."""
    st = cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], n_boot, seed, tag)
    tested = None
    if null is not None:
        diff = [(*p[:3], p[3] - null[p[:2]]) for p in pairs if p[:2] in null]
        t = cluster_mean_stats([p[3] for p in diff], [p[:2] for p in diff], n_boot, seed, tag)
        tested = {"n": t["n"], "n_clusters": t["n_clusters"], "mean": t["mean"], "ci95": t["ci95"],
                  "ci90": t["ci90"]}
    read = tested if tested is not None and tested["n"] else None
    v = "inconclusive" if read is None else verdict(read["mean"], read["ci95"], read["ci90"], min_effect, 0.0)
    return {"n": st["n"], "n_clusters": st["n_clusters"], "mean_delta": st["mean"], "ci95": st["ci95"],
            "ci90": st["ci90"], "wilcoxon_p": S.wilcoxon_p(np.asarray(st["cluster_means"])),
            "noise_floor": noise_floor, "tested": tested, "verdict": v,
            "direction": direction((read or {"ci95": st["ci95"]})["ci95"])}
