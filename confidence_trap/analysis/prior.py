"""prior_block(records, seed, n_boot) -> summary["prior"]: does a degraded image hand the answer
to the language prior?

    from confidence_trap.runner.runs import read_records
    from confidence_trap.analysis.prior import prior_block
    p = prior_block(read_records("results/records.jsonl"), seed=0)
    p["by_attack"]["proxy"]["by_epsilon"]["0.5"]["agreement_perturbed"]

The prior pass (records with attack "blank", attacks/blank.py) asks each item's question about an
image of nothing but the model's padding colour: its answer is the item's PRIOR ANSWER, its
mean_entropy H_PRIOR. The blank image is the same for every item, so the prior answer depends
on the question alone.
Answers are compared after the task's own normalisation (confidence_trap.tasks.scoring.normalize: the
record's "metric" where it has one, else VQA's normalisation), so "Yes." equals "yes".

None when the run has no valid blank record paired with a clean one (--no-prior). Otherwise
{n_items, n_questions, n_prior_answers (distinct), mean_h_prior, by_attack {attack: {grouped_by,
by_epsilon {key: entry}}}, and by_category {category: {n_items, by_attack}} where records carry
a category}. Keys are those of summary["by_attack"]; clean, blank and repeat records are not
attacks here either. An entry, over the pairs (perturbed record, its item's clean and blank):
    level, n_pairs, n_clusters, mean_delta, ci95
    1. agreement_clean (share of clean answers equal to the prior answer, over the level's
       items), agreement_perturbed (share of perturbed answers), agreement_difference
       (perturbed - clean), agreement_difference_ci95
    2. spearman (ρ over clusters between the cluster's mean Δ and x = H_prior - H_clean),
       spearman_ci95, spearman_shuffled (mean ρ with H_prior shuffled across clusters: what the
       shared -H_clean term gives alone), spearman_shuffled_p (one-sided: share of shuffles with
       ρ at least the observed); halves {prior_below_clean (x < 0), prior_not_below_clean}
    3. classes {to_prior (perturbed answer = prior answer), not_prior, moved_to_prior (= prior
       while no clean answer of the item was)}, class_difference (to_prior - not_prior mean Δ),
       class_difference_ci95
    clusters {x, delta}: one point per cluster, for figure 6.
A half or class is {n_clusters, n_pairs, mean_delta, ci95}; empty: n 0 and mean None.
Means are over pairs; every CI is a percentile cluster bootstrap (a cluster = one (image,
question) item, resampled whole): confidence_trap.analysis.clusters' cluster_mean_stats for the means (with the
level's own tag, so mean_delta and ci95 are by_attack's where every item has a prior), and the
same resampling of clusters for the ratios and ρ; seeded per statistic by confidence_trap.analysis.stats.sub_rng.
None with fewer than 2 clusters or an undefined statistic (ρ of a constant).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy import stats as _st

from confidence_trap.analysis import clusters as C
from confidence_trap.analysis import stats as S
from confidence_trap.tasks.scoring import normalize
from confidence_trap.analysis.summary import CLEAN, NOT_PERTURBED, _canonical, is_valid, level_of

_unit = C.unit

BLANK = "blank"
CLASSES = ("to_prior", "not_prior", "moved_to_prior")
HALVES = ("prior_below_clean", "prior_not_below_clean")


def answer_key(rec: dict) -> str:
    """A record's answer as its task's scorer reads it (see the module note)."""
    return normalize(str(rec.get("answer") or ""), rec.get("metric"))


def _items(valid: list[dict]) -> dict:
    """{unit: (H_clean, H_prior, prior key, clean answers equal to it, clean answers)} for the
    items with a clean and a blank record (means where a unit has several)."""
    clean, blank = defaultdict(list), defaultdict(list)
    for r in valid:
        if r["attack"] in (CLEAN, BLANK):
            (clean if r["attack"] == CLEAN else blank)[_unit(r)].append(r)
    out = {}
    for u in sorted(set(clean) & set(blank), key=str):
        key = answer_key(blank[u][0])  # canonical order: the first, should a unit have several
        out[u] = (float(np.mean([r["mean_entropy"] for r in clean[u]])),
                  float(np.mean([r["mean_entropy"] for r in blank[u]])), key,
                  sum(answer_key(r) == key for r in clean[u]), len(clean[u]))
    return out


def _pairs(items: dict, perturbed: list[dict]) -> list[tuple]:
    """[(image, question, trial, Δ, answer is the prior's, moved there)] of the records whose item
    has a prior answer, sorted: sums then do not depend on the order records were written."""
    out = []
    for r in perturbed:
        if (u := _unit(r)) in items:
            h_clean, _, key, clean_eq, _ = items[u]
            eq = answer_key(r) == key
            out.append((*u, int(r.get("trial") or 0), r["mean_entropy"] - h_clean, eq,
                        eq and clean_eq == 0))
    return sorted(out)


def _clusters(items: dict, pairs: list[tuple]) -> dict:
    """Per cluster, in clusters.cluster_ids order ([k] arrays): pair counts and sums, and the
    item's entropies and clean agreement; the input of the ratio bootstraps and of ρ."""
    ids, k = C.cluster_ids([p[:2] for p in pairs])
    units = sorted({p[:2] for p in pairs})
    d = np.array([p[3] for p in pairs], dtype=np.float64)
    eq = np.array([p[4] for p in pairs], dtype=np.float64)

    def total(w):
        return np.bincount(ids, weights=w, minlength=k)

    def item(i):
        return np.array([items[u][i] for u in units], dtype=np.float64)

    c = {"n": total(np.ones_like(d)), "sum": total(d), "agree": total(eq), "sum_to_prior": total(d * eq),
         "h_clean": item(0), "h_prior": item(1), "clean_agree": item(3), "clean_n": item(4)}
    c["n_not_prior"], c["sum_not_prior"] = c["n"] - c["agree"], c["sum"] - c["sum_to_prior"]
    c["x"] = c["h_prior"] - c["h_clean"]
    return c


def _boot_ci(n: int, stat, n_boot: int, seed: int, tag: str) -> list | None:
    """Percentile CI of stat(counts) where counts [b, n] say how often each cluster is drawn.

    Resamples where the statistic is undefined (nan: an empty class) are left out."""
    if n < 2:
        return None
    rng = S.sub_rng(seed, "prior", tag)
    with np.errstate(invalid="ignore", divide="ignore"):  # clusters.blocks: bounded memory
        vals = np.concatenate([stat(C.weights(rng, b, None, n).astype(float)) for b in C.blocks(n_boot, n)])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return None
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return [float(lo), float(hi)]


def _ratio(num, den) -> float | None:
    return float(num.sum() / den.sum()) if den.sum() > 0 else None


def _mean_block(pairs: list[tuple], n_boot: int, seed: int, tag: str) -> dict:
    """{n_clusters, n_pairs, mean_delta, ci95} of these pairs: confidence_trap.analysis.clusters' mean and
    cluster-bootstrap CI (clusters without a pair here are not drawn); n 0 and None when empty."""
    st = C.cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], n_boot, seed, tag)
    return {"n_clusters": st["n_clusters"], "n_pairs": st["n"], "mean_delta": st["mean"], "ci95": st["ci95"]}


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
    rx, ry = weighted_ranks(x, counts), weighted_ranks(y, counts)
    w = counts / counts.sum(axis=1, keepdims=True)
    dx = rx - (w * rx).sum(axis=1, keepdims=True)
    dy = ry - (w * ry).sum(axis=1, keepdims=True)
    return (w * dx * dy).sum(axis=1) / np.sqrt((w * dx * dx).sum(axis=1) * (w * dy * dy).sum(axis=1))


