"""confidence_trap/tasks/scoring.py against hand-computed cases: POPE parsing and metrics, VQA accuracy and
normalization, and exact/contains agreeing with experiments/imagesets.is_correct."""
import pytest

from confidence_trap.tasks.scoring import (METRICS, pope_metrics, pope_metrics_by, pope_parse, score,
                              vqa_accuracy, vqa_normalize)


# ------------------------------------------------------------------------------------ POPE

@pytest.mark.parametrize("answer, parsed", [
    ("Yes", "yes"), ("yes", "yes"), ("Yes.", "yes"), ("Yes, there is a dog.", "yes"),
    ("no", "no"), ("No", "no"), ("No.", "no"), ("No, there is not.", "no"),
    ("There is no dog.", "no"), ("The dog is not in the image.", "no"),
    ("Yes. No dog is missing.", "yes"),          # only the first sentence counts
    ("  no  ", "no"),                            # generated text is stripped first
    # LLaVA's rule, kept as it is: case-sensitive words, and anything without one is yes
    ("NO", "yes"), ("Not really", "yes"), ("", "yes"), ("nothing", "yes"),
    ("no,", "no"),                               # commas are dropped before the split
])
def test_pope_parse_follows_llava_eval_pope(answer, parsed):
    assert pope_parse(answer) == parsed


def test_pope_parse_is_idempotent_on_labels():
    assert [pope_parse(pope_parse(a)) for a in ("Yes, a dog.", "No.")] == ["yes", "no"]


def test_pope_metrics_on_a_hand_made_confusion_matrix():
    # TP=3, FP=1, TN=4, FN=2 (n=10), with free-form answers on both sides
    cases = ([("Yes", "yes")] * 3 + [("Yes, there is.", "no")] + [("There is no cat.", "no")] * 4
             + [("No", "yes")] * 2)
    m = pope_metrics([a for a, _ in cases], [l for _, l in cases])
    assert (m["tp"], m["fp"], m["tn"], m["fn"], m["n"]) == (3, 1, 4, 2, 10)
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))   # 2/3
    assert m["yes_ratio"] == pytest.approx(4 / 10)                    # of the predictions


def test_pope_metrics_undefined_ratios_are_none():
    m = pope_metrics(["no", "no"], ["no", "no"])          # no yes predicted, no yes label
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None
    assert m["accuracy"] == 1.0 and m["yes_ratio"] == 0.0
    m = pope_metrics(["yes", "no"], ["no", "yes"])        # both defined and 0
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    empty = pope_metrics([], [])
    assert empty["n"] == 0 and all(empty[k] is None for k in
                                   ("accuracy", "precision", "recall", "f1", "yes_ratio"))


def test_pope_metrics_rejects_bad_labels_and_lengths():
    with pytest.raises(ValueError, match="yes' or 'no"):
        pope_metrics(["yes"], ["maybe"])
    with pytest.raises(ValueError):
        pope_metrics(["yes"], ["yes", "no"])
    assert pope_metrics(["yes"], [" YES "])["accuracy"] == 1.0    # labels: trimmed, any case


def test_pope_metrics_by_category():
    out = pope_metrics_by(["yes", "no", "yes", "yes"], ["yes", "no", "no", "yes"],
                          ["random", "random", "adversarial", "adversarial"])
    assert set(out) == {"random", "adversarial", "all"}
    assert out["random"]["accuracy"] == 1.0
    assert out["adversarial"]["accuracy"] == 0.5
    assert out["all"]["n"] == 4 and out["all"]["accuracy"] == 0.75


# ------------------------------------------------------------------------------------- VQA

def test_vqa_accuracy_three_of_ten_agreeing_is_point_nine():
    # 7 leave-one-out subsets keep all 3 matches -> 1 each; 3 drop one -> 2/3 each
    humans = ["dog"] * 3 + ["cat"] * 7
    assert vqa_accuracy("dog", humans) == pytest.approx((7 * 1 + 3 * 2 / 3) / 10) == 0.9


def test_vqa_accuracy_other_counts():
    assert vqa_accuracy("dog", ["dog"] + ["cat"] * 9) == pytest.approx(0.3)    # 9 * 1/3 / 10
    assert vqa_accuracy("dog", ["dog"] * 2 + ["cat"] * 8) == pytest.approx(0.6)  # (8*2/3+2/3)/10
    assert vqa_accuracy("dog", ["dog"] * 4 + ["cat"] * 6) == 1.0
    assert vqa_accuracy("dog", ["cat"] * 10) == 0.0
    assert vqa_accuracy("dog", ["dog"] * 10) == 1.0


@pytest.mark.parametrize("a, b", [
    ("Two", "2"), ("two", "2"), ("the dog.", "dog"), ("A dog", "dog"), ("dont", "don't"),
    ("Yes!", "yes"), ("red, white", "red white"), ("ten", "10"), ("none", "0"),
    ("Dog?", "dog"), ("  Dog\n", "dog"), ("1,000", "1000"),
])
def test_vqa_normalize_equal_pairs(a, b):
    assert vqa_normalize(a) == vqa_normalize(b)


@pytest.mark.parametrize("text, normal", [
    ("3.5", "3.5"), ("the dog.", "dog"), ("Two", "2"), ("black-and-white", "black and white"),
    ("hot - dog", "hot dog"), ("an apple", "apple"), ("isnt", "isn't"), ("eleven", "eleven"),
])
def test_vqa_normalize_values(text, normal):
    assert vqa_normalize(text) == normal


