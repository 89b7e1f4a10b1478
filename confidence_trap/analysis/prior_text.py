"""The language-prior tests in words, from summary.json alone: for the report, README and paper.

    from confidence_trap.analysis.prior_text import prior_sentences, attack_sentences, questions_sentence
    prior_sentences(summary)                   # list[str]: one paragraph each

prior_sentences reads summary["prior"] (confidence_trap/analysis/prior.py) at each attack's strongest level:
the three tests with sizes and CIs, which way each goes, the results forced by construction
named as such, and the command that makes the same test on LLaVA-1.5-7B. Each test's verdict
against the mechanism is one of VERDICT_WORDS: "as predicted", "in part", "not as predicted",
or "cannot tell" where its interval holds 0 (a null result is said as null, never read as a
finding). The prior lives at the question, so the sentences say how many questions the run asks
and what a test over that many can show. Nothing here computes a statistic.
"""
from __future__ import annotations

import math

from confidence_trap.analysis.levels import level_phrase, sorted_levels
from confidence_trap.analysis.tables import ci as ci_cell
from confidence_trap.analysis.tables import signed

LLAVA_COMMAND = "python experiments/entropy_analysis.py --config configs/study.yaml"
P_SHUFFLED = 0.05
YES, PART, NO, CANNOT = "as predicted", "in part", "not as predicted", "cannot tell"
VERDICT_WORDS = (YES, PART, NO, CANNOT)
HOLDS_ZERO = "the run cannot tell (its CI holds 0)"


def ci_text(ci, spec=None, scale=1.0) -> str:
    """"95% CI [lo, hi]": nats as the tables write them (spec None), or in a format spec."""
    if ci is None:
        return "no CI: too few images and questions"
    if spec is None:
        return f"95% CI {ci_cell(ci)}"
    return f"95% CI [{ci[0] * scale:{spec}}, {ci[1] * scale:{spec}}]"


def _n(k: int, word: str, plural: str | None = None) -> str:
    return f"{k} {word if k == 1 else plural or word + 's'}"


def side_of(ci) -> int:
    """+1 when the CI lies above 0, -1 below, 0 when it holds 0 or is missing."""
    return 0 if ci is None else (ci[0] > 0) - (ci[1] < 0)


def strongest(section: dict) -> tuple[str, dict] | None:
    """(key, entry) of an attack's strongest level in a by_attack section."""
    keys = sorted_levels(section.get("by_epsilon") or {})
    return (keys[-1], section["by_epsilon"][keys[-1]]) if keys else None


def questions_sentence(n_questions: int) -> str:
    """How many distinct questions the run asks, and what a question-level test over that many
    can show."""
    q = n_questions
    orderings = math.factorial(q)
    if q < 2:
        return ("This run asks one question, so it has one prior answer: H_prior cannot vary, "
                "test 2 has nothing to permute, and no test here can separate the prior from the question.")
    reach = (f"no permutation of them can reach p < 0.05 (the smallest p is 1/{orderings})" if orderings < 20
             else f"a permutation of them can reach p < 0.05 ({orderings:,} orderings)")
    return (f"The prior depends on the question alone, so this run's {_n(q, 'distinct question')} are "
            f"its independent prior answers: the tests permute or draw questions, {reach}, and an "
            f"interval over {q} questions shows only what most of them share.")


def _half(h: dict, what: str) -> str:
    if not h["n_clusters"]:
        return f"{what} no item (n = 0), so that half is empty"
    return (f"{what} {h['n_clusters']} items ({h['n_pairs']} pairs) with mean Δ "
            f"{signed(h['mean_delta'])} nats ({ci_text(h['ci95'])})")


def _leave_one_out(e: dict, side: int) -> tuple[str, bool]:
    """(a clause on the question whose removal moves test 1 most, whether the sign survives
    every removal)."""
    loo = [x for x in e.get("leave_one_out") or [] if x["agreement_difference"] is not None]
    side = side or (e["agreement_difference"] > 0) - (e["agreement_difference"] < 0)  # the point's way
    if len(loo) < 2 or side == 0:
        return "", True
    worst = min(loo, key=lambda x: side * x["agreement_difference"])
    rest = [x["agreement_difference"] * 100 for x in loo if x is not worst]
    holds = all(side * x["agreement_difference"] > 0 for x in loo)
    return (f" Left out one at a time, the questions give {min(rest):+.1f} to {max(rest):+.1f} points, "
            f"except \u201c{worst['question']}\u201d: without it, {worst['agreement_difference'] * 100:+.1f}"
            + ("." if holds else ", so the move rests on that one question.")), holds


