"""Uncertainty from several answers to one input: cluster the answers, take the entropy.

    >>> from probes.semantic import cluster_entropy, normalize_answer
    >>> normalize_answer("The Two cats."), normalize_answer("2 cats")
    ('2 cats', '2 cats')
    >>> round(cluster_entropy(["Two", "2.", "two", "three"]), 4)   # clusters of 3 and 1
    0.5623

Two probes, one computation over different answer sets (both in nats, higher = more uncertain):
    semantic_entropy(sampled_answers)        K answers sampled at temperature T for the same
                                             image and question (discrete semantic entropy,
                                             Farquhar et al., Nature 2024)
    consistency_entropy(perturbed_answers)   the greedy answers under M small seeded
                                             perturbations of the same input (VL-Uncertainty
                                             style: does the answer survive a nudge?)
Each is the entropy of the empirical distribution over answer clusters:
H = -sum_c (n_c / K) ln(n_c / K), 0 when every answer agrees, ln K when all differ.
semantic_entropy_weighted(answers, logprobs) is the likelihood-weighted variant (Kuhn et al.,
ICLR 2023; Farquhar et al. 2024): p(c) = sum of exp(logprob) over the members of c, normalized
over the clusters, H = -sum_c p(c) ln p(c).

Clusterers: CLUSTERERS maps a name to a function `answers: Sequence[str] -> list[int]` giving
each answer a cluster id, ids numbered 0, 1, ... in order of first appearance (so [1, 0] never
occurs; the first answer is always in cluster 0). "normalized" puts answers in one cluster when
normalize_answer makes them equal. A semantic (NLI) clusterer plugs in with the same signature,
e.g. CLUSTERERS["nli"] = functools.partial(cluster_by_equivalence, equivalent=bidirectional)
with `bidirectional(a, b) -> bool` backed by an entailment model (a entails b and b entails a,
Kuhn et al.'s rule); this module stays pure Python and never loads one.

Pure Python (no torch, numpy or files): strings and floats in, floats and lists out.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence

ARTICLES = frozenset({"a", "an", "the"})
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
          "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_UNITS)}
NUMBER_WORDS.update({w: str(20 + 10 * i) for i, w in enumerate(_TENS)})
NUMBER_WORDS["hundred"] = "100"
_TENS_VALUE = {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_DIGIT_VALUE = {w: i for i, w in enumerate(_UNITS[1:10], start=1)}

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 1,000 -> 1000
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")            # 3.5 keeps its point
_APOSTROPHES = "'\u2019\u2018`"
_POINT = "\x00"                                     # placeholder while punctuation goes


def normalize_answer(text) -> str:
    """The canonical form two answers must share to count as the same answer.

    Rule, in order:
      1. Unicode NFKC, lower case (None -> "").
      2. A comma between digits before exactly three digits is a thousands separator and is
         removed ("1,000" -> "1000"); a point between two digits is kept ("3.5").
      3. Apostrophes are deleted ("dog's" -> "dogs"); every other punctuation or symbol
         character (Unicode categories P* and S*) becomes a space ("t-shirt" -> "t shirt").
      4. Split on whitespace; drop the articles a, an, the.
      5. Number words become digits: zero ... nineteen, twenty ... ninety, hundred; a tens word
         followed by one ... nine joins into one number ("twenty one", "twenty-one" -> "21").
      6. Join with single spaces.
    So "Two." == "2", "The cat." == "cat", "  A  Red\tcar!" == "red car".
    """
    if text is None:
        return ""
    s = unicodedata.normalize("NFKC", str(text)).lower()
    s = _THOUSANDS.sub("", s)
    s = _DECIMAL.sub(_POINT, s)
    chars = []
    for ch in s:
        if ch in _APOSTROPHES:
            continue
        cat = unicodedata.category(ch)
        chars.append(" " if cat[0] in "PS" else ch)
    words = [w for w in "".join(chars).replace(_POINT, ".").split() if w not in ARTICLES]
    out, i = [], 0
    while i < len(words):
        w = words[i]
        if w in _TENS_VALUE and i + 1 < len(words) and words[i + 1] in _DIGIT_VALUE:
            out.append(str(_TENS_VALUE[w] + _DIGIT_VALUE[words[i + 1]]))
            i += 2
            continue
        out.append(NUMBER_WORDS.get(w, w))
        i += 1
    return " ".join(out)


def cluster_by_normalized_match(answers: Sequence[str]) -> list[int]:
    """Cluster ids (first-seen order): same id iff normalize_answer gives the same string."""
    ids: dict[str, int] = {}
    return [ids.setdefault(normalize_answer(a), len(ids)) for a in answers]


def cluster_by_equivalence(answers: Sequence[str],
                           equivalent: Callable[[str, str], bool]) -> list[int]:
    """Cluster ids (first-seen order) under a pairwise test, e.g. bidirectional entailment.

    Each answer joins the first existing cluster whose first member is equivalent to it, else
    opens a new one: at most K x (#clusters) calls of equivalent(representative, answer). For a
    transitive test (an equivalence relation) this is the partition into its classes. For a
    non-transitive one (NLI), Farquhar et al.'s get_semantic_ids (jlko/semantic_uncertainty,
    uncertainty_measures/semantic_entropy.py) can differ: there each new representative claims
    every LATER equivalent answer, even one already claimed.
    """
    reps: list[str] = []
    ids = []
    for a in answers:
        for cid, r in enumerate(reps):
            if equivalent(r, a):
                ids.append(cid)
                break
        else:
            reps.append(a)
            ids.append(len(reps) - 1)
    return ids


CLUSTERERS: dict[str, Callable[[Sequence[str]], list[int]]] = {
    "normalized": cluster_by_normalized_match,
}


def _clusterer(clusterer) -> Callable[[Sequence[str]], list[int]]:
    if callable(clusterer):
        return clusterer
    try:
        return CLUSTERERS[clusterer]
    except KeyError:
        raise ValueError(f"unknown clusterer {clusterer!r}; known: {sorted(CLUSTERERS)}") from None


def cluster_ids(answers: Sequence[str], clusterer="normalized") -> list[int]:
    """The clusterer's ids for `answers` (a name in CLUSTERERS or a callable)."""
    return list(_clusterer(clusterer)(list(answers)))


