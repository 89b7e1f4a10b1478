"""The run's own noise floor, from the null control: how far Δ moves when nothing is perturbed.

    from confidence_trap.analysis.noise import noise_block
    summary["noise"] = noise_block(clean, repeats, seed=0, n_boot=1000)   # None without repeats

`repeats` are the null control's valid records (attack "repeat"): every clean input generated a
second time in another batch composition (other neighbours, more left padding), one per item.
Each is paired with the clean record of its item, Δ_null = H_again - H_clean, and the block is

    {n, n_clusters, mean_delta, ci95 (images and questions drawn, crossed), floor, max_abs_delta, exact_zero,
     answers_changed, answer_entropy: {the same numbers for answer_entropy} or None}

floor, the noise floor, is how far the null control plausibly moves a mean by itself: the far end
of the 95% CI, max(|lo|, |hi|); 0.0 when every Δ_null is exactly 0; with fewer than two items (no
CI) max_abs_delta. The verdicts do not compare with it: they test Δ - Δ_null item by item
(null_shifts(), confidence_trap/analysis/verdicts.py), so the noise sits inside their interval. exact_zero is True when every Δ_null is exactly 0.0: on CPU in float32 the
batch composition may change nothing at all, and the report then says so rather than showing a
floor of 0 as if it were a measured small number. answers_changed is the share of repeated
answers that differ from the clean answer (token ids where both have them, else the text). The
repeats never enter by_attack, pass rates or any clean statistic.
"""
from __future__ import annotations

import numpy as np

from confidence_trap.analysis import stats as S
from confidence_trap.analysis.clusters import clean_means, cluster_mean_stats, pair_deltas, unit, value


def null_shifts(clean: list[dict], repeats: list[dict], key: str = "mean_entropy") -> dict | None:
    """{item: mean Δ_null of `key`} of the items with a valid repeat; None without repeats."""
    if not repeats:
        return None
    shifts = {}
    for p in pair_deltas(repeats, clean_means(clean, key), key):
        shifts.setdefault(p[:2], []).append(p[3])
    return {u: float(np.mean(v)) for u, v in shifts.items()}


def _floor(st: dict, max_abs: float | None, exact_zero: bool) -> float | None:
    if st["n"] == 0:
        return None
    if exact_zero:
        return 0.0
    return max(abs(st["ci95"][0]), abs(st["ci95"][1])) if st["ci95"] else max_abs


def entropy_noise(clean: list[dict], repeats: list[dict], key: str, seed: int, n_boot: int,
                  tag: str) -> dict:
    """{n, n_clusters, mean_delta, ci95, floor, max_abs_delta, exact_zero} of one entropy."""
    pairs = pair_deltas(repeats, clean_means(clean, key), key)
    d = np.asarray([p[3] for p in pairs], dtype=np.float64)
    st = cluster_mean_stats(d, [p[:2] for p in pairs], n_boot, seed, f"{tag}noise|{key}")
    max_abs = float(np.abs(d).max()) if d.size else None
    exact_zero = bool(d.size) and not np.any(d != 0)
    return {"n": st["n"], "n_clusters": st["n_clusters"], "mean_delta": st["mean"], "ci95": st["ci95"],
            "floor": _floor(st, max_abs, exact_zero), "max_abs_delta": max_abs, "exact_zero": exact_zero}


def _differ(a: dict, b: dict) -> bool:
    """Two answers differ: by token ids where both have them (exact), else by text."""
    if a.get("answer_ids") is not None and b.get("answer_ids") is not None:
        return list(a["answer_ids"]) != list(b["answer_ids"])
    return a.get("answer") != b.get("answer")


def answers_changed(clean: list[dict], repeats: list[dict]) -> float | None:
    """Share of repeated answers unlike their item's clean answer (the first, in the given order)."""
    first = {}
    for r in clean:
        first.setdefault(unit(r), r)
    changed = [_differ(first[unit(r)], r) for r in repeats if unit(r) in first]
    return float(np.mean(changed)) if changed else None


def noise_block(clean: list[dict], repeats: list[dict], seed: int = 0, n_boot: int = S.N_BOOT,
                tag: str = "") -> dict | None:
    """summary["noise"] (the module docstring gives its layout); None without repeat records."""
    if not repeats:
        return None
    out = entropy_noise(clean, repeats, "mean_entropy", seed, n_boot, tag)
    out["answers_changed"] = answers_changed(clean, repeats)
    has_answer = any(value(r, "answer_entropy") is not None for r in repeats)
    out["answer_entropy"] = (entropy_noise(clean, repeats, "answer_entropy", seed, n_boot, tag)
                             if has_answer else None)
    return out
