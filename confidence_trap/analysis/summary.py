"""summarize(records) -> the summary.json dict: every number the report, figures and paper show.

    from confidence_trap.runner.runs import read_records
    from confidence_trap.analysis.summary import summarize
    s = summarize(read_records("results/records.jsonl"), seed=0)
    s["by_attack"]["proxy"]["by_epsilon"]["0.3"]["mean_delta"]

The layout of the dict, field by field, with the pairing, the unit every CI resamples and what
is left out, is the last section of docs/DESIGN.md.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

import probes as registry
from confidence_trap.analysis import clusters as C
from confidence_trap.tasks.scoring import closed_validity
from confidence_trap.analysis import quality as Q
from confidence_trap.analysis import stats as S
from confidence_trap.analysis import verdicts as V
from confidence_trap.analysis.levels import (CLEAN, NOT_PERTURBED, NULL, canonical, group_kind, is_valid,
                                             level_of)
from confidence_trap.analysis.entropy_filter import filter_rates, inverted
from confidence_trap.analysis.entropy_filter import rule as filter_rule
from confidence_trap.analysis.noise import noise_block, null_shifts
from confidence_trap.analysis.prior import prior_block
from confidence_trap.analysis.original import attach as attach_original, prompt_only

_unit, _value, _clean_means, _pairs = C.unit, C.value, C.clean_means, C.pair_deltas


def _group_std(pairs: list[tuple], index: int) -> float | None:
    """Std over groups (pairs[index]: 0 = image, 2 = trial) of the group's mean Δ."""
    groups = defaultdict(list)
    for p in pairs:
        groups[p[index]].append(p[3])
    return S.std([np.mean(v) for v in groups.values()])


def _probe_stats(clean, perturbed, probes, seed, n_boot, tag) -> dict:
    out = {}
    for key in probes:
        pairs = _pairs(perturbed, _clean_means(clean, key), key)
        st = C.cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], n_boot, seed, f"{tag}|{key}")
        sign = registry.sign(key)
        neg = [(sign * v, _unit(r)) for r in clean if (v := _value(r, key)) is not None]
        pos = [(sign * v, _unit(r)) for r in perturbed if (v := _value(r, key)) is not None]
        out[key] = {"n": st["n"], "n_clusters": st["n_clusters"], "mean_delta": st["mean"],
                    "ci95": st["ci95"], "auroc_detect": S.auroc([v for v, _ in neg], [v for v, _ in pos]),
                    "sign": sign}
    return out


def _floor_of(noise: dict | None, key: str):
    """The noise floor of one entropy, None without a null control."""
    block = noise if key == "mean_entropy" else (noise or {}).get(key)
    return block.get("floor") if block else None


def _units(perturbed: list[dict], means: dict) -> dict:
    """{n_images, n_questions, cluster}: the distinct images and questions among the paired
    records, and what every CI of the entry resampled."""
    paired = [r for r in perturbed if _unit(r) in means]
    return {"n_images": len({str(r["image"]) for r in paired}),
            "n_questions": len({str(r["question"]) for r in paired}), "cluster": C.cluster_name(paired)}


def _delta(clean, perturbed, key, seed, n_boot, tag, min_effect, noise, nulls) -> tuple[list, dict]:
    """(pairs, verdicts.delta_stats) of one entropy: Δ against the clean mean, tested against
    the null control's Δ_null item by item."""
    pairs = _pairs(perturbed, _clean_means(clean, key), key)
    return pairs, V.delta_stats(pairs, seed, n_boot, tag, min_effect, (nulls or {}).get(key),
                                _floor_of(noise, key))


