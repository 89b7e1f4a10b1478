"""prior_block(records, seed, n_boot) -> summary["prior"]: does a degraded image hand the answer
to the language prior?

    from confidence_trap.runner.runs import read_records
    from confidence_trap.analysis.prior import prior_block
    p = prior_block(read_records("results/records.jsonl"), seed=0)
    p["by_attack"]["proxy"]["by_epsilon"]["0.5"]["agreement_perturbed"]

The prior pass (records with attack "blank", attacks/blank.py) asks each item's question about an
image of nothing but the model's padding colour: its answer is the item's PRIOR ANSWER, its
mean_entropy H_PRIOR. The blank image is the same for every item, so the prior answer and
H_prior depend on the question alone: the prior lives at the level of the question, and a run
has as many independent prior answers as it asks distinct questions. Every test here is
therefore made at that level: permutations permute questions, bootstraps draw questions (and
images, crossed: confidence_trap/analysis/clusters.py), test 1 is repeated with each question left
out, and test 3 compares within questions.
Answers are compared after the task's own normalisation (confidence_trap.tasks.scoring.normalize: the
record's "metric" where it has one, else VQA's normalisation), so "Yes." equals "yes".

None when the run has no valid blank record paired with a clean one (--no-prior). Otherwise
{n_items, n_questions, n_prior_answers (distinct), mean_h_prior, by_attack {attack: {grouped_by,
by_epsilon {key: entry}}}, and by_category {category: {n_items, by_attack}} where records carry
a category}. Keys are those of summary["by_attack"]. An entry, over the pairs (perturbed
record, its item's clean and blank):
    level, n_pairs, n_clusters (items), n_questions, mean_delta, ci95
    1. agreement_clean (share of clean answers equal to the prior answer), agreement_perturbed,
       agreement_difference (perturbed - clean), agreement_difference_ci95, and
       leave_one_out [{question, n_items, agreement_difference}] with each question left out
    2. spearman (ρ over items between the item's mean Δ and x = H_prior - H_clean),
       spearman_ci95, spearman_shuffled (mean ρ with H_prior permuted across questions: what the
       shared -H_clean term gives alone), spearman_shuffled_p (one-sided: share of permutations
       with ρ at least the observed; exact over every permutation where Q! <= n_boot),
       spearman_permutations (how many); halves {prior_below_clean (x < 0), prior_not_below_clean}
    3. classes {to_prior (perturbed answer = prior answer), not_prior, moved_to_prior (= prior
       while no clean answer of the item was)}, class_difference (to_prior - not_prior mean Δ
       within each question, pooled with weights n_to n_not / (n_to + n_not)),
       class_difference_questions (how many questions have both classes), class_difference_ci95
       (None where they hold fewer than 2 items), class_difference_across (the same across every pair, which mixes
       questions and is kept for comparison)
    by_question [{question, prior_answer, h_prior, n_items, n_pairs, agreement_clean,
       agreement_perturbed, mean_delta, n_to_prior, delta_to_prior, n_not_prior, delta_not_prior}]
    clusters {x, delta}: one point per item, for figure 6.
A half or class is {n_clusters, n_pairs, mean_delta, ci95}; empty: n 0 and mean None.
Means are over pairs; every CI is a percentile bootstrap drawing images and questions, crossed,
seeded per statistic (confidence_trap.analysis.stats.sub_rng), with the level's own tag for the mean Δ, so
mean_delta and ci95 are by_attack's where every item has a prior. None with too few draws or an
undefined statistic (ρ of a constant).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from confidence_trap.analysis import clusters as C
from confidence_trap.analysis import stats as S
from confidence_trap.analysis.levels import CLEAN, NOT_PERTURBED, canonical, group_kind, is_valid, level_of
from confidence_trap.analysis.prior_rank import shuffled_questions, spearman, weighted_spearman
from confidence_trap.tasks.scoring import normalize

_unit = C.unit

BLANK = "blank"
CLASSES = ("to_prior", "not_prior", "moved_to_prior")
HALVES = ("prior_below_clean", "prior_not_below_clean")


def answer_key(rec: dict) -> str:
    """A record's answer as its task's scorer reads it (see the module note)."""
    return normalize(str(rec.get("answer") or ""), rec.get("metric"))


def _items(valid: list[dict]) -> dict:
    """{item: (H_clean, H_prior, prior key, clean answers equal to it, clean answers, question)}
    for the items with a clean and a blank record (means where an item has several)."""
    clean, blank = defaultdict(list), defaultdict(list)
    for r in valid:
        if r["attack"] in (CLEAN, BLANK):
            (clean if r["attack"] == CLEAN else blank)[_unit(r)].append(r)
    out = {}
    for u in sorted(set(clean) & set(blank), key=str):
        key = answer_key(blank[u][0])  # canonical order: the first, should an item have several
        out[u] = (float(np.mean([r["mean_entropy"] for r in clean[u]])),
                  float(np.mean([r["mean_entropy"] for r in blank[u]])), key,
                  sum(answer_key(r) == key for r in clean[u]), len(clean[u]), str(clean[u][0]["question"]))
    return out


def _pairs(items: dict, perturbed: list[dict]) -> list[tuple]:
    """[(image, question, trial, Δ, answer is the prior's, moved there)] of the records whose item
    has a prior answer, sorted: sums then do not depend on the order records were written."""
    out = []
    for r in perturbed:
        if (u := _unit(r)) in items:
            h_clean, _, key, clean_eq, _, _ = items[u]
            eq = answer_key(r) == key
            out.append((*u, int(r.get("trial") or 0), r["mean_entropy"] - h_clean, eq,
                        eq and clean_eq == 0))
    return sorted(out)


def _per_item(items: dict, pairs: list[tuple]) -> dict:
    """[k] arrays per item, in clusters.ids_of order: pair counts and sums, the item's entropies,
    clean agreement and question id; the input of the resampled statistics."""
    ids, k = C.ids_of([p[:2] for p in pairs])
    units = sorted({p[:2] for p in pairs})
    d = np.array([p[3] for p in pairs], dtype=np.float64)
    eq = np.array([p[4] for p in pairs], dtype=np.float64)

    def total(w):
        return np.bincount(ids, weights=w, minlength=k)

    def item(i):
        return np.array([items[u][i] for u in units], dtype=np.float64)

    c = {"units": units, "n": total(np.ones_like(d)), "sum": total(d), "agree": total(eq),
         "sum_to_prior": total(d * eq), "h_clean": item(0), "h_prior": item(1), "clean_agree": item(3),
         "clean_n": item(4)}
    c["questions"], c["n_questions"] = C.ids_of([items[u][5] for u in units])
    c["question_names"] = sorted({items[u][5] for u in units})
    c["n_not_prior"], c["sum_not_prior"] = c["n"] - c["agree"], c["sum"] - c["sum_to_prior"]
    c["x"] = c["h_prior"] - c["h_clean"]
    c["delta"] = c["sum"] / np.maximum(c["n"], 1)  # [k] mean Δ of each item
    return c


def _boot_ci(c: dict, stat, n_boot: int, seed: int, tag: str) -> list | None:
    """Percentile 95% CI of stat(weights [b, k] per item), images and questions drawn, crossed;
    resamples where the statistic is undefined (nan: an empty class) are left out."""
    return C.percentile_ci(C.boot(C.Design(c["units"]), stat, n_boot, seed, "prior", tag))


def _ratio(num, den) -> float | None:
    return float(num.sum() / den.sum()) if den.sum() > 0 else None


def _mean_block(pairs: list[tuple], n_boot: int, seed: int, tag: str) -> dict:
    """{n_clusters, n_pairs, mean_delta, ci95} of these pairs (their items resampled); n 0 and
    None when empty."""
    st = C.cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], n_boot, seed, tag)
    return {"n_clusters": st["n_clusters"], "n_pairs": st["n"], "mean_delta": st["mean"], "ci95": st["ci95"]}


def _difference(w, c) -> np.ndarray:
    """[b] agreement perturbed - clean of each resample (w [b, k] item weights)."""
    return C.wsum(w, c["agree"]) / C.wsum(w, c["n"]) - C.wsum(w, c["clean_agree"]) / C.wsum(w, c["clean_n"])


def _within(w, c) -> np.ndarray:
    """[b] test 3 within questions: each question's to_prior - not_prior mean Δ, pooled with
    weights n_to n_not / (n_to + n_not), over the questions that have both classes."""
    q, nq = c["questions"], c["n_questions"]
    s1, n1 = C.group_wsum(w, c["sum_to_prior"], q, nq), C.group_wsum(w, c["agree"], q, nq)
    s0, n0 = C.group_wsum(w, c["sum_not_prior"], q, nq), C.group_wsum(w, c["n_not_prior"], q, nq)
    both = (n1 > 0) & (n0 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(both, s1 / np.where(both, n1, 1) - s0 / np.where(both, n0, 1), 0.0)
        weight = np.where(both, n1 * n0 / np.where(both, n1 + n0, 1), 0.0)
        return (weight * d).sum(axis=1) / weight.sum(axis=1)


def _agreement(c: dict, n_boot: int, seed: int, tag: str) -> dict:
    """Test 1: the agreements, their difference with its CI, and the difference with each
    question left out in turn."""
    ac, ap = _ratio(c["clean_agree"], c["clean_n"]), _ratio(c["agree"], c["n"])
    out = {"agreement_clean": ac, "agreement_perturbed": ap,
           "agreement_difference": ap - ac if ac is not None and ap is not None else None,
           "agreement_difference_ci95": _boot_ci(c, lambda w: _difference(w, c), n_boot, seed, f"{tag}|agreement")}
    out["leave_one_out"] = []
    for j, name in enumerate(c["question_names"]):
        keep = c["questions"] != j
        if keep.any():
            w = keep[None, :].astype(np.float64)
            out["leave_one_out"].append({"question": name, "n_items": int(keep.sum()),
                                         "agreement_difference": S.fnum(_difference(w, c)[0])})
    return out


def _classes(pairs: list[tuple], c: dict, n_boot: int, seed: int, tag: str) -> dict:
    """Test 3: the classes' mean Δ, and their difference within questions with its CI."""
    member = {"to_prior": lambda p: p[4], "not_prior": lambda p: not p[4], "moved_to_prior": lambda p: p[5]}
    classes = {cls: _mean_block([p for p in pairs if member[cls](p)], n_boot, seed, f"prior|{tag}|{cls}")
               for cls in CLASSES}
    a, b = classes["to_prior"]["mean_delta"], classes["not_prior"]["mean_delta"]
    ones = np.ones((1, c["n"].size))
    within = S.fnum(_within(ones, c)[0]) if pairs else None
    both = [q for q in range(c["n_questions"]) if (c["agree"][c["questions"] == q].sum() > 0
                                                   and c["n_not_prior"][c["questions"] == q].sum() > 0)]
    items = int(np.isin(c["questions"], both).sum())  # the items the comparison rests on
    return {"classes": classes, "class_difference": within, "class_difference_questions": len(both),
            "class_difference_ci95": None if within is None or items < 2 else _boot_ci(
                c, lambda w: _within(w, c), n_boot, seed, f"{tag}|classes"),
            "class_difference_across": None if a is None or b is None else a - b}


def _by_question(c: dict, pairs: list[tuple], items: dict) -> list[dict]:
    """Each question's agreements, mean Δ and class means: the by_question table."""
    out = []
    for j, name in enumerate(c["question_names"]):
        m = c["questions"] == j
        mine = [p for p in pairs if items[p[:2]][5] == name]
        to = [p[3] for p in mine if p[4]]
        other = [p[3] for p in mine if not p[4]]
        keys = sorted({items[u][2] for u, k in zip(c["units"], m) if k})
        out.append({"question": name, "prior_answer": keys[0] if len(keys) == 1 else " / ".join(keys),
                    "h_prior": float(c["h_prior"][m].mean()), "n_items": int(m.sum()), "n_pairs": len(mine),
                    "agreement_clean": _ratio(c["clean_agree"][m], c["clean_n"][m]),
                    "agreement_perturbed": _ratio(c["agree"][m], c["n"][m]),
                    "mean_delta": float(np.mean([p[3] for p in mine])),
                    "n_to_prior": len(to), "delta_to_prior": float(np.mean(to)) if to else None,
                    "n_not_prior": len(other), "delta_not_prior": float(np.mean(other)) if other else None})
    return out


def level_entry(items: dict, perturbed: list[dict], level: float, seed: int = 0,
                n_boot: int = S.N_BOOT, tag: str = "") -> dict:
    """The three tests at one (attack, level); `perturbed` are its valid records. `tag` is the
    level's tag in summary.py, so the mean Δ's CI is by_attack's where the pairs are the same."""
    pairs = _pairs(items, perturbed)
    c = _per_item(items, pairs)
    overall = _mean_block(pairs, n_boot, seed, tag)
    entry = {"level": float(level), "n_pairs": overall["n_pairs"], "n_clusters": int(c["n"].size),
             "n_questions": c["n_questions"], "mean_delta": overall["mean_delta"], "ci95": overall["ci95"],
             **_agreement(c, n_boot, seed, tag)}
    # 2. the prior's entropy predicts the sign of Δ
    rho = spearman(c["x"], c["delta"])
    entry["spearman"] = rho
    entry["spearman_ci95"] = None if rho is None else _boot_ci(
        c, lambda w: weighted_spearman(c["x"], c["delta"], w), n_boot, seed, f"{tag}|spearman")
    entry.update(shuffled_questions(c["h_prior"], c["h_clean"], c["delta"], c["questions"], rho, n_boot, seed,
                                    f"{tag}|shuffle"))
    below = {u for u, x in zip(c["units"], c["x"]) if x < 0}
    entry["halves"] = {name: _mean_block([p for p in pairs if (p[:2] in below) == side], n_boot,
                                         seed, f"prior|{tag}|{name}")
                       for name, side in zip(HALVES, (True, False))}
    # 3. entropy falls where the answer becomes the prior
    entry.update(_classes(pairs, c, n_boot, seed, tag))
    entry["by_question"] = _by_question(c, pairs, items)
    entry["clusters"] = {"x": c["x"].tolist(), "delta": c["delta"].tolist()}
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
        kind = group_kind([r for v in groups[attack].values() for r in v])
        out[attack] = {"grouped_by": kind, "by_epsilon": by_eps}
    return out


def prior_block(records: list[dict], seed: int = 0, n_boot: int = S.N_BOOT) -> dict | None:
    """summary["prior"] (see the module docstring); None without a prior pass."""
    valid = [r for r in canonical(records) if is_valid(r)]
    items = _items(valid)
    if not items:
        return None
    block = {"n_items": len(items), "n_questions": len({v[5] for v in items.values()}),
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
