"""Independent units: what a cluster is, pairing records by it, and the cluster bootstrap.

    from confidence_trap.analysis.clusters import unit, pair_deltas, cluster_mean_stats
    pairs = pair_deltas(perturbed, clean_means(clean, "mean_entropy"), "mean_entropy")
    st = cluster_mean_stats([p[3] for p in pairs], [p[:2] for p in pairs], 1000, 0, "proxy|0.3")
    st["n_clusters"], st["ci95"], st["ci90"]

A cluster is one item: an (image, question) pair, i.e. one dataset row. Its clean answer, its
null-control repeat and every perturbed trial at every ε share the image, the question and the
clean answer they are paired with, so the T trials of an item are one sample about that item,
not T. Every bootstrap CI of summary.json therefore resamples clusters: a resample draws k
clusters with replacement (k = the number of distinct clusters among the values), and each value
enters as often as its cluster was drawn. With every value its own cluster this is the plain
bootstrap, and with T identical copies per item it is the bootstrap over items alone.

Draw order (tests/test_analysis.py recomputes it with plain numpy): cluster j is the j-th
smallest key; the generator is confidence_trap.analysis.stats.sub_rng(seed, name, tag), i.e.
numpy.random.default_rng([seed, zlib.crc32(f"{name}|{tag}".encode())]); resample b draws the
clusters rng.integers(0, k, size=(n_boot, k))[b] (drawn in blocks of rows, which leaves the
stream unchanged). For the mean Δ the name is "cluster_mean" and a resample's statistic is the
sum of the drawn clusters' Δ sums over the sum of their pair counts: the pair mean of the
resampled pairs, so the interval sits around mean_delta itself. Percentiles: numpy's linear.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from confidence_trap.analysis import stats as S


def unit(rec: dict) -> tuple[str, str]:
    """The cluster of a record: (image, question) as strings."""
    return (str(rec["image"]), str(rec["question"]))


def value(rec: dict, key: str) -> float | None:
    """rec[key] as a finite float, or None."""
    v = rec.get(key)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def clean_means(clean: list[dict], key: str) -> dict:
    """{(image, question): mean of the clean values of `key`}."""
    acc = defaultdict(list)
    for r in clean:
        v = value(r, key)
        if v is not None:
            acc[unit(r)].append(v)
    return {u: float(np.mean(v)) for u, v in acc.items()}


def pair_deltas(records: list[dict], means: dict, key: str) -> list[tuple]:
    """[(image, question, trial, Δ)] of the records with a clean partner, sorted, so statistics
    do not depend on file order; Δ = record's `key` - the item's clean mean."""
    out = [(*unit(r), int(r.get("trial") or 0), v - means[unit(r)])
           for r in records if (v := value(r, key)) is not None and unit(r) in means]
    return sorted(out)


def cluster_ids(keys) -> tuple[np.ndarray, int]:
    """([n] int64 cluster id of each key, k): id j is the j-th smallest distinct key."""
    keys = list(keys)
    index = {key: j for j, key in enumerate(sorted(set(keys)))}
    return np.fromiter((index[key] for key in keys), dtype=np.int64, count=len(keys)), len(index)


def blocks(n_boot: int, width: int):
    """Resample counts per block, so that a block holds about confidence_trap.analysis.stats.BOOT_VALUES values
    of `width` each (bounded memory on large runs)."""
    chunk = max(1, min(n_boot, S.BOOT_VALUES // max(1, width)))
    for start in range(0, n_boot, chunk):
        yield min(chunk, n_boot - start)


def weights(rng: np.random.Generator, b: int, ids: np.ndarray | None, k: int) -> np.ndarray:
    """[b, n] how often each value enters each of b resamples: k clusters drawn with replacement,
    each value counted as often as its cluster. ids None: every value its own cluster (k = n), the
    plain bootstrap, drawn exactly as confidence_trap.analysis.stats.resample_counts draws it."""
    counts = S.resample_counts(rng, b, k)  # [b, k]
    return counts if ids is None else counts[:, ids]


def cluster_mean_stats(values, keys, n_boot: int = S.N_BOOT, seed: int = 0, tag: str = "") -> dict:
    """{n, n_clusters, mean, ci95, ci90, cluster_means} of values grouped by cluster `keys`.

    mean is the pair mean; ci95 and ci90 are percentile intervals of the same cluster
    resamples (None with fewer than 2 clusters or n_boot < 1); cluster_means [k] in id order, for
    the signed-rank test. Pass values in a canonical order (sorted pairs) for bit-identical sums.
    """
    x = np.asarray(values, dtype=np.float64)
    ids, k = cluster_ids(keys)
    sums = np.bincount(ids, weights=x, minlength=k)  # [k]
    sizes = np.bincount(ids, minlength=k).astype(np.float64)  # [k]
    out = {"n": int(x.size), "n_clusters": k, "mean": float(x.mean()) if x.size else None,
           "ci95": None, "ci90": None, "cluster_means": sums / np.maximum(sizes, 1)}
    if k < 2 or n_boot < 1:
        return out
    rng = S.sub_rng(seed, "cluster_mean", tag)
    means = np.concatenate([(c @ sums) / (c @ sizes)
                            for c in (S.resample_counts(rng, b, k) for b in blocks(n_boot, k))])  # [B]
    lo95, lo90, hi90, hi95 = np.percentile(means, [2.5, 5, 95, 97.5])
    out["ci95"], out["ci90"] = [float(lo95), float(hi95)], [float(lo90), float(hi90)]
    return out


def bootstrap_auroc_ci(negatives, neg_keys, positives, pos_keys, n_boot: int = S.N_BOOT,
                       seed: int = 0, tag: str = "") -> list | None:
    """Cluster-bootstrap 95% CI of auroc(negatives, positives): a resample draws clusters, and each
    drawn cluster brings all its values of both classes (e.g. an item's clean answer and its
    perturbed ones). Resamples left without a value of either class are dropped. None when a class
    has fewer than 2 values, there are fewer than 2 clusters, or fewer than 2 resamples remain.

    O(n) a resample, as confidence_trap.analysis.stats.bootstrap_auroc_ci: the negatives' weights summed
    cumulatively over the sorted negatives give each positive's count of negatives below it.
    """
    def usable(vals, keys):
        kept = sorted((float(v), key) for v, key in zip(vals, keys)
                      if v is not None and math.isfinite(float(v)))  # sorted: order-independent
        return np.asarray([v for v, _ in kept], dtype=np.float64), [key for _, key in kept]

    neg, nk = usable(negatives, neg_keys)
    pos, pk = usable(positives, pos_keys)
    ids, k = cluster_ids(nk + pk)
    if neg.size < 2 or pos.size < 2 or k < 2 or n_boot < 1:
        return None
    neg_ids, pos_ids = ids[:neg.size], ids[neg.size:]
    lo = np.searchsorted(neg, pos, side="left")  # [n1] negatives strictly below pos_j
    hi = np.searchsorted(neg, pos, side="right")  # [n1] ... below or tied
    rng, vals = S.sub_rng(seed, "auroc_clusters", tag), []
    for b in blocks(n_boot, k + 2 * neg.size + 2 * pos.size):
        c = S.resample_counts(rng, b, k)  # [b, k]
        c0, c1 = c[:, neg_ids], c[:, pos_ids]  # [b, n0], [b, n1]
        cum0 = np.zeros((b, neg.size + 1))
        np.cumsum(c0, axis=1, out=cum0[:, 1:])
        score = cum0[:, lo] + 0.5 * (cum0[:, hi] - cum0[:, lo])  # [b, n1]
        w = cum0[:, -1] * c1.sum(axis=1)  # [b] n0 n1 of the resample
        vals.append((c1 * score).sum(axis=1)[w > 0] / w[w > 0])
    vals = np.concatenate(vals)
    if vals.size < 2:
        return None
    lo_ci, hi_ci = np.percentile(vals, [2.5, 97.5])
    return [float(lo_ci), float(hi_ci)]