def _spearman(x, y) -> float | None:
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return S.fnum(_st.spearmanr(x, y).statistic)


def _shuffled(h_prior, h_clean, delta, rho, n_boot, seed, tag) -> tuple:
    """(mean ρ, one-sided p) with H_prior shuffled across clusters: Δ = H_adv - H_clean and
    x = H_prior - H_clean share -H_clean, so ρ > 0 even where H_prior carries nothing."""
    if rho is None:
        return None, None
    rng = S.sub_rng(seed, "shuffle", tag)
    n = delta.size
    ry = _st.rankdata(delta)
    ry -= ry.mean()
    rhos = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for b in C.blocks(n_boot, n):
            perm = rng.permuted(np.tile(np.arange(n), (b, 1)), axis=1)  # [b, n]
            rx = _st.rankdata(h_prior[perm] - h_clean, axis=1)
            rx -= rx.mean(axis=1, keepdims=True)
            rhos.append(rx @ ry / np.sqrt((rx * rx).sum(axis=1) * (ry @ ry)))
    rhos = np.concatenate(rhos)
    rhos = rhos[np.isfinite(rhos)]
    if rhos.size == 0:
        return None, None
    return float(rhos.mean()), float((1 + np.sum(rhos >= rho - 1e-12)) / (1 + rhos.size))