def epsilon_entry(clean, perturbed, level, seed=0, n_boot=S.N_BOOT, probes=(), tag="",
                  min_effect=V.MIN_EFFECT, noise=None, nulls=None) -> dict:
    """The statistics of one (attack, ε): `clean` and `perturbed` are valid records, `noise` the
    section's null-control block and `nulls` its Δ_null per item of each entropy (None: no null
    control, so no verdict is called)."""
    pairs, verdict = _delta(clean, perturbed, "mean_entropy", seed, n_boot, tag, min_effect, noise, nulls)
    d = np.asarray([p[3] for p in pairs], dtype=np.float64)
    h_clean = [r["mean_entropy"] for r in clean]
    h_adv = [r["mean_entropy"] for r in perturbed]
    means = _clean_means(clean, "mean_entropy")
    rates = filter_rates(clean, perturbed, n_boot, seed, tag)
    entry = {
        "level": float(level), "n": int(d.size), "n_clusters": verdict["n_clusters"],
        **_units(perturbed, means), "n_perturbed": len(perturbed), "n_unpaired": len(perturbed) - int(d.size),
        "mean_delta": verdict["mean_delta"], "median_delta": float(np.median(d)) if d.size else None,
        "std_delta": S.std(d), "ci95": verdict["ci95"], "ci90": verdict["ci90"],
        "ci95_pairs": S.bootstrap_mean_ci(d, n_boot, seed, tag), "wilcoxon_p": verdict["wilcoxon_p"],
        "noise_floor": verdict["noise_floor"], "tested": verdict["tested"], "verdict": verdict["verdict"],
        "direction": verdict["direction"], "frac_negative": float(np.mean(d < 0)) if d.size else None,
        "spread_images": _group_std(pairs, 0), "spread_trials": _group_std(pairs, 2),
        "deltas": [float(x) for x in d],
        "auroc_detect": S.auroc(h_clean, h_adv),
        "auroc_detect_ci95": C.bootstrap_auroc_ci(h_clean, [_unit(r) for r in clean], h_adv,
                                                  [_unit(r) for r in perturbed], n_boot, seed, tag),
        "pass_rate": rates, "inverted_safety": inverted(rates),
        "floor": Q.floor([(means[_unit(r)], r["mean_entropy"]) for r in perturbed if _unit(r) in means]),
    }
    if any(_value(r, "answer_entropy") is not None for r in perturbed):  # the EOS step left out
        entry["answer_entropy"] = _delta(clean, perturbed, "answer_entropy", seed, n_boot,
                                         f"{tag}|answer_entropy", min_effect, noise, nulls)[1]
    entry.update(Q.correctness(clean, perturbed, {k: v["tau"] for k, v in rates.items()}))
    entry.update(Q.quality(perturbed, ["mean_entropy", *probes], seed, n_boot, tag))
    entry.update(closed_validity(perturbed))  # valid_rate, for a closed-answer metric (POPE)
    if probes:
        entry["probes"] = _probe_stats(clean, perturbed, probes, seed, n_boot, tag)
    return entry


def _profile(recs: list[dict]) -> dict:
    """{"mean": [...], "n": [...]}: mean token entropy at each position over the records."""
    sums, counts = [], []
    for r in recs:
        for i, h in enumerate(r.get("token_entropies") or []):
            if i >= len(sums):
                sums.append(0.0)
                counts.append(0)
            if h is not None and math.isfinite(float(h)):
                sums[i] += float(h)
                counts[i] += 1
    return {"mean": [s / c if c else None for s, c in zip(sums, counts)], "n": counts}


def token_position_profile(records: list[dict]) -> dict:
    """Mean entropy by token position, valid records only, for figure 3:
    {"clean": {"mean", "n"}, "by_attack": {attack: {key: {"mean", "n"}}}}."""
    valid = [r for r in canonical(records) if is_valid(r)]
    groups = defaultdict(lambda: defaultdict(list))
    for r in valid:
        if r["attack"] not in NOT_PERTURBED:
            groups[r["attack"]][level_of(r)[0]].append(r)
    return {"clean": _profile([r for r in valid if r["attack"] == CLEAN]),
            "by_attack": {a: {k: _profile(v) for k, v in g.items()} for a, g in groups.items()}}


def _nonfinite(records: list[dict]) -> dict:
    bad = [r for r in records if not is_valid(r)]
    listed = []
    for r in bad:
        item = {k: r.get(k) for k in ("image", "attack", "epsilon", "trial")}
        if r.get("severity") is not None:
            item["severity"] = r["severity"]
        listed.append(item)
    return {"count": len(bad), "records": listed}