def test_agreement(e: dict) -> tuple[str, str]:
    """Test 1 in words, and its verdict: YES when the CI lies above 0 and no single question
    carries it, PART when one does, CANNOT when the CI holds 0."""
    ac, ap, d = e["agreement_clean"], e["agreement_perturbed"], e["agreement_difference"]
    if d is None:
        return "(1) Answers and the prior: no pair has both a clean and a prior answer.", CANNOT
    side = side_of(e["agreement_difference_ci95"])
    words = {1: "perturbed answers move toward the prior", -1: "perturbed answers move away from the prior, "
             "against the mechanism", 0: f"whether answers move to the prior, {HOLDS_ZERO}"}[side]
    s = (f"(1) Answers move to the prior? {ac:.1%} of the clean answers and {ap:.1%} of the "
         f"perturbed answers equal their item's prior answer, a change of {d * 100:+.1f} percentage "
         f"points ({ci_text(e['agreement_difference_ci95'], '+.1f', 100)}, images and questions drawn): {words}.")
    clause, holds = _leave_one_out(e, side)
    s += clause
    if ac == 1.0:
        s += (" Every clean answer already equals its prior answer, so agreement cannot rise: "
              "that it does not is forced by construction, not evidence against the mechanism.")
    elif ac == 0.0:
        s += (" No clean answer equals its prior answer, so agreement can only rise or stay: a "
              "fall is ruled out by construction.")
    return s, {1: YES if holds else PART, -1: NO, 0: CANNOT}[side]


def test_spearman(e: dict) -> tuple[str, str]:
    """Test 2 in words, and its verdict: YES when ρ beats the question-level permutation and the
    halves fall and rise as the story says, PART when only ρ does, NO when ρ's CI lies below 0,
    CANNOT otherwise (ρ not shown beyond the shared term)."""
    rho = e["spearman"]
    beats = False
    if rho is None:
        s = (f"(2) The prior's entropy and the sign of Δ: Spearman's ρ is undefined over these "
             f"{e['n_clusters']} items (Δ or H_prior − H_clean is the same for all, or fewer than 2 items).")
    else:
        p = e["spearman_shuffled_p"]
        beats = side_of(e["spearman_ci95"]) > 0 and p is not None and p < P_SHUFFLED
        s = (f"(2) The prior's entropy and the sign of Δ: over {e['n_clusters']} items, Spearman's "
             f"ρ between Δ and H_prior − H_clean is {rho:.2f} ({ci_text(e['spearman_ci95'], '.2f')}); the "
             f"mechanism predicts ρ > 0. Part of any ρ is forced by construction: both subtract "
             f"H_clean. With H_prior permuted across the {_n(e.get('n_questions', 0), 'question')} "
             f"({e.get('spearman_permutations', 0):,} orderings), ρ is {e['spearman_shuffled']:.2f} on "
             f"average (one-sided p = {p:.3f} that the observed ρ is no larger). So H_prior "
             + ("predicts Δ beyond that shared term." if beats else
                "is not shown to predict Δ beyond that shared term: the run cannot tell."))
        if e["spearman_shuffled"] is not None and abs(e["spearman_shuffled"] - rho) < 1e-9:
            s += (" H_prior is the same for every question here, so ρ is the shared term alone, "
                  "forced by construction.")
    below, above = e["halves"]["prior_below_clean"], e["halves"]["prior_not_below_clean"]
    falls, rises = side_of(below["ci95"]) < 0, side_of(above["ci95"]) > 0
    s += (f" Split by the prior's entropy, {_half(below, 'H_prior < H_clean holds')}; "
          f"{_half(above, 'H_prior ≥ H_clean holds')}. The story predicts a fall in the first half "
          f"and a rise in the second: entropy {'falls' if falls else 'is not shown to fall'} in the first "
          f"and {'rises' if rises else 'is not shown to rise'} in the second. The split selects by "
          f"H_clean, which Δ subtracts, so it carries the same shared term.")
    if beats:  # the halves carry the shared term too: alone they are not evidence
        return s, YES if falls and rises else PART
    return s, NO if rho is not None and side_of(e["spearman_ci95"]) < 0 else CANNOT