def level_entry(items: dict, perturbed: list[dict], level: float, seed: int = 0,
                n_boot: int = S.N_BOOT, tag: str = "") -> dict:
    """The three tests at one (attack, level); `perturbed` are its valid records. `tag` is the
    level's tag in summary.py, so the mean Δ's CI is by_attack's where the pairs are the same."""
    pairs = _pairs(items, perturbed)
    c = _clusters(items, pairs)
    k = int(c["n"].size)
    delta = c["sum"] / np.maximum(c["n"], 1)  # [k] mean Δ of each cluster
    overall = _mean_block(pairs, n_boot, seed, tag)
    entry = {"level": float(level), "n_pairs": overall["n_pairs"], "n_clusters": k,
             "mean_delta": overall["mean_delta"], "ci95": overall["ci95"],
             # 1. answers move to the prior
             "agreement_clean": _ratio(c["clean_agree"], c["clean_n"]),
             "agreement_perturbed": _ratio(c["agree"], c["n"])}
    both = entry["agreement_clean"] is not None and entry["agreement_perturbed"] is not None
    entry["agreement_difference"] = (entry["agreement_perturbed"] - entry["agreement_clean"]
                                     if both else None)
    entry["agreement_difference_ci95"] = _boot_ci(
        k, lambda w: (w @ c["agree"]) / (w @ c["n"]) - (w @ c["clean_agree"]) / (w @ c["clean_n"]),
        n_boot, seed, f"{tag}|agreement")
    # 2. the prior's entropy predicts the sign of Δ
    rho = _spearman(c["x"], delta)
    entry["spearman"] = rho
    entry["spearman_ci95"] = None if rho is None else _boot_ci(
        k, lambda w: weighted_spearman(c["x"], delta, w), n_boot, seed, f"{tag}|spearman")
    entry["spearman_shuffled"], entry["spearman_shuffled_p"] = _shuffled(
        c["h_prior"], c["h_clean"], delta, rho, n_boot, seed, f"{tag}|shuffle")
    below = {u for u, x in zip(sorted({p[:2] for p in pairs}), c["x"]) if x < 0}
    entry["halves"] = {name: _mean_block([p for p in pairs if (p[:2] in below) == side], n_boot,
                                         seed, f"prior|{tag}|{name}")
                       for name, side in zip(HALVES, (True, False))}
    # 3. entropy falls where the answer becomes the prior
    member = {"to_prior": lambda p: p[4], "not_prior": lambda p: not p[4], "moved_to_prior": lambda p: p[5]}
    entry["classes"] = {cls: _mean_block([p for p in pairs if member[cls](p)], n_boot, seed,
                                         f"prior|{tag}|{cls}") for cls in CLASSES}
    a, b = entry["classes"]["to_prior"]["mean_delta"], entry["classes"]["not_prior"]["mean_delta"]
    entry["class_difference"] = None if a is None or b is None else a - b
    entry["class_difference_ci95"] = None if entry["class_difference"] is None else _boot_ci(
        k, lambda w: (w @ c["sum_to_prior"]) / (w @ c["agree"])
        - (w @ c["sum_not_prior"]) / (w @ c["n_not_prior"]), n_boot, seed, f"{tag}|classes")
    entry["clusters"] = {"x": c["x"].tolist(), "delta": delta.tolist()}
    return entry


def _by_attack(valid: list[dict], items: dict, seed: int, n_boot: int, tag: str = "") -> dict:
    groups, levels = defaultdict(lambda: defaultdict(list)), {}
    for r in valid:
        if r["attack"] not in NOT_PERTURBED and _unit(r) in items:
            key, lvl = level_of(r)
            groups[r["attack"]][key].append(r)
            levels[(r["attack"], key)] = lvl
    out = {}
    for attack in sorted(groups):
        by_eps = {key: level_entry(items, recs, levels[(attack, key)], seed, n_boot,
                                   f"{tag}{attack}|{key}")
                  for key, recs in groups[attack].items()}
        severity = any(r.get("severity") is not None for v in groups[attack].values() for r in v)
        out[attack] = {"grouped_by": "severity" if severity else "epsilon", "by_epsilon": by_eps}
    return out


def prior_block(records: list[dict], seed: int = 0, n_boot: int = S.N_BOOT) -> dict | None:
    """summary["prior"] (see the module docstring); None without a prior pass."""
    valid = [r for r in _canonical(records) if is_valid(r)]
    items = _items(valid)
    if not items:
        return None
    block = {"n_items": len(items), "n_questions": len({u[1] for u in items}),
             "n_prior_answers": len({v[2] for v in items.values()}),
             "mean_h_prior": float(np.mean([v[1] for v in items.values()])),
             "by_attack": _by_attack(valid, items, seed, n_boot)}
    categories = sorted({str(r["category"]) for r in valid if r.get("category") is not None})
    if categories:
        block["by_category"] = {}
        for cat in categories:
            sub = [r for r in valid if str(r.get("category")) == cat]
            cat_items = _items(sub)
            block["by_category"][cat] = {"n_items": len(cat_items),
                                         "by_attack": _by_attack(sub, cat_items, seed, n_boot,
                                                                 f"category={cat}|")}
    return block
