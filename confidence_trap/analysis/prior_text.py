"""The language-prior tests in words, from summary.json alone: for the report, README and paper.

    from confidence_trap.analysis.prior_text import prior_sentences, controls_contrast, contrast_sentences
    prior_sentences(summary)                   # list[str]: one paragraph each
    contrast_sentences(default_summary, json.load(open("results/controls/entropy_min/summary.json")))

prior_sentences reads summary["prior"] (confidence_trap/analysis/prior.py) at each attack's strongest level:
the three tests with sizes and CIs, which way each goes, the results forced by construction
named as such, and the command that makes the same test on LLaVA-1.5-7B. controls_contrast sets
an attack that lowers entropy by optimisation (the entropy_min control) against the default run:
does it move answers toward the prior as much as its fall in entropy would suggest at the rate the
default run shows? Nothing here computes a statistic; it reads them and says what they mean.
"""
from __future__ import annotations

from confidence_trap.analysis.levels import STUDY_ATTACK, level_label, level_phrase, sorted_levels

LLAVA_COMMAND = "python experiments/entropy_analysis.py --config configs/study.yaml"
P_SHUFFLED = 0.05


def _ci(ci, spec=".3f", scale=1.0) -> str:
    if ci is None:
        return "no CI: fewer than 2 items"
    return f"95% CI [{ci[0] * scale:{spec}}, {ci[1] * scale:{spec}}]"


def _n(k: int, word: str, plural: str | None = None) -> str:
    return f"{k} {word if k == 1 else plural or word + 's'}"


def _side(ci) -> int:
    """+1 when the CI lies above 0, -1 below, 0 when it holds 0 or is missing."""
    return 0 if ci is None else (ci[0] > 0) - (ci[1] < 0)


def strongest(section: dict) -> tuple[str, dict] | None:
    """(key, entry) of an attack's strongest level in a by_attack section."""
    keys = sorted_levels(section.get("by_epsilon") or {})
    return (keys[-1], section["by_epsilon"][keys[-1]]) if keys else None


YES, PART, NO = "as predicted", "in part", "not as predicted"


def _half(h: dict, what: str) -> str:
    if not h["n_clusters"]:
        return f"{what} no item (n = 0), so that half is empty"
    return (f"{what} {h['n_clusters']} items ({h['n_pairs']} pairs) with mean Δ "
            f"{h['mean_delta']:+.3f} nats ({_ci(h['ci95'])})")


def test_agreement(e: dict) -> tuple[str, str]:
    """Test 1 in words, and its verdict against the mechanism (YES or NO)."""
    ac, ap, d = e["agreement_clean"], e["agreement_perturbed"], e["agreement_difference"]
    if d is None:
        return "(1) Answers and the prior: no pair has both a clean and a prior answer.", NO
    side = _side(e["agreement_difference_ci95"])
    words = {1: "perturbed answers move toward the prior, as the mechanism predicts",
             -1: "perturbed answers move away from the prior, against the mechanism",
             0: "no clear move (the CI holds 0)"}[side]
    s = (f"(1) Answers move to the prior? {ac:.1%} of the clean answers and {ap:.1%} of the "
         f"perturbed answers equal their item's prior answer, a change of {d * 100:+.1f} percentage "
         f"points ({_ci(e['agreement_difference_ci95'], '+.1f', 100)}): {words}.")
    if ac == 1.0:
        s += (" Every clean answer already equals its prior answer, so agreement cannot rise: "
              "that it does not is forced by construction, not evidence against the mechanism.")
    elif ac == 0.0:
        s += (" No clean answer equals its prior answer, so agreement can only rise or stay: a "
              "fall is ruled out by construction.")
    return s, YES if side > 0 else NO


