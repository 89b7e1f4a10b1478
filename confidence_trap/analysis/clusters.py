"""Independent units: pairing records by item, and the crossed bootstrap every CI of the summary uses.

    from confidence_trap.analysis.clusters import unit, pair_deltas, cluster_mean_stats
    pairs = pair_deltas(perturbed, clean_means(clean, "mean_entropy"), "mean_entropy")
    st = cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], 1000, 0, "proxy|0.3")
    st["n_clusters"], st["ci95"], st["ci90"]

An item is one (image, question) pair: its clean answer, its null-control repeat and every
perturbed trial share the image, the question and the clean answer they are paired with, so the
T trials of an item are one sample about that item, not T. Items are not independent either:
the items of one image share the image, and the items of one question share the question (the
language prior depends on the question alone). Images and questions are both random effects,
crossed, so every CI resamples both: the two-way ("pigeonhole") bootstrap of Owen (2007) draws
images with replacement and, independently, questions with replacement, and a value enters with
weight (times its image was drawn) × (times its question was drawn). A resample whose drawn
images and questions share no item has no value and is left out. A dataset row (a record with a
"dataset" field) is its own cluster: its unit puts image and question together in the first place
and leaves the second empty, so the same draw resamples rows. With one question the draw is the
bootstrap over images; with every value its own image it is the plain bootstrap.

Draw order (tests/test_units.py recomputes it with plain numpy): the j-th image is the j-th
smallest first place among the values, likewise the questions; the images of resample b are
row b of rng_i.integers(0, I, size=(n_boot, I)) with rng_i = stats.sub_rng(seed, name, tag,
"images") = numpy.random.default_rng([seed, zlib.crc32(f"{name}|{tag}|images".encode())]), the
questions row b of the same from "questions" (not drawn when there is one), drawn in blocks of
rows, which leaves both streams unchanged. For the mean Δ the name is "cluster_mean" and a
resample's statistic is its weighted Δ sum over its weighted pair count: the pair mean of the
resampled pairs, so the interval sits around mean_delta itself. Percentiles: numpy's linear.

Sums over values use wsum(): an elementwise product reduced by numpy's add, whose order depends
on the array's length alone, never a matrix product, whose order OpenBLAS picks by CPU (the
summary is then the same bytes on an AVX-512 Xeon and an AVX2 EPYC).
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from confidence_trap.analysis import stats as S

CROSSED = "images and questions, crossed (a two-way bootstrap)"
ROWS = "dataset rows, each its own cluster"


def unit(rec: dict) -> tuple[str, str]:
    """The item of a record, (image, question) as strings; a dataset row's is (image + question,
    "") (see the module docstring)."""
    if rec.get("dataset") is not None:
        return (f"{rec['image']}\n{rec['question']}", "")
    return (str(rec["image"]), str(rec["question"]))


def cluster_name(records) -> str:
    """What the run's CIs resample, in words (summary.json's meta.cluster and each entry's)."""
    return ROWS if any(r.get("dataset") is not None for r in records) else CROSSED


def value(rec: dict, key: str) -> float | None:
    """rec[key] as a finite float, or None."""
    v = rec.get(key)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def clean_means(clean: list[dict], key: str) -> dict:
    """{item: mean of the clean values of `key`}."""
    acc = defaultdict(list)
    for r in clean:
        v = value(r, key)
        if v is not None:
            acc[unit(r)].append(v)
    return {u: float(np.mean(v)) for u, v in acc.items()}


def pair_deltas(records: list[dict], means: dict, key: str) -> list[tuple]:
    """[(image, question, trial, Δ)] of the records with a clean partner (the first two places:
    the item), sorted, so statistics do not depend on file order; Δ = `key` - the item's clean mean."""
    out = [(*unit(r), int(r.get("trial") or 0), v - means[unit(r)])
           for r in records if (v := value(r, key)) is not None and unit(r) in means]
    return sorted(out)


def ids_of(keys) -> tuple[np.ndarray, int]:
    """([n] int64 id of each key, k): id j is the j-th smallest distinct key."""
    keys = list(keys)
    index = {key: j for j, key in enumerate(sorted(set(keys)))}
    return np.fromiter((index[key] for key in keys), dtype=np.int64, count=len(keys)), len(index)