def json_clean(obj):
    """numpy -> Python, nan/inf -> None, tuples -> lists: safe for json.dumps(allow_nan=False)."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return S.fnum(obj)
    return obj


def _sections(valid: list[dict], probes: list[str], seed: int, n_boot: int, tag: str = "",
              min_effect: float = V.MIN_EFFECT) -> tuple[dict, dict, dict | None]:
    """(by_attack, clean, noise) of a set of valid records: every per-level number, the clean
    line, and the null control's noise floor that the verdicts are checked against."""
    clean = [r for r in valid if r["attack"] == CLEAN]
    repeats = [r for r in valid if r["attack"] == NULL]
    noise = noise_block(clean, repeats, seed, n_boot, tag)
    nulls = {key: null_shifts(clean, repeats, key) for key in ("mean_entropy", "answer_entropy")}
    groups = defaultdict(lambda: defaultdict(list))
    levels = {}
    for r in valid:
        if r["attack"] not in NOT_PERTURBED:
            key, lvl = level_of(r)
            groups[r["attack"]][key].append(r)
            levels[(r["attack"], key)] = lvl
    by_attack = {}
    for attack in sorted(groups):
        by_eps = {key: epsilon_entry(clean, recs, levels[(attack, key)], seed, n_boot, probes,
                                     tag=f"{tag}{attack}|{key}", min_effect=min_effect, noise=noise,
                                     nulls=nulls)
                  for key, recs in groups[attack].items()}
        kind = group_kind([r for recs in groups[attack].values() for r in recs])
        by_attack[attack] = {"grouped_by": kind, "by_epsilon": by_eps}
    h_clean = [r["mean_entropy"] for r in clean]
    block = {"n": len(clean), "mean_entropy": float(np.mean(h_clean)) if clean else None,
             "std_entropy": S.std(h_clean),
             "share_below_0.01": float(np.mean(np.asarray(h_clean) < Q.FLOOR_NATS)) if clean else None}
    answer = [v for r in clean if (v := _value(r, "answer_entropy")) is not None]
    if answer:
        block["mean_answer_entropy"] = float(np.mean(answer))
    scores = [Q.score(r) for r in clean if Q.score(r) is not None]
    if scores:
        block["accuracy"] = float(np.mean(scores))
        block["auroc_wrong"] = S.auroc([r["mean_entropy"] for r in clean if Q.score(r) is not None
                                        and not Q.is_wrong(r)],
                                       [r["mean_entropy"] for r in clean if Q.score(r) is not None
                                        and Q.is_wrong(r)])
    block.update(Q.quality(clean, ["mean_entropy", *probes], seed, n_boot, f"{tag}clean"))
    block.update(closed_validity(clean))
    return by_attack, block, noise


def summarize(records: list[dict], seed: int = 0, n_boot: int = S.N_BOOT,
              min_effect: float = V.MIN_EFFECT, original_code: dict | None = None) -> dict:
    """The whole summary.json dict (see the module docstring for its layout); min_effect is the
    verdicts' δ in nats (run.json's config.min_effect); original_code is paper/original_study.json's
    code block (the caller reads it), for summary["original"]."""
    everything = canonical(records)
    records = [r for r in everything if not prompt_only(r)]  # the original protocol's have no answer
    valid = [r for r in records if is_valid(r)]
    probes = [k for k in registry.names() if k != "mean_entropy" and any(_value(r, k) is not None for r in valid)]
    by_attack, clean_block, noise = _sections(valid, probes, seed, n_boot, min_effect=min_effect)
    summary = {
        "by_attack": by_attack, "clean": clean_block, "noise": noise, "nonfinite": _nonfinite(records),
        "token_profile": token_position_profile(records),
        "meta": {"n_records": len(records), "n_valid": len(valid), "attacks": sorted(by_attack),
                 "bootstrap_resamples": int(n_boot), "seed": int(seed),
                 "cluster": C.cluster_name(valid), "min_effect": float(min_effect),
                 "verdict_rule": V.rule(min_effect), "filter_rule": filter_rule(),
                 "noise_floor": _floor_of(noise, "mean_entropy"), "alpha": S.ALPHA,
                 "pass_percentiles": list(S.PASS_PERCENTILES), "probes": probes,
                 "probe_sign": {k: registry.sign(k) for k in probes},
                 "wrong_below": Q.WRONG_BELOW, "floor_nats": Q.FLOOR_NATS,
                 "n_unpaired": sum(e["n_unpaired"] for a in by_attack.values()
                                   for e in a["by_epsilon"].values())},
    }
    summary["prior"] = prior_block(records, seed, n_boot)
    if len(by_attack) == 1:
        summary["by_epsilon"] = next(iter(by_attack.values()))["by_epsilon"]
    categories = sorted({str(r["category"]) for r in valid if r.get("category") is not None})
    if categories:  # a dataset run: every number again for each of the task's categories
        summary["by_category"] = {}
        for c in categories:
            sub = [r for r in valid if str(r.get("category")) == c]
            cat_attack, cat_clean, cat_noise = _sections(sub, probes, seed, n_boot, f"category={c}|", min_effect)
            summary["by_category"][c] = {"by_attack": cat_attack, "clean": cat_clean, "noise": cat_noise}
    attach_original(summary, everything, seed, n_boot, min_effect, original_code)
    return json_clean(summary)