def test_spearman(e: dict) -> tuple[str, str]:
    """Test 2 in words, and its verdict: YES when ρ beats the shared term and the halves fall
    and rise as the story says, PART when one of the two holds."""
    rho = e["spearman"]
    beats = False
    if rho is None:
        s = (f"(2) The prior's entropy and the sign of Δ: Spearman's ρ is undefined over these "
             f"{e['n_clusters']} items (Δ or H_prior − H_clean is the same for all, or fewer than 2 items).")
    else:
        beats = (e["spearman_ci95"] is not None and e["spearman_ci95"][0] > 0
                 and e["spearman_shuffled_p"] is not None and e["spearman_shuffled_p"] < P_SHUFFLED)
        s = (f"(2) The prior's entropy and the sign of Δ: over {e['n_clusters']} items, Spearman's "
             f"ρ between Δ and H_prior − H_clean is {rho:.2f} ({_ci(e['spearman_ci95'], '.2f')}); the "
             f"mechanism predicts ρ > 0. Part of any ρ is forced by construction: both subtract "
             f"H_clean, and with H_prior shuffled across items ρ is {e['spearman_shuffled']:.2f} on "
             f"average (one-sided p = {e['spearman_shuffled_p']:.3f} that the observed ρ is no "
             f"larger). So H_prior " + ("predicts Δ beyond that shared term, as the mechanism says."
                                        if beats else "does not predict Δ beyond that shared term here."))
        if e["spearman_shuffled"] is not None and abs(e["spearman_shuffled"] - rho) < 1e-9:
            s += (" H_prior is the same for every item here (one question), so ρ is the shared "
                  "term alone, forced by construction.")
    below, above = e["halves"]["prior_below_clean"], e["halves"]["prior_not_below_clean"]
    falls, rises = _side(below["ci95"]) < 0, _side(above["ci95"]) > 0
    s += (f" Split by the prior's entropy, {_half(below, 'H_prior < H_clean holds')}; "
          f"{_half(above, 'H_prior ≥ H_clean holds')}. The story predicts a fall in the first half "
          f"and a rise in the second: entropy {'falls' if falls else 'does not fall'} in the first "
          f"and {'rises' if rises else 'does not rise'} in the second. The split selects by H_clean, "
          f"which Δ subtracts, so it carries the same shared term.")
    return s, YES if beats and falls and rises else PART if beats or (falls and rises) else NO


def test_classes(e: dict) -> tuple[str, str]:
    """Test 3 in words, and its verdict: YES when entropy falls for the pairs that take the prior
    answer and less (or not) for the others, PART when it is only lower there, not falling."""
    c = e["classes"]
    to, other, moved = c["to_prior"], c["not_prior"], c["moved_to_prior"]
    if not to["n_pairs"] or not other["n_pairs"]:
        which = "no perturbed answer equals" if not to["n_pairs"] else "every perturbed answer equals"
        return (f"(3) Entropy where the answer becomes the prior: {which} its prior answer (the other "
                f"class is empty, n = 0), so there is nothing to compare: the test cannot be made, "
                f"by construction."), NO
    lower, falls = _side(e["class_difference_ci95"]) < 0, _side(to["ci95"]) < 0
    if lower:
        words = ("entropy falls where the answer is the prior's, and less or not elsewhere, as the "
                 "mechanism predicts" if falls else "entropy is lower where the answer is the "
                 "prior's than elsewhere, but does not fall there: the mechanism's direction, not its fall")
    else:
        words = {1: "entropy is higher where the answer is the prior's, against the mechanism",
                 0: "no clear difference (the CI holds 0)"}[_side(e["class_difference_ci95"])]
    s = (f"(3) Entropy falls where the answer becomes the prior? Pairs whose perturbed answer equals "
         f"the prior answer ({to['n_pairs']} pairs, {to['n_clusters']} items) have mean Δ "
         f"{to['mean_delta']:+.3f} nats ({_ci(to['ci95'])}), the others ({other['n_pairs']} pairs) "
         f"{other['mean_delta']:+.3f} ({_ci(other['ci95'])}): a difference of "
         f"{e['class_difference']:+.3f} ({_ci(e['class_difference_ci95'])}), so {words}.")
    if moved["n_pairs"]:
        s += (f" Of them, the {moved['n_pairs']} pairs that moved to the prior (their item's clean "
              f"answer was not the prior answer) have mean Δ {moved['mean_delta']:+.3f} ({_ci(moved['ci95'])}).")
    else:
        s += " None of them moved there: every one already had the prior answer when clean."
    return s, YES if lower and falls else PART if lower else NO


def attack_sentences(attack: str, section: dict) -> list[str]:
    """The three tests at an attack's strongest level, and their verdicts."""
    top = strongest(section)
    if top is None:
        return []
    key, e = top
    where = f"{attack} at {'severity ' if section['grouped_by'] == 'severity' else 'ε = '}" \
            f"{level_label(key, section['grouped_by'])}"
    trend = {1: "rises", -1: "falls", 0: "shows no clear change"}[_side(e["ci95"])]
    head = (f"{where}, {e['n_pairs']} pairs over {e['n_clusters']} items: mean entropy {trend} "
            f"(mean Δ {e['mean_delta']:+.3f} nats, {_ci(e['ci95'])})." if e["n_pairs"]
            else f"{where}: no pair has a prior answer.")
    tests = [test_agreement(e), test_spearman(e), test_classes(e)]
    verdicts = ", ".join(f"test {i} {v}" for i, (_, v) in enumerate(tests, 1))
    return [head, *(t for t, _ in tests), f"Against the mechanism, on {where}: {verdicts}."]