class Design:
    """How a bootstrap resamples n values: keys [(image, question)] per value (None: each value
    its own image, the plain bootstrap)."""

    def __init__(self, keys=None, n: int | None = None):
        keys = [(j, 0) for j in range(n)] if keys is None else [tuple(k) for k in keys]
        self.n = len(keys)
        self.items = ids_of(keys)
        self.images, self.n_images = ids_of(k[0] for k in keys)
        self.questions, self.n_questions = ids_of(k[1] for k in keys)

    @property
    def n_items(self) -> int:
        return self.items[1]

    def resamples(self, n_boot: int, seed: int, name: str, tag: str):
        """Blocks of [b, n] int64 weights, n_boot rows in all (the draw order of the docstring)."""
        rng_i = S.sub_rng(seed, name, tag, "images")
        rng_q = S.sub_rng(seed, name, tag, "questions")
        chunk = max(1, min(n_boot, S.BOOT_VALUES // max(1, self.n + self.n_images)))  # bounded memory
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            w = S.resample_counts(rng_i, b, self.n_images)[:, self.images]  # [b, n]
            if self.n_questions > 1:
                w = w * S.resample_counts(rng_q, b, self.n_questions)[:, self.questions]
            yield w


def wsum(w: np.ndarray, x) -> np.ndarray:
    """[b] sum over j of w[b, j] x[j], in an order fixed by the length alone (module docstring)."""
    return np.multiply(w, np.asarray(x, dtype=np.float64)).sum(axis=-1)


def group_wsum(w: np.ndarray, x, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """[b, n_groups] sum over the j of each group of w[b, j] x[j] (groups [n] int ids), each
    group's terms added in a fixed order (np.add.reduceat over the values sorted by group)."""
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    present = np.unique(g)
    out = np.zeros((w.shape[0], n_groups))
    if g.size:
        starts = np.searchsorted(g, present)
        out[:, present] = np.add.reduceat(w[:, order] * np.asarray(x, dtype=np.float64)[order], starts, axis=1)
    return out


def percentile_ci(vals, qs=(2.5, 97.5)) -> list | None:
    """Percentiles of the finite values (numpy's linear), None with fewer than 2."""
    v = np.asarray(vals, dtype=np.float64)
    v = v[np.isfinite(v)]
    return None if v.size < 2 else [float(x) for x in np.percentile(v, qs)]


def boot(design: Design, stat, n_boot: int, seed: int, name: str, tag: str) -> np.ndarray:
    """[n_boot] stat(weights) over the design's resamples (nan where a resample has no value)."""
    if design.n == 0 or n_boot < 1:
        return np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.concatenate([np.asarray(stat(w), dtype=np.float64)
                               for w in design.resamples(n_boot, seed, name, tag)])


def cluster_mean_stats(values, keys, n_boot: int = S.N_BOOT, seed: int = 0, tag: str = "") -> dict:
    """{n, n_clusters, n_images, n_questions, mean, ci95, ci90, cluster_means} of values with
    item `keys`: mean is the pair mean; ci95 and ci90 percentile intervals of the same crossed
    resamples (None with fewer than 2 usable resamples, or one image and one question);
    cluster_means [k] per item in id order, for the signed-rank test. Pass values in a canonical
    order (sorted pairs) for bit-identical sums."""
    x = np.asarray(values, dtype=np.float64)
    d = Design(keys)
    ids, k = d.items
    sums = np.bincount(ids, weights=x, minlength=k)  # [k]
    sizes = np.bincount(ids, minlength=k).astype(np.float64)  # [k]
    out = {"n": int(x.size), "n_clusters": k, "n_images": d.n_images, "n_questions": d.n_questions,
           "mean": float(x.mean()) if x.size else None, "ci95": None, "ci90": None,
           "cluster_means": sums / np.maximum(sizes, 1)}
    if d.n_images * d.n_questions < 2:
        return out
    item = np.zeros((k, 2), dtype=np.int64)
    item[ids] = np.stack([d.images, d.questions], axis=1)  # each item's image and question
    per_item = Design([tuple(r) for r in item])
    means = boot(per_item, lambda w: wsum(w, sums) / wsum(w, sizes), n_boot, seed, "cluster_mean", tag)
    ci = percentile_ci(means, (2.5, 5, 95, 97.5))
    if ci is not None:
        out["ci95"], out["ci90"] = [ci[0], ci[3]], [ci[1], ci[2]]
    return out


def bootstrap_auroc_ci(negatives, neg_keys, positives, pos_keys, n_boot: int = S.N_BOOT,
                       seed: int = 0, tag: str = "") -> list | None:
    """Crossed-bootstrap 95% CI of auroc(negatives, positives): a value of either class enters a
    resample with its item's weight (e.g. an item's clean answer and its perturbed ones).
    Resamples left without a value of either class are dropped. None when a class has fewer than
    2 values or fewer than 2 resamples remain.

    O(n) a resample, as confidence_trap.analysis.stats.bootstrap_auroc_ci: the negatives' weights summed
    cumulatively over the sorted negatives give each positive's weight of negatives below it.
    """
    def usable(vals, keys):
        kept = sorted((float(v), key) for v, key in zip(vals, keys)
                      if v is not None and math.isfinite(float(v)))  # sorted: order-independent
        return np.asarray([v for v, _ in kept], dtype=np.float64), [key for _, key in kept]

    neg, nk = usable(negatives, neg_keys)
    pos, pk = usable(positives, pos_keys)
    design = Design(nk + pk)
    if neg.size < 2 or pos.size < 2 or design.n_images * design.n_questions < 2:
        return None
    lo = np.searchsorted(neg, pos, side="left")  # [n1] negatives strictly below pos_j
    hi = np.searchsorted(neg, pos, side="right")  # [n1] ... below or tied

    def stat(w):
        c0, c1 = w[:, :neg.size], w[:, neg.size:]  # [b, n0], [b, n1]
        cum0 = np.zeros((w.shape[0], neg.size + 1))
        np.cumsum(c0, axis=1, out=cum0[:, 1:])
        score = cum0[:, lo] + 0.5 * (cum0[:, hi] - cum0[:, lo])  # [b, n1]
        return (c1 * score).sum(axis=1) / (cum0[:, -1] * c1.sum(axis=1))
    return percentile_ci(boot(design, stat, n_boot, seed, "auroc_clusters", tag))
