"""The language-prior tests (confidence_trap/analysis/prior.py, prior_text.py, figures_prior.py) on synthetic
records whose outcome is known by construction.

    python -m pytest tests/test_prior.py -q
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from matplotlib.text import Text

from confidence_trap.analysis.figures import FIGURE_NAMES, MIN_PT, PANEL_W, TEXT_WIDTH_IN, _save
from confidence_trap.analysis.figures_prior import FIGURE_6, figure_prior
from confidence_trap.analysis.prior import weighted_spearman
from confidence_trap.analysis.prior_text import contrast_sentences, controls_contrast, prior_sentences
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
    assert "move toward the prior, as the mechanism predicts" in text
    assert "entropy falls where the answer is the prior's" in text and "test 3 as predicted" in text


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
    data = open(_save(fig, str(tmp_path / FIGURE_6)), "rb").read()
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