def prior_sentences(summary: dict) -> list[str]:
    """The report's "Is it the language prior?" section, one paragraph per string."""
    p = summary.get("prior")
    run = (f"To test this on LLaVA-1.5-7B, run the same command on a GPU: {LLAVA_COMMAND} "
           f"(the prior pass is on by default; --no-prior skips it).")
    if p is None:
        return ["This run has no prior pass (no 'blank' records: it ran with --no-prior, or before "
                "the pass existed), so the three tests have no prior answer to compare with.", run]
    out = [f"The prior pass asked each item's question about a blank image (nothing but the "
           f"model's padding colour, its image mean, through the same pixel path): its answer is "
           f"the item's prior answer, its mean token entropy H_prior (mean {p['mean_h_prior']:.3f} "
           f"nats over {p['n_items']} items). The blank image is the same for every item, so the "
           f"prior answer depends on the question alone: {_n(p['n_questions'], 'question')} gave "
           f"{_n(p['n_prior_answers'], 'distinct prior answer')}. Answers are compared whole, as "
           f"the task's scorer reads them (for free text, VQA's normalisation), which is strict for "
           f"long answers."]
    for attack in sorted(p["by_attack"]):
        out += attack_sentences(attack, p["by_attack"][attack])
    if not p["by_attack"]:
        out.append("No perturbed records: nothing to compare with the prior.")
    for cat, sub in sorted((p.get("by_category") or {}).items()):
        for attack in sorted(sub["by_attack"]):
            top = strongest(sub["by_attack"][attack])
            if top and top[1]["agreement_difference"] is not None:
                e = top[1]
                out.append(f"Category {cat}, {attack} at its strongest level ({e['n_clusters']} "
                           f"items): agreement with the prior {e['agreement_clean']:.1%} clean, "
                           f"{e['agreement_perturbed']:.1%} perturbed "
                           f"({_ci(e['agreement_difference_ci95'], '+.1f', 100)} for the change, in points).")
    out += ["What these support: whether answers go to the prior and whether entropy goes with "
            "them, on this model. What they do not: the embedded model was trained with skewed "
            "answer frequencies so that it falls back on a prior when it cannot see, so a yes there "
            "shows that the tests find the mechanism where it was put, not that another model has "
            "it; and a prior answer that is also the right one cannot be told apart from seeing.", run]
    return out


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
    -class_difference nats, so if the control's whole mean Δ came from answers taking the prior
    at that rate, its agreement would change by expected_gain = mean Δ / class_difference.
    verdict compares the control's observed gain (its CI) with that: "less", "more", "as
    expected" (the CI holds it), or None (no rate: the default run shows no lower Δ there);
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
    rate = out["default"]["class_difference"]
    d, ci = out["control"]["mean_delta"], out["control"]["agreement_difference_ci95"]
    expected = d / rate if rate is not None and rate < 0 and d is not None else None
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
                   f"{r['mean_delta']:+.3f} nats ({_ci(r['ci95'])}) and agreement with the prior "
                   f"changes by {g * 100:+.1f} percentage points "
                   f"({_ci(r['agreement_difference_ci95'], '+.1f', 100)}){per}.")
    r = c["control"]
    if r["class_difference"] is not None:
        side = _side(r["class_difference_ci95"])
        out.append(f"Within the control, pairs whose answer is the prior's have mean Δ "
                   f"{r['delta_to_prior']:+.3f} nats and the others {r['delta_not_prior']:+.3f} (a "
                   f"difference of {r['class_difference']:+.3f}, {_ci(r['class_difference_ci95'])}): "
                   + ("its fall is larger where answers take the prior." if side < 0 else
                      "its fall is no larger where answers take the prior, so the fall does not "
                      "come from the prior."))
    if c["expected_gain"] is None:
        out.append("In the default run a pair that takes the prior answer has no lower Δ than one "
                   "that does not, so its rate predicts no gain from a fall in entropy: the "
                   "contrast has no yardstick here, and “confident” is not shown to mean “prior”.")
        return out
    words = {"less": "less than its fall in entropy would suggest: it finds confident answers that "
                     "are not the prior's, so here “confident” does not mean “prior”",
             "more": "more than its fall in entropy would suggest: its answers go to the prior "
                     "beyond what the entropy change accounts for",
             "as expected": "about as much as its fall in entropy would suggest (the CI holds it), "
                            "as if “confident” meant “prior”"}
    out.append(f"At the default run's rate (a pair taking the prior answer has Δ lower by "
               f"{-c['default']['class_difference']:.3f} nats), the control's mean Δ would come "
               f"with a gain of {c['expected_gain'] * 100:+.1f} points; it moves answers toward the "
               f"prior {words[c['verdict']] if c['verdict'] else 'by an amount whose CI is undefined'}.")
    if c["verdict_forced"]:
        out.append(f"That gain is more than the {c['max_gain'] * 100:.1f} points still possible "
                   f"(agreement cannot pass 100%), so at that rate “less” is forced by construction; "
                   f"the comparison within the control is the test that is not.")
    return out

