"""What the summary says about answers that have references, and about the entropy floor.

    from confidence_trap.analysis.quality import correctness, quality, floor
    quality(records, probes=["mean_entropy", "seq_nll"], seed=0, n_boot=1000, tag="proxy|0.3")

A record's `correct` is its metric's per-item score in [0, 1]: True/False (1/0) for exact and
whole-word matches and POPE, fractional for VQA accuracy. A set's accuracy is its mean score; an
answer counts as WRONG, where a yes/no split is needed (confidently wrong, the wrong-answer
AUROC), when its score is below WRONG_BELOW (for VQA: fewer than two of ten humans agree).

floor(pairs): a mean Δ = H_adv - H_clean can never fall below minus the mean H_clean, so where
clean answers already sit near zero entropy (one-word answers) a fall cannot show. The block
says how much of the set sits there and gives a relative change that the floor does not bound
the same way.

quality(records): calibration of two confidences (the answer's sequence probability
exp(-seq_nll), and the mean top-token probability), selective prediction (AURC, PRR) of every
probe, and POPE's metrics where the records are POPE's; see confidence_trap/analysis/calibration.py,
confidence_trap/analysis/selective.py and confidence_trap/tasks/scoring.py for the definitions.
"""
from __future__ import annotations

import numpy as np

import probes as registry
from confidence_trap.analysis import clusters as C
from confidence_trap.analysis import stats as S
from confidence_trap.analysis.calibration import calibration, sequence_prob
from confidence_trap.tasks.scoring import pope_metrics
from confidence_trap.analysis.selective import bootstrap_prr_cis, selective

WRONG_BELOW = 0.5
FLOOR_NATS = 0.01      # "at the floor": a clean answer whose mean token entropy is below this
LOG_RATIO_EPS = 1e-3   # log((H_adv + eps) / (H_clean + eps))


def score(rec: dict) -> float | None:
    c = rec.get("correct")
    return None if c is None else float(c)


def is_wrong(rec: dict) -> bool:
    return score(rec) < WRONG_BELOW


def floor(h_pairs: list[tuple[float, float]]) -> dict:
    """{share_clean_below_0.01, delta_bound, mean_log_ratio, majority_at_floor} over
    (H_clean, H_adv) pairs."""
    if not h_pairs:
        return {"share_clean_below_0.01": None, "delta_bound": None, "mean_log_ratio": None,
                "majority_at_floor": None}
    hc = np.array([p[0] for p in h_pairs], dtype=np.float64)
    ha = np.array([p[1] for p in h_pairs], dtype=np.float64)
    share = float(np.mean(hc < FLOOR_NATS))
    return {"share_clean_below_0.01": share, "delta_bound": float(-hc.mean()),
            "mean_log_ratio": float(np.mean(np.log((ha + LOG_RATIO_EPS) / (hc + LOG_RATIO_EPS)))),
            "majority_at_floor": share > 0.5}


def correctness(clean: list[dict], perturbed: list[dict], taus: dict) -> dict:
    """Accuracy, confidently-wrong shares and wrong-answer AUROCs; {} without references."""
    c = [r for r in clean if score(r) is not None]
    a = [r for r in perturbed if score(r) is not None]
    if not c and not a:
        return {}

    def acc(rs):
        return float(np.mean([score(r) for r in rs])) if rs else None

    def wrong_auroc(rs):  # wrong answers are the positives: does higher entropy flag them?
        return S.auroc([r["mean_entropy"] for r in rs if not is_wrong(r)],
                       [r["mean_entropy"] for r in rs if is_wrong(r)])

    def cw(rs):
        return S.confidently_wrong([r["mean_entropy"] for r in rs], [not is_wrong(r) for r in rs], taus)

    return {"accuracy_clean": acc(c), "accuracy_perturbed": acc(a), "n_with_references": len(a),
            "confidently_wrong": cw(a), "confidently_wrong_clean": cw(c),
            "auroc_wrong_clean": wrong_auroc(c), "auroc_wrong_perturbed": wrong_auroc(a)}


def signal(u: list, scores: list[float], seed: int, n_boot: int, tag: str, prr_ci95=None,
           clusters=None) -> dict:
    """How well one probe (u: higher = more uncertain) tells wrong answers from right ones:
    selective prediction (AURC, PRR with its bootstrap CI, given, the risk-coverage curve) and
    the wrong-answer AUROC with its bootstrap CI (images and questions drawn, crossed, given an
    (image, question) key per answer; else each class on its own); `inverted` when that CI lies wholly below 0.5, i.e. the probe
    ranks wrong answers as MORE certain than right ones."""
    out = selective(u, scores)
    out["prr_ci95"] = prr_ci95
    keys = clusters if clusters is not None else [None] * len(u)
    right = [(v, k) for v, c, k in zip(u, scores, keys) if v is not None and c >= WRONG_BELOW]
    wrong = [(v, k) for v, c, k in zip(u, scores, keys) if v is not None and c < WRONG_BELOW]
    out["auroc_wrong"] = S.auroc([v for v, _ in right], [v for v, _ in wrong])
    out["auroc_wrong_ci95"] = (
        S.bootstrap_auroc_ci([v for v, _ in right], [v for v, _ in wrong], n_boot, seed, tag)
        if clusters is None else C.bootstrap_auroc_ci([v for v, _ in right], [k for _, k in right],
                                                      [v for v, _ in wrong], [k for _, k in wrong],
                                                      n_boot, seed, tag))
    out["inverted"] = out["auroc_wrong_ci95"] is not None and out["auroc_wrong_ci95"][1] < 0.5
    return out


def quality(records: list[dict], probes: list[str], seed: int, n_boot: int, tag: str) -> dict:
    """calibration, calibration_max_prob, selective and (POPE) pope of the records that have a
    reference; {} when none has. Every CI draws images and questions, crossed (clusters.py)."""
    recs = [r for r in records if score(r) is not None]
    if not recs:
        return {}
    scores = [score(r) for r in recs]
    keys = [C.unit(r) for r in recs]
    out = {
        "calibration": calibration([sequence_prob(r.get("seq_nll")) for r in recs], scores,
                                   name="sequence_prob", n_boot=n_boot, seed=seed, tag=tag, clusters=keys),
        "calibration_max_prob": calibration([C.value(r, "mean_max_prob") for r in recs], scores,
                                            name="mean_max_prob", n_boot=n_boot, seed=seed, tag=tag,
                                            clusters=keys),
        "selective": {}}
    signed = {key: [None if v is None else registry.sign(key) * v for v in (C.value(r, key) for r in recs)]
              for key in probes}
    signed = {k: u for k, u in signed.items() if any(v is not None for v in u)}
    cis = bootstrap_prr_cis(signed, scores, n_boot, seed, tag, keys)  # common resamples for every probe
    for key, u in signed.items():
        out["selective"][key] = signal(u, scores, seed, n_boot, f"{tag}|{key}", cis[key], keys)
    pope = [r for r in recs if r.get("metric") == "pope"]
    if pope:
        out["pope"] = pope_metrics([r["answer"] for r in pope], [r["references"][0] for r in pope])
    return out