def test_vqa_accuracy_normalizes_both_sides():
    assert vqa_accuracy("Two.", ["2"] * 3 + ["3"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy("2", ["Two"] * 4 + ["three"] * 6) == 1.0
    assert vqa_accuracy("The dog.", ["dog", "a dog", "Dog"] + ["cat"] * 7) == pytest.approx(0.9)


def test_vqa_accuracy_needs_several_humans():
    with pytest.raises(ValueError, match="human answers"):
        vqa_accuracy("dog", ["dog"])


# ----------------------------------------------------------------------- score / dispatch

def test_score_dispatch():
    assert set(METRICS) == {"pope", "vqa", "exact", "contains"}
    assert score("pope", "Yes, there is a dog.", ["yes"]) == 1.0
    assert score("pope", "There is no dog.", ["yes"]) == 0.0
    assert score("pope", "no", "no") == 1.0                       # a lone string is one label
    assert score("vqa", "dog", ["dog"] * 3 + ["cat"] * 7) == pytest.approx(0.9)
    assert score("exact", "Red.", ["red"]) == 1.0
    assert score("contains", "It is a red circle", ["red"]) == 1.0
    assert score("vqa", "dog", []) is None and score("pope", "yes", None) is None
    with pytest.raises(ValueError, match="unknown metric"):
        score("bleu", "a", ["a"])
    with pytest.raises(ValueError):
        score("pope", "yes", ["yes", "no"])


@pytest.mark.parametrize("answer, refs", [
    ("Red.", ("red",)), ("red circle", ("red",)), ("It is red.", ("red",)), ("reddish", ("red",)),
    ("A RED square", ("red square",)), ("two", ("two", "2")), (" 2 ", ("2",)), ("blue", ("red",)),
    ("a red, and blue", ("red and blue",)), ("", ("red",)), ("red.", ("red.",)),
])
def test_exact_and_contains_as_the_manifests_define_them(answer, refs):
    """exact: equal after lower-casing and a final period; contains: a reference as whole words.
    A record of a manifest holds True/False, as it always has."""
    import re

    def words(text):  # punctuation to spaces, runs of spaces to one, padded
        return " " + " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split()) + " "

    exact = any(answer.strip().lower().rstrip(".").strip() == r.strip().lower() for r in refs)
    contains = any(words(r) in words(answer) for r in refs)
    assert score("exact", answer, refs) is exact and score("contains", answer, refs) is contains


# ------------------------------------------------------------------- closed answers

@pytest.mark.parametrize("answer, read", [
    ("Yes", "yes"), ("yes.", "yes"), ("YES", "yes"), ("Yes, there is a dog.", "yes"), ("No", "no"),
    ("There is no dog.", "no"), ("red circle", None), ("", None), ("NO", None), ("Not really", None),
])
def test_pope_answer_reads_only_a_stated_yes_or_no(answer, read):
    from confidence_trap.tasks.scoring import pope_answer
    assert pope_answer(answer) == read
    assert read is None or read == pope_parse(answer)  # one parser: where it reads, it agrees


def _pope(answer, attack="none", eps=0.0, category="random", label="yes", image="a"):
    return dict(image=image, question="Is there a dog?", prompt="p", attack=attack, epsilon=eps, trial=0,
                seed=0, answer=answer, token_entropies=[0.1], mean_entropy=0.1, n_tokens=1, n_nonfinite=0,
                references=[label], correct=score("pope", answer, [label]), metric="pope", category=category)


def test_valid_rate_per_level_and_category_and_the_report_warns_below_80_percent():
    from confidence_trap.analysis.report import render_report
    from confidence_trap.analysis.summary import summarize
    recs = []
    for i, (clean, pert, cat) in enumerate([("Yes", "red circle", "random"), ("No", "red circle", "random"),
                                             ("yes", "No", "popular"), ("no", "Yes", "popular")]):
        recs += [_pope(clean, category=cat, image=f"im{i}"), _pope(pert, "proxy", 0.3, cat, image=f"im{i}")]
    s = summarize(recs, seed=0, n_boot=20)
    assert s["clean"]["valid_rate"] == 1.0 and s["by_epsilon"]["0.3"]["valid_rate"] == 0.5
    assert s["by_category"]["random"]["by_attack"]["proxy"]["by_epsilon"]["0.3"]["valid_rate"] == 0.0
    assert s["by_category"]["popular"]["by_attack"]["proxy"]["by_epsilon"]["0.3"]["valid_rate"] == 1.0
    report = render_report(s, {"model": "tiny"})
    warning = report[report.index("WARNING"):report.index("\n\n", report.index("WARNING"))]
    assert "not meaningful" in warning and "proxy at 0.3 (≈77/255) (50.0%)" in warning.replace("\n", " ")
    assert "category random, proxy at 0.3 (≈77/255) (0.0%)" in warning.replace("\n", " ")
    assert "popular" not in warning and "clean (" not in warning


def test_no_valid_rate_without_a_closed_answer_metric():
    from confidence_trap.analysis.report import render_report
    from confidence_trap.analysis.summary import summarize
    recs = [dict(_pope("red circle", image=f"im{i}", attack=a, eps=e), metric="exact", correct=None)
            for i in range(3) for a, e in (("none", 0.0), ("proxy", 0.3))]
    s = summarize(recs, seed=0, n_boot=20)
    assert "valid_rate" not in s["clean"] and "valid_rate" not in s["by_epsilon"]["0.3"]
    assert "WARNING" not in render_report(s, {})