def test_classes(e: dict) -> tuple[str, str]:
    """Test 3 in words, and its verdict: within questions, YES when entropy is lower where the
    answer is the prior's and falls there, PART when only lower, CANNOT when the CI holds 0."""
    c = e["classes"]
    to, other, moved = c["to_prior"], c["not_prior"], c["moved_to_prior"]
    if not to["n_pairs"] or not other["n_pairs"] or e["class_difference"] is None:
        which = ("no perturbed answer equals" if not to["n_pairs"] else "every perturbed answer equals"
                 if not other["n_pairs"] else "no question has answers in both classes: each answer equals")
        return (f"(3) Entropy where the answer becomes the prior: {which} its prior answer, so there "
                f"is nothing to compare: the test cannot be made, by construction."), CANNOT
    side, falls = side_of(e["class_difference_ci95"]), side_of(to["ci95"]) < 0
    words = {-1: ("entropy is lower where the answer is the prior's, and falls there, as the mechanism "
                  "predicts" if falls else "entropy is lower where the answer is the prior's, but does not "
                  "fall there: the mechanism's direction, not its fall"),
             1: "entropy is higher where the answer is the prior's, against the mechanism",
             0: f"whether entropy is lower where the answer is the prior's, {HOLDS_ZERO}"}[side]
    s = (f"(3) Entropy falls where the answer becomes the prior? Pairs whose perturbed answer equals "
         f"the prior answer ({to['n_pairs']} pairs, {to['n_clusters']} items) have mean Δ "
         f"{signed(to['mean_delta'])} nats ({ci_text(to['ci95'])}), the others ({other['n_pairs']} pairs) "
         f"{signed(other['mean_delta'])}; compared within each question (the prior depends on it), then "
         f"pooled, they differ by {signed(e['class_difference'])} nats ({ci_text(e['class_difference_ci95'])}; "
         f"across questions {signed(e['class_difference_across'])}), so {words}.")
    if moved["n_pairs"]:
        s += (f" The {moved['n_pairs']} of them whose clean answer was not the prior's have mean Δ "
              f"{signed(moved['mean_delta'])} ({ci_text(moved['ci95'])}).")
    else:
        s += " None of them moved there: every one already had the prior answer when clean."
    return s, {-1: YES if falls else PART, 1: NO, 0: CANNOT}[side]


def attack_sentences(attack: str, section: dict) -> list[str]:
    """The three tests at an attack's strongest level, and their verdicts: [head, test 1, test 2,
    test 3, the verdicts]."""
    top = strongest(section)
    if top is None:
        return []
    key, e = top
    phrase = level_phrase(key, section["grouped_by"])
    where = f"{attack} at {phrase}" if phrase else attack
    trend = {1: "mean entropy rises", -1: "mean entropy falls",
             0: "the run cannot tell whether mean entropy changes"}[side_of(e["ci95"])]
    head = (f"{where}, {e['n_pairs']} pairs over {e['n_clusters']} items and "
            f"{_n(e.get('n_questions', 0), 'question')}: {trend} "
            f"(mean Δ {signed(e['mean_delta'])} nats, {ci_text(e['ci95'])})." if e["n_pairs"]
            else f"{where}: no pair has a prior answer.")
    tests = [test_agreement(e), test_spearman(e), test_classes(e)]
    verdicts = ", ".join(f"test {i} {v}" for i, (_, v) in enumerate(tests, 1))
    return [head, *(t for t, _ in tests), f"Against the mechanism, on {where}: {verdicts}."]


def _categories(p: dict) -> list[str]:
    out = []
    for cat, sub in sorted((p.get("by_category") or {}).items()):
        for attack in sorted(sub["by_attack"]):
            top = strongest(sub["by_attack"][attack])
            if top and top[1]["agreement_difference"] is not None:
                e = top[1]
                out.append(f"Category {cat}, {attack} at its strongest level ({e['n_clusters']} "
                           f"items): agreement with the prior {e['agreement_clean']:.1%} clean, "
                           f"{e['agreement_perturbed']:.1%} perturbed "
                           f"({ci_text(e['agreement_difference_ci95'], '+.1f', 100)} for the change, in points).")
    return out


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
           f"long answers. " + questions_sentence(p["n_questions"])]
    for attack in sorted(p["by_attack"]):
        out += attack_sentences(attack, p["by_attack"][attack])
    if not p["by_attack"]:
        out.append("No perturbed records: nothing to compare with the prior.")
    out += _categories(p)
    out += ["What these support: whether answers go to the prior and whether entropy goes with "
            "them, on this model. What they do not: the embedded model was trained with skewed "
            "answer frequencies so that it falls back on a prior when it cannot see, so a yes there "
            "shows that the tests find the mechanism where it was put, not that another model has "
            "it; and a prior answer that is also the right one cannot be told apart from seeing.", run]
    return out
