"""Which records are what, and their levels: the layer every other analysis module reads records through.

    from confidence_trap.analysis.levels import is_valid, level_of, level_label
    level_of({"attack": "proxy", "level_kind": "epsilon", "epsilon": 0.3, ...})   # ("0.3", 0.3)
    level_label("0.3", "epsilon")                                                # "0.3 (≈77/255)"

A record's level kind ("epsilon", "severity" or "none") is its `level_kind` field, which the
engine copies from the attack's registry entry. Records written before that field existed are
read from what they do carry: a `severity` makes it "severity", the clean answer and the two
passes ("none", "blank", "repeat") have none, and anything else is graded by ε. An attack's
name is never parsed for its kind, so a new severity-graded attack needs no change here.
"""
from __future__ import annotations

import math

CLEAN = "none"
# The passes every run adds (attacks.PASSES): the prior's blank image and the null control's
# repeat. They are not perturbations and never enter the per-level statistics.
PASSES = ("blank", "repeat")
NULL = "repeat"   # the null control's pass: it feeds summary["noise"] and the verdicts' test
NOT_PERTURBED = (CLEAN, *PASSES)  # never in by_attack, pass rates or the clean statistics
KINDS = ("epsilon", "severity", "none")
STUDY_ATTACK = "proxy"  # the study's perturbation: the headline of a run that has it


def eps_key(x) -> str:
    """The summary key of an ε: repr of the float, so 0.3 -> "0.3", 8/255 -> "0.03137254901960784".

    repr is the shortest string that reads back as the same float, so keys round-trip exactly
    (float(eps_key(x)) == float(x)) and match what json.dumps wrote into records.jsonl.
    """
    return repr(float(x))


def is_valid(rec: dict) -> bool:
    """Finite everywhere: no non-finite logits and a finite mean entropy."""
    h = rec.get("mean_entropy")
    return int(rec.get("n_nonfinite") or 0) == 0 and h is not None and math.isfinite(float(h))


def level_kind(rec: dict) -> str:
    """"epsilon", "severity" or "none": the record's level_kind, or (older records) what its
    fields say (see the module docstring)."""
    kind = rec.get("level_kind")
    if kind in KINDS:
        return kind
    if rec.get("severity") is not None:
        return "severity"
    return "none" if str(rec.get("attack_name", rec.get("attack"))) in NOT_PERTURBED else "epsilon"


def level_of(rec: dict) -> tuple[str, float]:
    """(summary key, numeric level) of a perturbed record: ε, a severity, or ("none", 0.0) for a
    perturbation without a level."""
    kind = level_kind(rec)
    if kind == "severity":
        return str(int(rec["severity"])), float(rec["severity"])
    if kind == "none" or rec.get("epsilon") is None:
        return "none", 0.0
    return eps_key(rec["epsilon"]), float(rec["epsilon"])


def group_kind(records: list[dict]) -> str:
    """The level kind of one attack's records ("severity" if any record has one, else the first
    record's kind): its section's "grouped_by"."""
    kinds = {level_kind(r) for r in records}
    return "severity" if "severity" in kinds else "epsilon" if "epsilon" in kinds else "none"


def canonical(records: list[dict]) -> list[dict]:
    """Records in a fixed order, so a resumed run (appended in another order) sums the same
    floats in the same order and gets a bit-identical summary."""
    return sorted(records, key=lambda r: (str(r.get("attack")), str(r.get("image")),
                                          str(r.get("question")), float(r.get("epsilon") or 0),
                                          int(r.get("trial", 0)), int(r.get("severity") or 0)))


def sorted_levels(by_epsilon: dict) -> list[str]:
    """The keys of a by_epsilon dict in numeric order (json sort_keys orders them as text)."""
    return sorted(by_epsilon, key=lambda k: (by_epsilon[k].get("level", 0.0), k))


def level_label(key: str, grouped_by: str) -> str:
    """A level's one label form: ε as the decimal then the nearest /255, "0.3 (≈77/255)",
    "0.2 (51/255)", "0.03137 (8/255)"; a severity as it is; no level: "no level"."""
    if grouped_by == "severity":
        return key
    if grouped_by == "none" or key == "none":
        return "no level"
    x = float(key)
    k = int(x * 255 + 0.5)  # half up: 0.3 * 255 = 76.5 reads as 77/255
    return f"{x:.4g} ({'' if abs(x * 255 - k) < 1e-6 else '≈'}{k}/255)"


def level_phrase(key: str, grouped_by: str) -> str:
    """A level in a sentence: "ε = 0.3 (≈77/255)", "severity 3", or "" for no level."""
    if grouped_by == "severity":
        return f"severity {key}"
    if grouped_by == "none" or key == "none":
        return ""
    return f"ε = {level_label(key, grouped_by)}"


def kind_name(grouped_by: str, plural: bool = False) -> str:
    """What a section's levels are called: "ε" (ε is its own plural), "severity"/"severities"."""
    if grouped_by == "severity":
        return "severities" if plural else "severity"
    return "ε" if grouped_by == "epsilon" else ("settings" if plural else "setting")
