"""The language-prior tests (confidence_trap/analysis/prior.py, prior_text.py, figures_prior.py) on synthetic
records whose outcome is known by construction.

    python -m pytest tests/test_prior.py -q
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from matplotlib.text import Text

from confidence_trap.analysis.figures import FIGURE_NAMES
from confidence_trap.analysis.figures_prior import FIGURE_6, figure_prior
from confidence_trap.analysis.plot import MIN_PT, PANEL_W, TEXT_WIDTH_IN, save
from confidence_trap.analysis.prior import weighted_spearman
from confidence_trap.analysis.prior_contrast import contrast_sentences, controls_contrast
from confidence_trap.analysis.prior_text import prior_sentences
from confidence_trap.analysis.report import render_report
from confidence_trap.tasks.scoring import normalize
from confidence_trap.analysis.summary import summarize

N_BOOT = 200  # enough for the CIs' signs; keeps the file fast
QUESTIONS = ("What color is the circle?", "Which shape is red?")


def rec(image, h, answer, attack="none", eps=0.0, trial=0, question=QUESTIONS[0], **extra):
    r = dict(image=image, question=question, prompt=f"USER: {question}", attack=attack,
             epsilon=float(eps), trial=trial, seed=trial, answer=answer, token_entropies=[h, h],
             mean_entropy=float(h), n_tokens=2, n_nonfinite=0)
    r.update(extra)
    return r


def run(n=12, trials=3, to_prior=1.0, seed=0, attack="proxy", eps=0.3, prior=True, **extra):
    """n items over two questions. The blank image answers "Blue." with H_prior = 0.1; the clean
    answer is "red" at H_clean ~ U(0.5, 1.5); a share `to_prior` of the perturbed answers is
    "blue" at H = H_prior + noise (the prior took over), the rest "red" at H_clean + 0.3."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        q = QUESTIONS[i % 2]
        hc = rng.uniform(0.5, 1.5)
        out.append(rec(f"im{i}", hc, "red", question=q, **extra))
        if prior:
            out.append(rec(f"im{i}", 0.1, "Blue.", "blank", question=q, **extra))
        out.append(rec(f"im{i}", hc, "red", "repeat", question=q, **extra))
        for t in range(trials):
            took = rng.random() < to_prior
            h = 0.1 + 0.05 * rng.random() if took else hc + 0.3
            out.append(rec(f"im{i}", h, "blue" if took else "red", attack, eps, t, question=q, **extra))
    return out


def entry(records, attack="proxy", key="0.3"):
    return summarize(records, n_boot=N_BOOT)["prior"]["by_attack"][attack]["by_epsilon"][key]


def test_every_perturbed_answer_is_the_prior():
    e = entry(run(to_prior=1.0))
    assert e["agreement_clean"] == 0.0 and e["agreement_perturbed"] == 1.0
    assert e["agreement_difference"] == 1.0 and e["agreement_difference_ci95"] == [1.0, 1.0]
    c = e["classes"]
    assert c["to_prior"]["n_pairs"] == 36 and c["to_prior"]["mean_delta"] < 0
    assert c["to_prior"]["ci95"][1] < 0
    assert c["not_prior"] == {"n_clusters": 0, "n_pairs": 0, "mean_delta": None, "ci95": None}
    assert c["moved_to_prior"]["n_pairs"] == 36  # no clean answer was the prior's
    assert e["class_difference"] is None and e["class_difference_ci95"] is None
    # H_prior = 0.1 < every H_clean: the other half is empty, by construction
    assert e["halves"]["prior_below_clean"]["n_clusters"] == 12
    assert e["halves"]["prior_not_below_clean"]["n_pairs"] == 0
    assert e["halves"]["prior_not_below_clean"]["mean_delta"] is None
    text = " ".join(prior_sentences(summarize(run(to_prior=1.0), n_boot=N_BOOT)))
    assert "every perturbed answer equals its prior answer" in text and "n = 0" in text
    assert "agreement can only rise or stay" in text


