"""summarize(records) -> the summary.json dict: every number the report, figures and paper show.

    from confidence_trap.runner.runs import read_records
    from confidence_trap.analysis.summary import summarize
    s = summarize(read_records("results/records.jsonl"), seed=0)
    s["by_attack"]["proxy"]["by_epsilon"]["0.3"]["mean_delta"]

Pairing: Δ(image, question, attack, ε, trial) = H_adv - H_clean, where H_clean is the clean
record (attack "none") with the same image and question (the mean, should a unit have several).
"Clean" statistics (pass rates, detection and correctness AUROCs, clean accuracy) use every valid
clean record, so τ and the clean line are the same for every attack and ε. The null control
(attack "repeat") and the prior pass ("blank") are not perturbations: they never enter by_attack,
pass rates or clean statistics; the repeats feed only "noise".

Independent units: a cluster is one (image, question) item, a dataset row; its trials share the
item and the clean answer they are paired with. Every bootstrap CI resamples clusters
(confidence_trap/analysis/clusters.py: the mean-Δ CIs, and those of AUROC, ECE and PRR), and the signed-rank test
runs on cluster means. Verdicts: confidence_trap/analysis/verdicts.py (the rule, δ and why its default).

Excluded everywhere: records with n_nonfinite > 0 or no finite mean_entropy; they are counted and
listed in summary["nonfinite"]. Perturbed records without a valid clean partner enter the
per-ε set-level numbers (detection, pass rates, accuracy) but not Δ; "n_unpaired" counts them.

Layout: summary["by_attack"][attack]["by_epsilon"][key] always; a top-level "by_epsilon" (the
same dict) only when exactly one perturbing attack is present, so single-attack consumers need
not know its name. Keys are eps_key(ε) (repr of the float: "0.3", "0.03137254901960784"); for
attacks named "corruption:*" the key is str(severity) and "grouped_by" says "severity".

Each by_epsilon entry: level (ε or severity as a float), n (pairs), n_clusters (items),
n_perturbed, n_unpaired, mean/median/std_delta, ci95 and ci90 (cluster bootstrap of the mean Δ),
ci95_pairs (the pair-level bootstrap, for comparison only: too narrow, it counts trials as
independent), wilcoxon_p (on cluster means), noise_floor (the section's, None without a null
control), verdict (falls, rises, equivalent or inconclusive), answer_entropy {n, n_clusters,
mean_delta, ci95, ci90, wilcoxon_p, noise_floor, verdict} (the same for the entropy without the
end-of-sequence step, where records carry it), frac_negative, spread_images, spread_trials,
deltas (every Δ, for figure 1), auroc_detect, auroc_detect_ci95, pass_rate, inverted_safety,
floor {share_clean_below_0.01, delta_bound (= -mean H_clean of the pairs, the lowest mean Δ
possible), mean_log_ratio (mean of log((H_adv + 1e-3)/(H_clean + 1e-3))), majority_at_floor};
with references also accuracy_clean/_perturbed, n_with_references, confidently_wrong
(perturbed), confidently_wrong_clean, auroc_wrong_clean/_perturbed, and (confidence_trap/analysis/quality.py)
calibration {confidence: "sequence_prob", n, accuracy, mean_confidence, ece, ece_ci95, brier,
overconfidence, bins: 10 × {lo, hi, n, accuracy, confidence}}, calibration_max_prob (the same,
confidence = mean_max_prob), selective {probe: {n, aurc, aurc_random, aurc_oracle, prr, prr_ci95,
auroc_wrong, auroc_wrong_ci95, inverted, curve {coverage, risk}}} and, for POPE records, pope
{accuracy, precision, recall, f1, yes_ratio, n, tp, fp, tn, fn} and valid_rate (the share of
answers a closed-answer metric can read: confidence_trap.tasks.scoring.closed_validity; in the clean block
too); with extra probes, probes.
Undefined numbers are None: std with fewer than 2 values, CIs with fewer than 2 clusters (AUROC:
values per class), means with none, Wilcoxon with fewer than 2 clusters or all cluster means 0,
AUROCs with an empty class, PRR with all answers right or all wrong. A `correct` is a score in
[0, 1]; below meta.wrong_below it counts as wrong where right/wrong is needed.
Also: clean {n, mean_entropy, std_entropy, share_below_0.01, mean_answer_entropy (where records
carry it), and with references accuracy, auroc_wrong, calibration, calibration_max_prob,
selective, pope}, noise (confidence_trap/analysis/noise.py: {n, n_clusters, mean_delta, ci95, floor,
max_abs_delta, exact_zero, answers_changed, answer_entropy}; None without repeat records),
by_category {category: {clean, by_attack, noise}} (every number above again, per category, for a
run with a category column: a dataset's, or the photos' question kind), nonfinite {count,
records}, token_profile (token_position_profile), prior (confidence_trap/analysis/prior.py: the language-prior
tests against the blank-image pass; None without one), meta {n_records, n_valid, n_unpaired, attacks,
bootstrap_resamples, seed, cluster, min_effect (δ, nats), verdict_rule, noise_floor, alpha,
pass_percentiles, probes, probe_sign, wrong_below, floor_nats}.

Probes: any probe of the registry (probes/__init__.py) beyond mean_entropy present in the
records gets "probes"[key] = {"n", "n_clusters", "mean_delta", "ci95", "auroc_detect", "sign"}. mean_delta is in the
probe's own units and sign; for the detection AUROC the probe is multiplied by its registry sign
so that larger = more uncertain = more suspicious (max-prob probes: higher = more confident, so
their sign is -1).
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
from confidence_trap.analysis.noise import noise_block

CLEAN = "none"
# The passes every run adds (attacks.PASSES): the prior's blank image and the null control's
# repeat. They are not perturbations and never enter the per-level statistics.
PASSES = ("blank", "repeat")
NULL = "repeat"   # the null control's pass: it feeds summary["noise"] alone (confidence_trap/analysis/noise.py)
NOT_PERTURBED = (CLEAN, *PASSES)  # never in by_attack, pass rates or the clean statistics


def is_valid(rec: dict) -> bool:
    """Finite everywhere: no non-finite logits and a finite mean entropy."""
    h = rec.get("mean_entropy")
    return int(rec.get("n_nonfinite") or 0) == 0 and h is not None and math.isfinite(float(h))


def is_corruption(attack: str) -> bool:
    return str(attack).startswith("corruption:")


def level_of(rec: dict) -> tuple[str, float]:
    """(summary key, numeric level) of a perturbed record: ε, or severity for a corruption."""
    if is_corruption(rec["attack"]) and rec.get("severity") is not None:
        return str(int(rec["severity"])), float(rec["severity"])
    return S.eps_key(rec["epsilon"]), float(rec["epsilon"])


def sorted_levels(by_epsilon: dict) -> list[str]:
    """The keys of a by_epsilon dict in numeric order (json sort_keys orders them as text)."""
    return sorted(by_epsilon, key=lambda k: (by_epsilon[k].get("level", float(k)), k))


def level_label(key: str, grouped_by: str) -> str:
    """ε's one label form, the decimal then the nearest /255: "0.3 (≈77/255)", "0.2 (51/255)",
    "0.03137 (8/255)"; a severity stays as it is."""
    if grouped_by == "severity":
        return key
    x = float(key)
    k = int(x * 255 + 0.5)  # half up: 0.3 * 255 = 76.5 reads as 77/255
    return f"{x:.4g} ({'' if abs(x * 255 - k) < 1e-6 else '≈'}{k}/255)"


def _canonical(records: list[dict]) -> list[dict]:
    """Records in a fixed order, so a resumed run (appended in another order) sums the same
    floats in the same order and gets a bit-identical summary."""
    return sorted(records, key=lambda r: (str(r.get("attack")), str(r.get("image")),
                                          str(r.get("question")), float(r.get("epsilon") or 0),
                                          int(r.get("trial", 0)), int(r.get("severity") or 0)))


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


def epsilon_entry(clean, perturbed, level, seed=0, n_boot=S.N_BOOT, probes=(), tag="",
                  min_effect=V.MIN_EFFECT, noise=None) -> dict:
    """The statistics of one (attack, ε): `clean` and `perturbed` are valid records, `noise` the
    section's null-control block (None: no noise floor)."""
    pairs = _pairs(perturbed, _clean_means(clean, "mean_entropy"), "mean_entropy")
    d = np.asarray([p[3] for p in pairs], dtype=np.float64)
    verdict = V.delta_stats(pairs, seed, n_boot, tag, min_effect, _floor_of(noise, "mean_entropy"))
    h_clean = [r["mean_entropy"] for r in clean]
    h_adv = [r["mean_entropy"] for r in perturbed]
    rates = S.pass_rates(h_clean, h_adv)
    entry = {
        "level": float(level), "n": int(d.size), "n_clusters": verdict["n_clusters"],
        "n_perturbed": len(perturbed), "n_unpaired": len(perturbed) - int(d.size),
        "mean_delta": verdict["mean_delta"],
        "median_delta": float(np.median(d)) if d.size else None,
        "std_delta": S.std(d), "ci95": verdict["ci95"], "ci90": verdict["ci90"],
        "ci95_pairs": S.bootstrap_mean_ci(d, n_boot, seed, tag), "wilcoxon_p": verdict["wilcoxon_p"],
        "noise_floor": verdict["noise_floor"], "verdict": verdict["verdict"],
        "frac_negative": float(np.mean(d < 0)) if d.size else None,
        "spread_images": _group_std(pairs, 0), "spread_trials": _group_std(pairs, 2),
        "deltas": [float(x) for x in d],
        "auroc_detect": S.auroc(h_clean, h_adv),
        "auroc_detect_ci95": C.bootstrap_auroc_ci(h_clean, [_unit(r) for r in clean], h_adv,
                                                  [_unit(r) for r in perturbed], n_boot, seed, tag),
        "pass_rate": rates, "inverted_safety": S.inverted_safety(rates),
    }
    if any(_value(r, "answer_entropy") is not None for r in perturbed):  # the EOS step left out
        a_pairs = _pairs(perturbed, _clean_means(clean, "answer_entropy"), "answer_entropy")
        entry["answer_entropy"] = V.delta_stats(a_pairs, seed, n_boot, f"{tag}|answer_entropy",
                                                min_effect, _floor_of(noise, "answer_entropy"))
    means = _clean_means(clean, "mean_entropy")
    entry["floor"] = Q.floor([(means[_unit(r)], r["mean_entropy"]) for r in perturbed if _unit(r) in means])
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
    valid = [r for r in _canonical(records) if is_valid(r)]
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
    noise = noise_block(clean, [r for r in valid if r["attack"] == NULL], seed, n_boot, tag)
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
                                     tag=f"{tag}{attack}|{key}", min_effect=min_effect, noise=noise)
                  for key, recs in groups[attack].items()}
        grouped = any(is_corruption(attack) and r.get("severity") is not None
                      for recs in groups[attack].values() for r in recs)
        by_attack[attack] = {"grouped_by": "severity" if grouped else "epsilon", "by_epsilon": by_eps}
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
              min_effect: float = V.MIN_EFFECT) -> dict:
    """The whole summary.json dict (see the module docstring for its layout); min_effect is the
    verdicts' δ in nats (run.json's config.min_effect)."""
    records = _canonical(records)
    valid = [r for r in records if is_valid(r)]
    probes = [k for k in registry.names() if k != "mean_entropy" and any(_value(r, k) is not None for r in valid)]
    by_attack, clean_block, noise = _sections(valid, probes, seed, n_boot, min_effect=min_effect)
    summary = {
        "by_attack": by_attack, "clean": clean_block, "noise": noise, "nonfinite": _nonfinite(records),
        "token_profile": token_position_profile(records),
        "meta": {"n_records": len(records), "n_valid": len(valid), "attacks": sorted(by_attack),
                 "bootstrap_resamples": int(n_boot), "seed": int(seed),
                 "cluster": "an (image, question) item: every CI resamples items",
                 "min_effect": float(min_effect), "verdict_rule": V.rule(min_effect),
                 "noise_floor": _floor_of(noise, "mean_entropy"), "alpha": S.ALPHA,
                 "pass_percentiles": list(S.PASS_PERCENTILES), "probes": probes,
                 "probe_sign": {k: registry.sign(k) for k in probes},
                 "wrong_below": Q.WRONG_BELOW, "floor_nats": Q.FLOOR_NATS,
                 "n_unpaired": sum(e["n_unpaired"] for a in by_attack.values()
                                   for e in a["by_epsilon"].values())},
    }
    from confidence_trap.analysis.prior import prior_block  # here: prior.py builds on this module's pairing
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
    return json_clean(summary)
