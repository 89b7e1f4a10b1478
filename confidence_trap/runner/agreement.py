"""Whether two passes over the same units agree: the same answers except at near-ties, and token
entropies within 1e-3 nats.

    gaps = tie_gaps(sweep, units, eager_records, compiled_records)
    agreement(eager_records, compiled_records, gaps)
    # {"same_answers": 62, "of": 64, "near_ties": 2, "other_differences": 0,
    #  "max_token_entropy_diff": 2.8e-4, "max_mean_entropy_diff": 5.0e-5, "agree": True, ...}

Two decode paths (eager and compiled, SDPA and eager attention) round FP16 differently, so where
two tokens' logits are within NEAR_TIE of each other greedy decoding may pick either; from there
the answers part ways. So answers are compared token by token: a pair that first differs at step
t is a near-tie when, on the first pass's side (teacher-forced on the common prefix, eager), the
two chosen tokens' logits are within NEAR_TIE (tie_gaps); the token entropies are compared up to
and including step t, where both passes still saw the same text. The pair agrees when every
difference is a near-tie and no token entropy differs by more than ENTROPY_TOL nats.
"""
from __future__ import annotations

# A margin, not a measurement: FP16 carries about 3 significant digits, so logits of order 10 are
# rounded by about 1e-2, and two kernels' sums of thousands of such terms differ by a few of those.
NEAR_TIE = 0.05      # logits
ENTROPY_TOL = 1e-3   # nats


def first_difference(a: list, b: list) -> int | None:
    """The first step at which two token id lists differ (one ending first counts), or None."""
    for t, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return t
    return None if len(a) == len(b) else min(len(a), len(b))


def agreement(ref: list[dict], other: list[dict], gaps: list | None = None) -> dict:
    """ref and other: the records of the same units in the same order; gaps: tie_gaps' output."""
    same = near = apart = 0
    token_diffs, mean_diffs = [], []
    for i, (ra, rb) in enumerate(zip(ref, other)):
        t = first_difference(ra.get("answer_ids") or [], rb.get("answer_ids") or [])
        n = len(ra["token_entropies"]) if t is None else t + 1
        token_diffs += [abs(x - y) for x, y in zip(ra["token_entropies"][:n], rb["token_entropies"][:n])
                        if x is not None and y is not None]
        if t is None:
            same += 1
            if ra["mean_entropy"] is not None and rb["mean_entropy"] is not None:
                mean_diffs.append(abs(ra["mean_entropy"] - rb["mean_entropy"]))
        elif gaps is not None and gaps[i] is not None and gaps[i] <= NEAR_TIE:
            near += 1
        else:
            apart += 1
    worst = max(token_diffs, default=None)
    return {"same_answers": same, "of": len(ref), "near_ties": near, "other_differences": apart,
            "max_token_entropy_diff": worst, "max_mean_entropy_diff": max(mean_diffs, default=None),
            "near_tie_logits": NEAR_TIE, "entropy_tolerance_nats": ENTROPY_TOL,
            "agree": apart == 0 and (worst is None or worst <= ENTROPY_TOL)}


def tie_gaps(sweep, units: list, ref: list[dict], other: list[dict]) -> list:
    """Per unit: None where the answers are the same, else |logit(a_t) - logit(b_t)| at their first
    differing step t, teacher-forced eagerly on the prompt, the unit's input and the common prefix.
    None too for an attack that needs a loss (its input would cost a gradient attack to redo)."""
    import torch

    from confidence_trap.runner.sweep import perturb_batch

    out = []
    for u, ra, rb in zip(units, ref, other):
        a, b = ra.get("answer_ids") or [], rb.get("answer_ids") or []
        t = first_difference(a, b)
        if t is None or t >= min(len(a), len(b)) or (u.spec is not None and u.spec.needs_loss):
            out.append(None)
            continue
        x = perturb_batch(sweep, sweep.images.pixels([u.item]), [u], {})
        enc = sweep.vlm.encode(x, [sweep.prompts[u.item]])
        prefix = torch.tensor([a[:t]], dtype=enc["input_ids"].dtype, device=enc["input_ids"].device)
        enc["input_ids"] = torch.cat([enc["input_ids"], prefix], 1)
        enc["attention_mask"] = torch.cat([enc["attention_mask"], torch.ones_like(prefix)], 1)
        with torch.inference_mode():
            logits = sweep.vlm.model(**enc).logits[0, -1].float()
        out.append(round(float((logits[a[t]] - logits[b[t]]).abs()), 6))
    return out


__all__ = ["ENTROPY_TOL", "NEAR_TIE", "agreement", "first_difference", "tie_gaps"]