def test_no_perturbed_answer_is_the_prior():
    e = entry(run(to_prior=0.0))
    assert e["agreement_clean"] == 0.0 and e["agreement_perturbed"] == 0.0
    assert e["agreement_difference"] == 0.0
    c = e["classes"]
    assert c["to_prior"]["n_pairs"] == 0 and c["to_prior"]["mean_delta"] is None
    assert c["not_prior"]["n_pairs"] == 36 and c["not_prior"]["mean_delta"] == pytest.approx(0.3)
    text = " ".join(prior_sentences(summarize(run(to_prior=0.0), n_boot=N_BOOT)))
    assert "no perturbed answer equals its prior answer" in text


def test_a_mix_goes_the_way_it_must():
    e = entry(run(n=30, to_prior=0.5))
    assert 0.3 < e["agreement_perturbed"] < 0.7 and e["agreement_difference_ci95"][0] > 0
    assert e["class_difference"] < 0 and e["class_difference_ci95"][1] < 0
    text = " ".join(prior_sentences(summarize(run(n=30, to_prior=0.5), n_boot=N_BOOT)))
    assert "perturbed answers move toward the prior" in text and "test 1 as predicted" in text
    assert "entropy is lower where the answer is the prior's, and falls there" in text and "test 3 as predicted" in text


def test_lower_but_rising_is_only_in_part():
    """Pairs that take the prior answer rise by 0.1 nats, the others by 0.3: lower, not a fall."""
    records = run(n=30, to_prior=0.5)
    clean = {r["image"]: r["mean_entropy"] for r in records if r["attack"] == "none"}
    for r in records:
        if r["attack"] == "proxy" and r["answer"] == "blue":
            r["mean_entropy"] = clean[r["image"]] + 0.1
    e = entry(records)
    assert e["classes"]["to_prior"]["ci95"][0] > 0 and e["class_difference_ci95"][1] < 0
    text = " ".join(prior_sentences(summarize(records, n_boot=N_BOOT)))
    assert "but does not fall there" in text and "test 3 in part" in text


@pytest.mark.parametrize("sign", [1, -1])
def test_spearman_sign_on_constructed_data(sign):
    """Δ = sign * (H_prior - H_clean) exactly; H_prior varies by item (one question each)."""
    rng = np.random.default_rng(3)
    records = []
    for i in range(25):
        hc, hp = rng.uniform(0.8, 1.5), rng.uniform(0.2, 1.6)  # every entropy stays >= 0
        q = f"q{i}?"
        records += [rec(f"im{i}", hc, "a", question=q), rec(f"im{i}", hp, "b", "blank", question=q),
                    rec(f"im{i}", hc + sign * (hp - hc), "a", "proxy", 0.3, question=q)]
    e = entry(records)
    assert e["spearman"] == pytest.approx(sign * 1.0)
    assert (e["spearman_ci95"][0] > 0) if sign > 0 else (e["spearman_ci95"][1] < 0)
    below, above = e["halves"]["prior_below_clean"], e["halves"]["prior_not_below_clean"]
    assert sign * below["mean_delta"] < 0 < sign * above["mean_delta"]
    assert below["n_clusters"] + above["n_clusters"] == 25


def test_one_prior_entropy_makes_rho_the_shared_term_alone():
    """With H_prior the same for every item, shuffling it changes nothing: ρ is forced."""
    e = entry(run(n=20, to_prior=0.5))
    assert e["spearman_shuffled"] == pytest.approx(e["spearman"]) and e["spearman_shuffled_p"] == 1.0
    assert "forced by construction" in " ".join(prior_sentences(summarize(run(n=20, to_prior=0.5),
                                                                          n_boot=N_BOOT)))


def test_absent_blank_gives_none_and_the_report_says_so(tmp_path):
    s = summarize(run(prior=False), n_boot=N_BOOT)
    assert s["prior"] is None
    assert "has no prior pass" in render_report(s, {"model": "tiny"})
    assert figure_prior(s).axes[0].texts[0].get_text().startswith("no prior pass")


def test_blank_and_repeat_are_not_attacks():
    s = summarize(run(), n_boot=N_BOOT)
    assert list(s["by_attack"]) == ["proxy"] and "0.3" in s["by_epsilon"]
    assert list(s["prior"]["by_attack"]) == ["proxy"] and "blank" not in s["token_profile"]["by_attack"]
    e, b = s["prior"]["by_attack"]["proxy"]["by_epsilon"]["0.3"], s["by_epsilon"]["0.3"]
    assert (e["mean_delta"], e["ci95"]) == (b["mean_delta"], b["ci95"])  # one cluster bootstrap


