"""summary["original"]: the original study's own protocol (issue 25), and what its number is made of.

    from confidence_trap.analysis.original import original_block
    block = original_block(records, seed=0, n_boot=1000, code=study["code"])   # None without the probe
    block["by_epsilon"]["0.3"]["both"]["all"]["mean_delta"]     # Δ of the mean over every position
    block["clamp"]["image"]["mean_delta"]                       # the clamp alone, image positions

The original code (paper/original_study.json's `code` block) scores one teacher-forced forward
pass over the prompt: the entropy at every position, averaged (records: prompt_entropy), with no
answer generated. Records of a run that uses that probe carry the mean over every position and its
split by position kind (KINDS: the image positions, the text positions, the last position, whose
distribution is the answer's first token), n_positions and n_image_positions. Its perturbation is
three registered attacks (ATTACKS), so the block decomposes it:
    clamp  original_clamp            clamp(x_norm, 0, 1): no ε, no randomness (epsilon null, σ 0)
    noise  original_noise_unclamped  x_norm + σ z, σ = ε/10, no clamp
    both   original_noise            clamp(x_norm + σ z, 0, 1): what the original ran
Δ = the record's value - the item's clean value, paired by item (image, prompt) as everywhere
(confidence_trap/analysis/clusters.py); the statistics and the verdict of each (attack, ε, kind)
are confidence_trap.analysis.verdicts.delta_stats's, against the noise floor of the same kind from
the null control's repeats. Layout:

    {entropy: "prompt_entropy", kinds {kind: record field}, attacks {part: attack name},
     generated (bool: the records also carry generated answers), images [distinct images],
     n_images, n_clusters, one_cluster (bool), clusters (the sentence saying what may be
     concluded from them), clean {n, n_clusters, all, image, text, last (mean clean entropies),
     n_positions, n_image_positions (int where every clean record agrees, else None),
     n_positions_range [lo, hi]}, noise {kind: confidence_trap.analysis.noise.entropy_noise's block} or None,
     clamp {kind: entry} or None, by_epsilon {eps_key: {epsilon, sigma (the records', None if
     they disagree), sigma_pairs (σ = ε/10 holds), original_runs (the original has runs at this
     ε; None without its code block), noise {kind: entry} or None, both {kind: entry} or None,
     noise_on_clamp {kind: mean Δ of both - mean Δ of clamp} or None}}, pairing (σ = ε/10 in
     words), pairing_holds, other_attacks (perturbations with the probe that the block does not
     decompose), theirs (the code block as given, each run with the mean of its Δs; None without)}
    entry: {n, n_clusters, mean_delta, ci95, ci90, wilcoxon_p, noise_floor, verdict, deltas,
            trials} (deltas and trials in pair order: image, prompt, trial).

With one image and one prompt there is one cluster: the trials at an ε are noise draws on that one
image, so ci95 is None (no interval over images can be drawn from one) and `clusters` says so;
with many images (configs/original_photos.yaml) the CIs resample images. beyond_one_image()
compares such a run with the one-image run: does the one image's sign survive? clamp_pixels() is
the clamp in pixel space, for the figure. No torch, no files: the caller passes the code block.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from confidence_trap.analysis import stats as S
from confidence_trap.analysis import verdicts as V
from confidence_trap.analysis.clusters import clean_means, pair_deltas, unit, value
from confidence_trap.analysis.levels import eps_key
from confidence_trap.analysis.noise import entropy_noise, null_shifts

ENTROPY = "prompt_entropy"
KINDS = {"all": ENTROPY, "image": "prompt_entropy_image", "text": "prompt_entropy_text",
         "last": "prompt_entropy_last"}
KIND_WORDS = {"all": "every position", "image": "image positions", "text": "text positions",
              "last": "last position"}
ATTACKS = {"clamp": "original_clamp", "noise": "original_noise_unclamped", "both": "original_noise"}
PART_WORDS = {"clamp": "clamp alone (σ = 0)", "noise": "noise alone, no clamp", "both": "noise and clamp (the original)"}
CLEAN, NULL = "none", "repeat"
NOT_PERTURBED = (CLEAN, NULL, "blank")
SIGMA_PER_EPS = 0.1  # the original's pairing: "epsilon=0.1, noise=0.01", "epsilon=0.3, noise=0.03"
PAIRING = "σ = ε/10, in the processor's normalised units (the original's 'epsilon=0.1, noise=0.01' and 'epsilon=0.3, noise=0.03')"
ONE_CLUSTER = ("One image and one prompt: one cluster. The trials at an ε are noise draws on that one "
               "image, so no interval over images can be drawn from them and none is given; they show "
               "how far the noise moves this image's entropy, not whether another image would move alike.")
MANY = "{k} items (image and prompt): every 95% CI resamples them, not the noise draws."
SURVIVES = {"falls": -1, "rises": +1}


def attack_of(rec: dict) -> str:
    """The registered attack name of a record (the contract's attack_name; `attack` before it)."""
    return str(rec.get("attack_name") or rec.get("attack"))


def has_probe(rec: dict) -> bool:
    return ENTROPY in rec


def prompt_only(rec: dict) -> bool:
    """A record of the original protocol (`protocol: prompt`): the probe and no generated answer."""
    return has_probe(rec) and "mean_entropy" not in rec


def prompt_valid(rec: dict) -> bool:
    """Finite: no non-finite logits and a finite prompt_entropy."""
    return int(rec.get("n_nonfinite") or 0) == 0 and value(rec, ENTROPY) is not None


def _entry(records, means: dict, key: str, tag: str, seed, n_boot, min_effect, floor, null) -> dict | None:
    pairs = pair_deltas(records, means, key)
    if not pairs:
        return None
    st = V.delta_stats(pairs, seed, n_boot, tag, min_effect, null, floor)
    return {**st, "deltas": [p[3] for p in pairs], "trials": [p[2] for p in pairs]}


def _kinds(records, clean, tag, seed, n_boot, min_effect, noise, nulls) -> dict | None:
    """{kind: entry} of one (attack, ε), None without records; each tested against the repeat
    pass's Δ_null of its own kind (nulls), as every verdict is (verdicts.delta_stats)."""
    if not records:
        return None
    out = {k: _entry(records, clean_means(clean, f), f, f"original|{tag}|{k}", seed, n_boot, min_effect,
                     ((noise or {}).get(k) or {}).get("floor"), (nulls or {}).get(k))
           for k, f in KINDS.items()}
    return out if out["all"] else None


def _clean(clean: list[dict]) -> dict:
    out = {"n": len(clean), "n_clusters": len({unit(r) for r in clean})}
    for k, f in KINDS.items():
        vals = [v for r in clean if (v := value(r, f)) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    for f in ("n_positions", "n_image_positions"):
        seen = sorted({int(r[f]) for r in clean if r.get(f) is not None})
        out[f] = seen[0] if len(seen) == 1 else None
    seen = [int(r["n_positions"]) for r in clean if r.get("n_positions") is not None]
    out["n_positions_range"] = [min(seen), max(seen)] if seen else None
    return out


def _sigma(records: list[dict]):
    """The records' σ where they agree, else None."""
    seen = {float(r["sigma"]) for r in records if r.get("sigma") is not None}
    return seen.pop() if len(seen) == 1 else None


def theirs(code: dict | None) -> dict | None:
    """The original's code block as given, each run with the mean of its Δs (computed here)."""
    if not code:
        return None
    return {**code, "runs": [{**r, "mean": float(np.mean(r["deltas"]))} for r in code.get("runs", [])]}


def _epsilon_entry(eps, noise_recs, both_recs, clean, clamp, code, args) -> dict:
    key = eps_key(eps)
    sigma = _sigma(noise_recs + both_recs)
    noise = _kinds(noise_recs, clean, f"noise|{key}", *args)
    both = _kinds(both_recs, clean, f"both|{key}", *args)
    runs = None if code is None else any(math.isclose(r["epsilon"], eps) for r in code.get("runs", []))
    on_clamp = None if not (both and clamp) else {
        k: both[k]["mean_delta"] - clamp[k]["mean_delta"] if both[k] and clamp[k] else None for k in KINDS}
    return {"epsilon": float(eps), "sigma": sigma,
            "sigma_pairs": sigma is not None and math.isclose(sigma, SIGMA_PER_EPS * eps, rel_tol=1e-6),
            "original_runs": runs, "noise": noise, "both": both, "noise_on_clamp": on_clamp}


def original_block(records: list[dict], seed: int = 0, n_boot: int = S.N_BOOT,
                   min_effect: float = V.MIN_EFFECT, code: dict | None = None) -> dict | None:
    """summary["original"] (the module docstring gives its layout); None when no record carries
    the teacher-forced probe. `code`: paper/original_study.json's code block, read by the caller."""
    valid = [r for r in records if has_probe(r) and prompt_valid(r)]
    if not valid:
        return None
    by = defaultdict(list)
    for r in valid:
        by[attack_of(r)].append(r)
    clean = by[CLEAN]
    noise = {k: entropy_noise(clean, by[NULL], f, seed, n_boot, "original|") for k, f in KINDS.items()} \
        if by[NULL] else None
    nulls = {k: null_shifts(clean, by[NULL], f) for k, f in KINDS.items()} if by[NULL] else None
    args = (seed, n_boot, min_effect, noise, nulls)
    clamp = _kinds(by[ATTACKS["clamp"]], clean, "clamp", *args)
    levels = defaultdict(lambda: ([], []))
    for part in ("noise", "both"):
        for r in by[ATTACKS[part]]:
            levels[float(r["epsilon"])][part == "both"].append(r)
    by_eps = {eps_key(e): _epsilon_entry(e, n, b, clean, clamp, code, args)
              for e, (n, b) in sorted(levels.items())}
    images = sorted({str(r["image"]) for r in valid})
    k = len({unit(r) for r in valid})
    return {"entropy": ENTROPY, "kinds": dict(KINDS), "attacks": dict(ATTACKS),
            "generated": any("mean_entropy" in r for r in records if has_probe(r)),
            "images": images, "n_images": len(images), "n_clusters": k, "one_cluster": k == 1,
            "clusters": ONE_CLUSTER if k == 1 else MANY.format(k=k),
            "clean": _clean(clean), "noise": noise, "clamp": clamp, "by_epsilon": by_eps,
            "pairing": PAIRING, "pairing_holds": all(e["sigma_pairs"] for e in by_eps.values()),
            "other_attacks": sorted(a for a in by if a not in NOT_PERTURBED and a not in ATTACKS.values()),
            "theirs": theirs(code)}


def prompt_noise(block: dict | None) -> dict | None:
    """summary["noise"] of a run with no generated answers: Δ_null of prompt_entropy, in
    confidence_trap/analysis/noise.py's layout (no answers, so none changed), naming its entropy."""
    noise = (block or {}).get("noise")
    if not noise:
        return None
    return {**noise["all"], "answers_changed": None, "answer_entropy": None, "entropy": ENTROPY}


def attach(summary: dict, records: list[dict], seed: int, n_boot: int, min_effect: float,
           code: dict | None) -> dict:
    """Add the block to summarize()'s dict; where the records have no generated answers (the
    original protocol), also count them in meta and nonfinite, and give the noise block."""
    block = original_block(records, seed, n_boot, min_effect, code)
    if block is None:
        return summary
    summary["original"] = block
    only = [r for r in records if prompt_only(r)]
    bad = [r for r in only if not prompt_valid(r)]
    summary["meta"]["n_records"] += len(only)
    summary["meta"]["n_valid"] += len(only) - len(bad)
    summary["nonfinite"]["count"] += len(bad)
    summary["nonfinite"]["records"] += [{k: r.get(k) for k in ("image", "attack", "epsilon", "trial")} for r in bad]
    if summary.get("noise") is None and not block["generated"]:
        summary["noise"] = prompt_noise(block)
        summary["meta"]["noise_floor"] = (summary["noise"] or {}).get("floor")
    return summary


def parts(block: dict):
    """(part, ε key or None, {kind: entry}) of every decomposed condition, in reading order."""
    if block.get("clamp"):
        yield "clamp", None, block["clamp"]
    for key, e in sorted(block["by_epsilon"].items(), key=lambda kv: kv[1]["epsilon"]):
        for part in ("noise", "both"):
            if e[part]:
                yield part, key, e[part]


def shown_epsilon(block: dict) -> str | None:
    """The ε key a headline shows (figure 7, the docs): the largest at which the original has
    runs, else the largest of the run."""
    entries = sorted(block["by_epsilon"].items(), key=lambda kv: kv[1]["epsilon"])
    with_runs = [k for k, e in entries if e["original_runs"]]
    return (with_runs or [k for k, _ in entries] or [None])[-1]


def beyond_one_image(one: dict, many: dict) -> list[dict]:
    """Does the one image's sign survive over many images? One row per condition and kind that both
    blocks have: {part, epsilon, kind, one_image (its mean Δ), many (the entry over many images),
    answer}. answer: "survives" (the many-image verdict falls or rises the same way as the one
    image's mean), "reverses" (the other way), "equivalent" (within δ over the images), "cannot
    tell" (inconclusive); a verdict needs the CI, δ and the noise floor (confidence_trap/analysis/verdicts.py)."""
    over = {(p, k): d for p, k, d in parts(many)}
    rows = []
    for part, key, kinds in parts(one):
        for kind in KINDS:
            e, m = kinds.get(kind), (over.get((part, key)) or {}).get(kind)
            if not e or not m or e["mean_delta"] is None:
                continue
            sign = SURVIVES.get(m["verdict"])
            answer = (("survives" if sign == math.copysign(1, e["mean_delta"]) else "reverses") if sign
                      else "equivalent" if m["verdict"] == "equivalent" else "cannot tell")
            rows.append({"part": part, "epsilon": None if key is None else float(key), "kind": kind,
                         "one_image": e["mean_delta"], "many": m, "answer": answer})
    return rows


def clamp_pixels(image: np.ndarray, mean, std) -> np.ndarray:
    """[H, W, 3] uint8 -> the same image after clamp(x_norm, 0, 1), mapped back to uint8 pixels:
    x_norm = (x/255 - mean)/std per channel, so the clamp keeps each value within
    [mean, mean + std]. The arithmetic is float32, as the attack's."""
    m = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
    s = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)
    x = np.clip((image.astype(np.float32) / 255.0 - m) / s, 0.0, 1.0) * s + m
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