def cluster_sizes(ids: Sequence[int]) -> list[int]:
    """[size of cluster 0, size of cluster 1, ...] for first-seen-ordered ids."""
    sizes = [0] * (max(ids) + 1 if ids else 0)
    for i in ids:
        sizes[i] += 1
    return sizes


def _entropy_of_counts(sizes: Sequence[int]) -> float:
    """-sum p ln p of the counts, summed small to large so answer order cannot change a bit."""
    k = sum(sizes)
    return float(sum((s / k) * math.log(k / s) for s in sorted(sizes) if s > 0))


def cluster_entropy(answers: Sequence[str], clusterer="normalized") -> float | None:
    """Entropy (nats) of the empirical distribution over the answers' clusters; None if empty."""
    answers = list(answers)
    if not answers:
        return None
    return _entropy_of_counts(cluster_sizes(cluster_ids(answers, clusterer)))


def semantic_entropy(sampled_answers: Sequence[str], clusterer="normalized") -> float | None:
    """Discrete semantic entropy of K answers sampled at temperature T for one input."""
    return cluster_entropy(sampled_answers, clusterer)


def consistency_entropy(perturbed_answers: Sequence[str], clusterer="normalized") -> float | None:
    """Cluster entropy of the greedy answers under M seeded perturbations of one input."""
    return cluster_entropy(perturbed_answers, clusterer)


def semantic_entropy_weighted(answers: Sequence[str], logprobs: Sequence[float],
                              clusterer="normalized") -> float | None:
    """Likelihood-weighted semantic entropy (nats): p(c) proportional to sum exp(logprob).

    logprobs[i] is the log-likelihood of answers[i] under the model: -seq_nll (the joint
    probability) or the mean token log-probability (length-normalized; Farquhar et al.'s code,
    compute_uncertainty_measures.py, averages the token log-likelihoods before this step).
    Each sample counts once per occurrence, duplicates included, as in their logsumexp_by_id
    with agg="sum_normalized" followed by predictive_entropy_rao. The sums run in log space
    (log-sum-exp), so very negative logprobs do not underflow. None when there are no answers
    or a logprob is None / nan / +inf; a -inf logprob is an answer of probability 0.
    Kuhn et al. 2023 define SE = -sum_c p(c|x) ln p(c|x) with p(c|x) = sum over the sequences s
    in c of p(s|x); over a finite sample the cluster masses do not sum to 1, so, like Farquhar
    et al.'s code, we normalize them over the sampled answers before taking the entropy.
    """
    answers, lp = list(answers), list(logprobs)
    if len(answers) != len(lp):
        raise ValueError(f"{len(answers)} answers but {len(lp)} logprobs")
    if not answers or any(v is None or math.isnan(float(v)) or float(v) == math.inf for v in lp):
        return None
    lp = [float(v) for v in lp]
    ids = cluster_ids(answers, clusterer)
    members: list[list[float]] = [[] for _ in range(max(ids) + 1)]
    for i, v in zip(ids, lp):
        members[i].append(v)
    per_cluster = [_logsumexp(m) for m in members]
    total = _logsumexp(per_cluster)
    if total == -math.inf:
        return None  # every answer has probability 0: no distribution
    h = 0.0
    for v in sorted(per_cluster):
        log_p = v - total
        if log_p > -math.inf:
            h -= math.exp(log_p) * log_p
    return float(max(h, 0.0))


def _logsumexp(values: Sequence[float]) -> float:
    m = max(values)
    if m == -math.inf:
        return -math.inf
    return m + math.log(sum(math.exp(v - m) for v in sorted(values)))


def answer_clusters(answer_lists: Sequence[Sequence[str]], clusterer="normalized") -> list[dict]:
    """Per input, what a record keeps about its answer set:

        [{"cluster_ids": [...], "cluster_sizes": [...], "n_clusters", "n_answers",
          "entropy"}, ...]

    one dict per list in `answer_lists` (e.g. the K samples of each (image, question), or the M
    perturbed greedy answers), in the same order; entropy is cluster_entropy (None if empty).
    """
    out = []
    for answers in answer_lists:
        ids = cluster_ids(answers, clusterer)
        sizes = cluster_sizes(ids)
        out.append({"cluster_ids": ids, "cluster_sizes": sizes, "n_clusters": len(sizes),
                    "n_answers": len(ids),
                    "entropy": _entropy_of_counts(sizes) if ids else None})
    return out