def test_per_category_split():
    records = run(n=10, to_prior=1.0, category="one-word") + [
        {**r, "image": "o" + r["image"], "category": "open-ended"} for r in run(n=10, to_prior=0.0)]
    p = summarize(records, n_boot=N_BOOT)["prior"]
    assert sorted(p["by_category"]) == ["one-word", "open-ended"]
    one = p["by_category"]["one-word"]["by_attack"]["proxy"]["by_epsilon"]["0.3"]
    other = p["by_category"]["open-ended"]["by_attack"]["proxy"]["by_epsilon"]["0.3"]
    assert one["agreement_perturbed"] == 1.0 and other["agreement_perturbed"] == 0.0
    assert p["by_attack"]["proxy"]["by_epsilon"]["0.3"]["agreement_perturbed"] == 0.5
    assert p["by_category"]["one-word"]["n_items"] == 10


def test_answers_compare_after_the_tasks_normalization():
    assert normalize("Yes.") == normalize("yes") == "yes"
    assert normalize("Two") == normalize("2")                      # VQA: number words
    assert normalize("There is no dog.", "pope") == normalize("No", "pope") == "no"
    assert normalize("Two", "exact") != normalize("2", "exact")    # exact match keeps words
    records = [rec("im0", 1.0, "no"), rec("im0", 0.2, "No.", "blank"),
               rec("im0", 0.5, "Yes, there is.", "proxy", 0.3, metric="pope"),
               rec("im1", 1.0, "no", metric="pope"), rec("im1", 0.2, "There is no cat.", "blank", metric="pope"),
               rec("im1", 0.5, "No", "proxy", 0.3, metric="pope")]
    e = entry(records)
    assert e["agreement_clean"] == 1.0 and e["agreement_perturbed"] == 0.5


def test_weighted_spearman_is_spearman_of_the_resample():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 30).astype(float), rng.random(30)  # ties in x
    counts = rng.integers(0, 3, (4, 30)).astype(float)
    got = weighted_spearman(x, y, counts)
    for row, value in zip(counts, got):
        idx = np.repeat(np.arange(30), row.astype(int))
        assert value == pytest.approx(st.spearmanr(x[idx], y[idx]).statistic)


def independent(records):
    """agreement_clean, agreement_perturbed and ρ from the records alone, written apart from
    confidence_trap/analysis/prior.py (answers here differ only in case and a final period)."""
    key = lambda a: a.strip().lower().rstrip(".")  # noqa: E731
    clean = {(r["image"], r["question"]): r for r in records if r["attack"] == "none"}
    blank = {(r["image"], r["question"]): r for r in records if r["attack"] == "blank"}
    pert = [r for r in records if r["attack"] == "proxy"]
    units = sorted({(r["image"], r["question"]) for r in pert})
    ac = np.mean([key(clean[u]["answer"]) == key(blank[u]["answer"]) for u in units])
    ap = np.mean([key(r["answer"]) == key(blank[(r["image"], r["question"])]["answer"]) for r in pert])
    d = [np.mean([r["mean_entropy"] - clean[u]["mean_entropy"] for r in pert
                  if (r["image"], r["question"]) == u]) for u in units]
    x = [blank[u]["mean_entropy"] - clean[u]["mean_entropy"] for u in units]
    return ac, ap, st.spearmanr(x, d).statistic


def test_an_independent_recomputation_matches():
    rng = np.random.default_rng(5)
    records = []
    for i in range(40):
        q = f"q{i % 7}?"
        hc, hp = rng.uniform(0.2, 2.0), rng.uniform(0.0, 2.0)
        prior, other = ("yes", "no") if i % 3 else ("red", "blue")
        records += [rec(f"im{i}", hc, [prior.upper(), other][i % 2], question=q),
                    rec(f"im{i}", hp, prior + ".", "blank", question=q)]
        records += [rec(f"im{i}", rng.uniform(0, 2), prior if rng.random() < 0.6 else other,
                        "proxy", 0.3, t, question=q) for t in range(1 + i % 4)]  # unequal trials
    e = entry(records)
    ac, ap, rho = independent(records)
    assert e["agreement_clean"] == pytest.approx(ac) and e["agreement_perturbed"] == pytest.approx(ap)
    assert e["spearman"] == pytest.approx(rho)


