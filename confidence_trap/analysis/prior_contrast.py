"""Does the control that lowers entropy by optimisation move answers to the prior, as the default
run's rate would have it? The contrast in numbers and in words, from two summaries alone.

    from confidence_trap.analysis.prior_contrast import controls_contrast, contrast_sentences
    contrast_sentences(default_summary, json.load(open("results/controls/entropy_min/summary.json")))

controls_contrast sets an attack that lowers entropy by optimisation (the entropy_min control)
against the default run: does it move answers toward the prior as much as its fall in entropy
would suggest at the rate the default run shows? The rate is test 3's difference within
questions (confidence_trap/analysis/prior.py), and it is a yardstick only where its CI lies below 0.
"""
from __future__ import annotations

from confidence_trap.analysis.levels import STUDY_ATTACK, level_phrase
from confidence_trap.analysis.prior_text import HOLDS_ZERO, ci_text, side_of, strongest
from confidence_trap.analysis.tables import signed


def _run_entry(summary: dict, attack: str | None = None) -> dict | None:
    """{attack, level key, entry} at the strongest level of `attack` (default: the study's
    perturbation if present, else the first attack) in summary["prior"]."""
    by_attack = (summary.get("prior") or {}).get("by_attack") or {}
    if not by_attack:
        return None
    attack = attack or (STUDY_ATTACK if STUDY_ATTACK in by_attack else sorted(by_attack)[0])
    top = strongest(by_attack[attack])
    return None if top is None else {"attack": attack, "key": top[0], "entry": top[1],
                                     "where": level_phrase(top[0], by_attack[attack]["grouped_by"])}


def controls_contrast(default: dict, control: dict, default_attack: str | None = None,
                      control_attack: str | None = None) -> dict | None:
    """Does the control (entropy_min) move answers toward the prior as much as its fall in
    entropy would suggest? None when either run has no prior block.

    rate: in the default run a pair whose answer is the prior's has Δ lower by
    -class_difference nats (within questions), so if the control's whole mean Δ came from answers
    taking the prior at that rate, its agreement would change by expected_gain = mean Δ /
    class_difference. verdict compares the control's observed gain (its CI) with that: "less",
    "more", "as expected" (the CI holds it), or None (no rate: the default run does not show a
    lower Δ there, its CI holding 0 or above it);
    verdict_forced when "less" is forced because expected_gain exceeds max_gain (1 - the
    control's clean agreement: agreement cannot pass 100%).
    Each run's side also carries its own test 3 (delta_to_prior, delta_not_prior, their
    class_difference and CI): within the control, does the fall come with the prior answer?"""
    a, b = _run_entry(default, default_attack), _run_entry(control, control_attack)
    if a is None or b is None:
        return None

    def side(run):
        e = run["entry"]
        g, d = e["agreement_difference"], e["mean_delta"]
        return {"attack": run["attack"], "level": e["level"], "where": run["where"], "agreement_difference": g,
                "agreement_difference_ci95": e["agreement_difference_ci95"], "mean_delta": d,
                "ci95": e["ci95"], "gain_per_nat": None if g is None or not d else g / d,
                "class_difference": e["class_difference"],
                "class_difference_ci95": e["class_difference_ci95"],
                "delta_to_prior": e["classes"]["to_prior"]["mean_delta"],
                "delta_not_prior": e["classes"]["not_prior"]["mean_delta"]}
    out = {"default": side(a), "control": side(b)}
    rate, shown = out["default"]["class_difference"], side_of(out["default"]["class_difference_ci95"]) < 0
    d, ci = out["control"]["mean_delta"], out["control"]["agreement_difference_ci95"]
    expected = d / rate if shown and d is not None else None
    out["expected_gain"] = expected
    ac = b["entry"]["agreement_clean"]
    out["max_gain"] = None if ac is None else 1.0 - ac  # agreement cannot pass 100%
    out["verdict"] = None if expected is None or ci is None else (
        "less" if ci[1] < expected else "more" if ci[0] > expected else "as expected")
    out["verdict_forced"] = (out["verdict"] == "less" and out["max_gain"] is not None
                             and expected > out["max_gain"])
    return out


def contrast_sentences(default: dict, control: dict, **attacks) -> list[str]:
    """controls_contrast in words, for the paper: what the data say, whichever way."""
    c = controls_contrast(default, control, **attacks)
    if c is None:
        return ["The contrast needs a prior pass in both runs; one of them has none."]
    out = []
    for name, r in (("default run", c["default"]), ("control", c["control"])):
        g = r["agreement_difference"]
        per = "" if r["gain_per_nat"] is None else \
            f", {r['gain_per_nat'] * 100:+.1f} points of agreement per nat of Δ"
        out.append(f"In the {name}, {r['attack']}{' at ' * bool(r['where'])}{r['where']}, mean Δ is "
                   f"{signed(r['mean_delta'])} nats ({ci_text(r['ci95'])}) and agreement with the prior "
                   f"changes by {g * 100:+.1f} percentage points "
                   f"({ci_text(r['agreement_difference_ci95'], '+.1f', 100)}){per}.")
    r = c["control"]
    if r["class_difference"] is not None:
        side = side_of(r["class_difference_ci95"])
        out.append(f"Within the control, pairs whose answer is the prior's have mean Δ "
                   f"{signed(r['delta_to_prior'])} nats and the others {signed(r['delta_not_prior'])}; "
                   f"within questions they differ by {signed(r['class_difference'])} "
                   f"({ci_text(r['class_difference_ci95'])}): " + {
                       -1: "its fall is larger where answers take the prior.",
                       1: "its fall is smaller where answers take the prior, so it does not come from them.",
                       0: f"whether its fall is larger where answers take the prior, {HOLDS_ZERO}."}[side])
    if c["expected_gain"] is None:
        out.append("In the default run, compared within questions, a pair that takes the prior answer "
                   "is not shown to have a lower Δ than one that does not, so its rate predicts no gain "
                   "from a fall in entropy: the contrast has no yardstick here, and the run cannot tell "
                   "whether “confident” means “prior”.")
        return out
    words = {"less": "less than its fall in entropy would suggest: it finds confident answers that "
                     "are not the prior's, so here “confident” does not mean “prior”",
             "more": "more than its fall in entropy would suggest: its answers go to the prior "
                     "beyond what the entropy change accounts for",
             "as expected": "about as much as its fall in entropy would suggest (the CI holds it), "
                            "as if “confident” meant “prior”"}
    out.append(f"At the default run's rate (a pair taking the prior answer has Δ lower by "
               f"{-c['default']['class_difference']:.3f} nats, within questions), the control's mean Δ would come "
               f"with a gain of {c['expected_gain'] * 100:+.1f} points; it moves answers toward the "
               f"prior {words[c['verdict']] if c['verdict'] else 'by an amount whose CI is undefined'}.")
    if c["verdict_forced"]:
        out.append(f"That gain is more than the {c['max_gain'] * 100:.1f} points still possible "
                   f"(agreement cannot pass 100%), so at that rate “less” is forced by construction; "
                   f"the comparison within the control is the test that is not.")
    return out
