"""The figures as a reader meets them in print (python -m pytest -q tests/test_figures.py).

Each figure is drawn at the size the paper prints it (no wider than its text), so every text must
be at least 7 pt as drawn; no figure carries its own title; legends speak in words; figure 3 counts
the answers at each position and stops where too few remain; figure 4 counts each bin's answers.
"""
import functools
import json
import os
import random
import re

import pytest
from matplotlib.text import Text

import confidence_trap.analysis.figures as F
import confidence_trap.analysis.plot as P
from confidence_trap.analysis.figures_calibration import figure_reliability, figure_risk_coverage
from confidence_trap.analysis.summary import summarize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "paper", "original_study.json"), encoding="utf-8") as f:
    ORIGINAL = json.load(f)


@functools.lru_cache(maxsize=1)
def two_attacks() -> dict:
    """A proxy by ε and a corruption by severity, with references, probes and answers of 1 to 6 tokens."""
    rng = random.Random(0)

    def rec(img, attack, eps, trial, h, **kw):
        n, h = 1 + (int(img[2:]) + trial) % 6, min(max(h, 0.001), 2.0)
        return dict(image=img, question="q?", prompt="p", attack=attack, epsilon=eps, trial=trial, seed=trial,
                    answer="red", token_entropies=[h] * n, mean_entropy=h, n_tokens=n, n_nonfinite=0,
                    max_entropy=h + 0.1, mean_max_prob=1 - h / 3, seq_nll=h * n, references=["red"],
                    correct=rng.random() < 0.7, **kw)
    recs = []
    for i in range(30):
        h0 = rng.random()
        recs.append(rec(f"im{i}", "none", 0.0, 0, h0))
        recs += [rec(f"im{i}", "proxy", e, t, h0 + rng.gauss(0.05, 0.1)) for e in (0.1, 8 / 255) for t in range(2)]
        recs += [rec(f"im{i}", "corruption:gaussian_noise", 0.0, t, h0 + rng.gauss(0, 0.1), severity=s)
                 for s in (1, 3) for t in range(2)]
    return summarize(recs, seed=0, n_boot=50)


def committed() -> dict:
    with open(os.path.join(REPO, "results", "summary.json"), encoding="utf-8") as f:
        return json.load(f)


def figures(s):
    return {"1": F.figure_epsilon_delta(s, {}, ORIGINAL), "2": F.figure_defense(s, {}),
            "3": F.figure_token_entropy(s, {}), "4": figure_reliability(s, {}), "5": figure_risk_coverage(s, {})}


@pytest.mark.parametrize("make", [committed, two_attacks])
def test_every_text_is_at_least_7pt_in_print_and_no_figure_has_a_title(make):
    for name, fig in figures(make()).items():
        fig.canvas.draw()
        width = fig.get_size_inches()[0]
        assert width <= P.TEXT_WIDTH_IN, f"figure {name} is wider than the paper's text"
        texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
        small = {t.get_text() for t in texts if t.get_fontsize() < P.MIN_PT}
        assert not small, f"figure {name}: {sorted(small)[:5]} under {P.MIN_PT} pt"
        words = " ".join(t.get_text() for t in texts)
        assert fig._suptitle is None and "Figure" not in words, name
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", words), f"figure {name} shows a raw key: {words}"


def test_paper_prints_each_png_at_its_drawn_width(tmp_path):
    paths = F.render_figures(two_attacks(), str(tmp_path), {}, ORIGINAL)
    for p in paths:
        assert P.printed_width(p) <= P.TEXT_WIDTH_IN
    one = P.printed_width(paths[1])  # figure 2 of two attacks: two panels across
    assert one == pytest.approx(2 * P.PANEL_W, abs=0.01)


def test_one_epsilon_label_form_in_figures():
    labels = [t.get_text() for t in F.figure_defense(two_attacks(), {}).findobj(Text)]
    assert "ε = 0.1 (≈26/255)" in labels and "ε = 0.03137 (8/255)" in labels
    assert not any(re.match(r"ε = \d+/255", t) for t in labels)


def test_figure_3_counts_answers_and_stops_where_few_remain():
    s = two_attacks()
    fig = F.figure_token_entropy(s, {})
    top, counts = fig.axes[:2]
    clean = s["token_profile"]["clean"]
    kept = [n for n in clean["n"] if n >= F.MIN_POSITION_ANSWERS]
    assert list(counts.lines[0].get_ydata()) == kept  # the clean answers still running, per position
    assert len(top.lines[0].get_xdata()) == len(kept) < len(clean["n"])  # the curve stops there
    assert counts.get_ylabel() == "answers"


def test_figure_5_names_every_probe_in_words():
    import probes
    fig = figure_risk_coverage(two_attacks(), {})
    legend_texts = {t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()}
    for p in ("mean_entropy", "max_entropy", "mean_max_prob", "seq_nll"):
        assert probes.label(p) in legend_texts
    assert len(fig.axes) == 8  # per attack: risk-coverage and PRR panels, each with its legend below