def test_figure_6_renders_at_print_size(tmp_path):
    records = run(n=20, to_prior=0.5) + [{**r, "attack": "corruption:blur", "epsilon": None,
                                          "severity": 3} for r in run(n=20, to_prior=0.5)
                                         if r["attack"] == "proxy"]
    s = summarize(records, n_boot=N_BOOT)
    fig = figure_prior(s)
    assert fig.get_figwidth() == pytest.approx(2 * PANEL_W) and 2 * PANEL_W <= TEXT_WIDTH_IN
    assert fig._suptitle is None
    fig.canvas.draw()
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert texts and min(t.get_fontsize() for t in texts) >= MIN_PT
    words = " ".join(t.get_text() for t in texts)
    assert "one item: its mean Δ over the trials" in words and "ρ = " in words
    assert figure_prior(summarize(run(n=20), n_boot=N_BOOT)).get_figwidth() == pytest.approx(PANEL_W)
    assert FIGURE_6 in FIGURE_NAMES  # render_figures writes it with the others
    data = open(save(fig, str(tmp_path / FIGURE_6)), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_controls_contrast_says_less_when_the_control_lowers_entropy_elsewhere():
    default = summarize(run(n=30, to_prior=0.5), n_boot=N_BOOT)
    # the control: every answer stays the clean one while entropy falls to 0.2 nats
    control = [r if r["attack"] != "proxy" else {**r, "attack": "pgd:entropy_min", "answer": "red",
                                                 "mean_entropy": 0.2}
               for r in run(n=30, to_prior=0.0)]
    control = summarize(control, n_boot=N_BOOT)
    c = controls_contrast(default, control)
    assert c["control"]["agreement_difference"] == 0.0 and c["control"]["mean_delta"] < 0
    assert 0 < c["expected_gain"] < c["max_gain"] == 1.0
    assert c["verdict"] == "less" and not c["verdict_forced"]
    assert "less than its fall in entropy would suggest" in " ".join(contrast_sentences(default, control))
    # half the clean answers already the prior's: the expected gain no longer fits, 'less' is forced
    control["prior"]["by_attack"]["pgd:entropy_min"]["by_epsilon"]["0.3"]["agreement_clean"] = 0.5
    forced = controls_contrast(default, control)
    assert forced["expected_gain"] > forced["max_gain"] == 0.5 and forced["verdict_forced"]
    assert "forced by construction" in " ".join(contrast_sentences(default, control))
    assert controls_contrast(default, summarize(run(prior=False), n_boot=N_BOOT)) is None


# --- the question is the prior's unit ---------------------------------------------------------

def by_question(n_questions=6, per_question=8, took=lambda q, i, t: False, delta=lambda q, took: 0.1,
                h_prior=lambda q: 0.1, h_clean=lambda q, i: 1.0, trials=2):
    """Items over several questions: the blank answers "blue" with H_prior(q); the clean answer
    is "red"; a perturbed answer is "blue" where took(q, i, t), with Δ = delta(q, took)."""
    out = []
    for q in range(n_questions):
        question = f"Question {q}?"
        for i in range(per_question):
            img, hc = f"q{q}im{i}", h_clean(q, i)
            out += [rec(img, hc, "red", question=question), rec(img, h_prior(q), "blue", "blank", question=question),
                    rec(img, hc, "red", "repeat", question=question)]
            for t in range(trials):
                tk = took(q, i, t)
                out.append(rec(img, hc + delta(q, tk), "blue" if tk else "red", "proxy", 0.3, t, question=question))
    return out


def test_one_question_carrying_test_1_is_not_a_move_to_the_prior():
    """Only question 0's answers go to the prior (0% -> 100%); the others never do. Items alone
    would call it a move; drawn by question, the interval reaches 0, and with question 0 left out
    the change is exactly 0: the text says so and the verdict is not "as predicted"."""
    records = by_question(took=lambda q, i, t: q == 0)
    s = summarize(records, n_boot=N_BOOT)
    e = s["prior"]["by_attack"]["proxy"]["by_epsilon"]["0.3"]
    assert e["n_questions"] == 6 and e["agreement_difference"] == pytest.approx(1 / 6)
    assert e["agreement_difference_ci95"][0] <= 0  # a draw without question 0 has no move at all
    loo = {x["question"]: x["agreement_difference"] for x in e["leave_one_out"]}
    assert loo["Question 0?"] == 0.0 and all(v == pytest.approx(1 / 5) for k, v in loo.items() if k != "Question 0?")
    text = " ".join(prior_sentences(s))
    assert "without it, +0.0" in text and "test 1 as predicted" not in text
    assert "the run cannot tell" in text


def test_test_3_compares_within_questions():
    """Question 0's answers half go to the prior and all fall by 0.3; an eighth of the others' go
    to the prior and all rise by 0.2. Across questions the prior's pairs look lower (most come from
    question 0); within each question the two classes are the same: no difference."""
    took = lambda q, i, t: (i + t) % 2 == 0 if q == 0 else (i + t) % 8 == 0  # noqa: E731
    e = entry(by_question(took=took, delta=lambda q, tk: -0.3 if q == 0 else 0.2))
    assert e["class_difference_across"] < -0.15
    assert e["class_difference"] == pytest.approx(0.0, abs=1e-12)
    assert e["class_difference_ci95"][0] <= 0 <= e["class_difference_ci95"][1]
    rows = {r["question"]: r for r in e["by_question"]}
    assert rows["Question 0?"]["delta_to_prior"] == pytest.approx(-0.3) == rows["Question 0?"]["delta_not_prior"]
    assert rows["Question 1?"]["n_to_prior"] + rows["Question 1?"]["n_not_prior"] == rows["Question 1?"]["n_pairs"] == 16


def test_the_shuffle_permutes_questions_not_items():
    """H_prior takes one value per question; Δ follows -H_clean alone, so ρ > 0 comes from the
    shared term. Permuting H_prior across questions keeps it: p is large. Where Δ follows
    H_prior itself, the permutation finds it."""
    h_prior = lambda q: 0.2 * q  # noqa: E731
    h_clean = lambda q, i: 0.5 + 0.1 * ((7 * q + 3 * i) % 11)  # noqa: E731
    shared = by_question(n_questions=8, h_prior=h_prior, h_clean=h_clean, trials=1,
                         delta=lambda q, tk: 0.0)
    for r in shared:  # Δ = 1 - H_clean: the shared term, nothing of H_prior
        if r["attack"] == "proxy":
            r["mean_entropy"] = 1.0
    e = entry(shared)
    assert e["spearman"] > 0.5 and e["spearman_permutations"] == N_BOOT and e["spearman_shuffled_p"] > 0.2
    real = by_question(n_questions=8, h_prior=h_prior, h_clean=h_clean, trials=1, delta=lambda q, tk: 0.0)
    for r in real:  # Δ = H_prior - H_clean + 0.5 H_prior: the prior's entropy itself moves Δ
        if r["attack"] == "proxy":
            q = int(r["question"].split()[1][:-1])
            r["mean_entropy"] = 1.5 * h_prior(q)
    assert entry(real)["spearman_shuffled_p"] < 0.05


def test_few_questions_give_an_exact_permutation_test():
    e = entry(by_question(n_questions=3, h_prior=lambda q: 0.1 * q, h_clean=lambda q, i: 0.3 + 0.05 * i,
                          delta=lambda q, tk: 0.1 * q))
    assert e["spearman_permutations"] == 6 and e["spearman_shuffled_p"] * 6 == pytest.approx(round(e["spearman_shuffled_p"] * 6))
    assert e["spearman_shuffled_p"] >= 1 / 6
    text = " ".join(prior_sentences(summarize(by_question(n_questions=3), n_boot=N_BOOT)))
    assert "no permutation of them can reach p < 0.05 (the smallest p is 1/6)" in text
