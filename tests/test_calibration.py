"""Tests of confidence_trap/analysis/calibration.py and confidence_trap/analysis/figures_calibration.py: cases whose ECE and Brier
are known by construction or by hand, an independent numpy recomputation, and the figures.

    python -m pytest tests/test_calibration.py -q
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from confidence_trap.analysis.calibration import (EDGES, N_BINS, bin_index, bootstrap_ece_ci, brier,
                                  calibration, ece, sequence_prob)
from confidence_trap.analysis.selective import selective

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"
KEYS = {"confidence", "n", "accuracy", "mean_confidence", "ece", "ece_ci95", "brier",
        "overconfidence", "bins"}


def direct_ece_brier(conf, corr):
    """ECE and Brier straight from the definitions, with explicit interval tests per bin."""
    conf, corr = np.asarray(conf, float), np.asarray(corr, float)
    n = conf.size
    total = 0.0
    for k in range(10):
        lo, hi = k / 10, (k + 1) / 10
        inside = [(lo <= c < hi) or (k == 9 and c == 1.0) for c in conf]
        m = np.asarray(inside, dtype=bool)
        if m.any():
            total += m.sum() / n * abs(corr[m].mean() - conf[m].mean())
    return total, float(np.mean((conf - corr) ** 2))


# ---- known by construction ---------------------------------------------------------------------

def test_perfectly_calibrated_bins_have_zero_ece():
    # bin [0.7, 0.8): confidence 0.75, 3 of 4 right; bin [0.2, 0.3): 0.25, 1 of 4 right
    conf = [0.75] * 4 + [0.25] * 4
    corr = [1, 1, 1, 0] + [0, 1, 0, 0]
    c = calibration(conf, corr, n_boot=0)
    assert c["ece"] == pytest.approx(0.0, abs=1e-12)
    assert c["overconfidence"] == pytest.approx(0.0, abs=1e-12)
    assert c["bins"][7]["n"] == 4 and c["bins"][7]["accuracy"] == 0.75
    assert c["bins"][2]["n"] == 4 and c["bins"][2]["accuracy"] == 0.25
    # Brier is not 0 for a calibrated but unsharp forecast: 0.75 * 0.25 per answer
    assert c["brier"] == pytest.approx(0.1875)


def test_all_confident_all_wrong():
    c = calibration([1.0] * 5, [0] * 5, n_boot=200)
    assert c["ece"] == 1.0 and c["brier"] == 1.0 and c["overconfidence"] == 1.0
    assert c["accuracy"] == 0.0 and c["mean_confidence"] == 1.0
    assert c["bins"][9]["n"] == 5 and sum(b["n"] for b in c["bins"]) == 5
    assert c["ece_ci95"] == [1.0, 1.0]  # every resample is the same five answers


def test_hand_computed_four_items():
    # bin 3 holds 0.3 and 0.35 (acc 1/2, conf 0.325); bin 9 holds 0.9 and 1.0 (acc 1/2, 0.95)
    # ECE = 2/4 * 0.175 + 2/4 * 0.45 = 0.3125
    # Brier = (0.49 + 0.1225 + 0.01 + 1) / 4 = 0.405625; overconfidence = 0.6375 - 0.5
    c = calibration([0.3, 0.35, 0.9, 1.0], [1, 0, 1, 0], n_boot=0)
    assert c["ece"] == pytest.approx(0.3125)
    assert c["brier"] == pytest.approx(0.405625)
    assert c["overconfidence"] == pytest.approx(0.1375)
    assert c["accuracy"] == 0.5 and c["mean_confidence"] == pytest.approx(0.6375)
    assert [b["n"] for b in c["bins"]] == [0, 0, 0, 2, 0, 0, 0, 0, 0, 2]
    assert c["bins"][3]["confidence"] == pytest.approx(0.325)
    assert c["bins"][9]["confidence"] == pytest.approx(0.95)


def test_fractional_correctness_is_a_score():
    # VQA accuracy 1/3 and 1 at confidence 0.6: bin 6 accuracy 2/3
    c = calibration([0.6, 0.6], [1 / 3, 1.0], n_boot=0)
    assert c["accuracy"] == pytest.approx(2 / 3)
    assert c["ece"] == pytest.approx(2 / 3 - 0.6)
    assert c["brier"] == pytest.approx(((0.6 - 1 / 3) ** 2 + 0.4 ** 2) / 2)


def test_bin_edges():
    assert [bin_index(k / 10) for k in range(10)] == list(range(10))  # k/10 opens bin k
    assert bin_index(0.0) == 0 and bin_index(1.0) == 9
    assert bin_index(0.1 * 3) == 3  # 0.30000000000000004 is above 0.3
    assert bin_index(0.3) == 3
    for k in range(1, 11):  # the float just below an edge stays in the bin below
        assert bin_index(float(np.nextafter(k / 10, 0.0))) == k - 1
    assert EDGES[3] == 0.3 and EDGES[-1] == 1.0 and len(EDGES) == N_BINS + 1
    c = calibration([0.0, 0.3, 1.0, 0.9, 0.1 * 3], [1, 1, 1, 1, 1], n_boot=0)
    assert [b["n"] for b in c["bins"]] == [1, 0, 0, 2, 0, 0, 0, 0, 0, 2]
    assert [(b["lo"], b["hi"]) for b in c["bins"]][3] == (0.3, 0.4)


def test_empty_and_single():
    c = calibration([], [], n_boot=100)
    assert set(c) == KEYS and c["n"] == 0
    assert all(c[k] is None for k in KEYS - {"confidence", "n", "bins"})
    assert len(c["bins"]) == 10 and all(b["n"] == 0 and b["accuracy"] is None
                                        and b["confidence"] is None for b in c["bins"])
    one = calibration([0.8], [1], n_boot=100)
    assert one["n"] == 1 and one["ece_ci95"] is None
    assert one["ece"] == pytest.approx(0.2)


def test_missing_values_dropped_and_range_checked():
    c = calibration([0.9, None, float("nan"), 0.2], [1, 1, 0, None], n_boot=0)
    assert c["n"] == 1 and c["accuracy"] == 1.0
    near = calibration([1.0000001], [1], n_boot=0)  # float32 round-off above 1 is clipped
    assert near["mean_confidence"] == 1.0 and near["bins"][9]["n"] == 1
    with pytest.raises(ValueError):
        calibration([1.5], [1])
    with pytest.raises(ValueError):
        calibration([0.5], [2])
    with pytest.raises(ValueError):
        calibration([0.5, 0.5], [1])


def test_sequence_prob():
    assert sequence_prob(0.0) == 1.0
    assert sequence_prob(math.log(2)) == pytest.approx(0.5)
    assert sequence_prob(-1e-9) == 1.0  # round-off below 0 is not a probability above 1
    assert sequence_prob(float("inf")) == 0.0
    assert sequence_prob(None) is None and sequence_prob(float("nan")) is None


# ---- independent recomputation and invariances ------------------------------------------------

def test_against_direct_numpy_loop():
    rng = np.random.default_rng(3)
    conf = np.concatenate([rng.uniform(0, 1, 300), np.arange(11) / 10])  # edges included
    corr = (rng.uniform(0, 1, conf.size) < conf ** 2).astype(float)
    corr[::7] = rng.uniform(0, 1, corr[::7].size)  # some fractional scores
    want_ece, want_brier = direct_ece_brier(conf, corr)
    c = calibration(conf.tolist(), corr.tolist(), n_boot=0)
    assert c["ece"] == pytest.approx(want_ece, abs=1e-12)
    assert c["brier"] == pytest.approx(want_brier, abs=1e-12)
    assert ece(conf, corr) == c["ece"] and brier(conf, corr) == c["brier"]
    assert sum(b["n"] for b in c["bins"]) == conf.size
    for b in c["bins"]:  # per-bin accuracy against the direct mask
        m = ((conf >= b["lo"]) & (conf < b["hi"])) | ((b["hi"] == 1.0) & (conf == 1.0))
        assert b["n"] == int(m.sum())
        assert b["accuracy"] == pytest.approx(corr[m].mean())


def test_record_order_does_not_matter_and_ci_is_seeded():
    rng = np.random.default_rng(5)
    conf = rng.uniform(0, 1, 120)
    corr = (rng.uniform(0, 1, 120) < conf).astype(float)
    perm = rng.permutation(120)
    a = calibration(conf.tolist(), corr.tolist(), n_boot=300, seed=1, tag="x")
    b = calibration(conf[perm].tolist(), corr[perm].tolist(), n_boot=300, seed=1, tag="x")
    assert a == b  # bit-identical, CI included
    lo, hi = a["ece_ci95"]
    assert 0.0 <= lo <= hi <= 1.0
    other = bootstrap_ece_ci(conf, corr, 300, seed=1, name="sequence_prob", tag="y")
    assert other != a["ece_ci95"]  # another statistic's tag draws another stream
    assert json.dumps(a, allow_nan=False)


@pytest.mark.parametrize("modules, banned", [
    ("confidence_trap.analysis.calibration, confidence_trap.analysis.selective, confidence_trap.analysis.quality, confidence_trap.analysis.summary", ("torch", "transformers")),
    ("probes.semantic", ("torch", "numpy"))])
def test_the_pure_modules_import_no_framework(modules, banned):
    """analysis/ is numpy and scipy only; probes/semantic.py plain Python."""
    code = f"import sys, {modules}; print(sorted(m for m in {banned!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- figures 4 and 5 ---------------------------------------------------------------------------

def _blocks(rng, n, shift):
    conf = np.clip(rng.uniform(0.2, 1.0, n) + shift, 0, 1)
    corr = (rng.uniform(0, 1, n) < conf - 0.2).astype(float)
    nll = -np.log(np.maximum(conf, 1e-9))
    return {"calibration": calibration(conf.tolist(), corr.tolist(), n_boot=50),
            "calibration_max_prob": calibration((conf ** 0.5).tolist(), corr.tolist(),
                                                name="mean_max_prob", n_boot=50),
            "selective": {"seq_nll": selective(nll.tolist(), corr.tolist()),
                          "mean_entropy": selective(rng.uniform(0, 1, n).tolist(),
                                                    corr.tolist())}}


def synthetic_summary():
    rng = np.random.default_rng(0)
    clean = _blocks(rng, 60, 0.0)
    summary = {"clean": {"n": 60, **clean}, "by_attack": {}}
    for attack, grouped, levels in (("proxy", "epsilon", [8 / 255, 0.3]),
                                    ("corruption:gaussian_noise", "severity", [1, 3])):
        by_eps = {}
        for lvl in levels:
            key = repr(float(lvl)) if grouped == "epsilon" else str(lvl)
            by_eps[key] = {"level": float(lvl), **_blocks(rng, 60, 0.1 * float(lvl))}
        summary["by_attack"][attack] = {"grouped_by": grouped, "by_epsilon": by_eps}
    return json.loads(json.dumps(summary))  # as read back from summary.json


def test_figures_are_valid_and_deterministic(tmp_path):
    from confidence_trap.analysis.figures_calibration import CALIBRATION_FIGURE_NAMES, render_calibration_figures
    s = synthetic_summary()
    run_info = {"model": "tiny", "device": "cpu"}
    a = render_calibration_figures(s, str(tmp_path / "a"), run_info)
    b = render_calibration_figures(s, str(tmp_path / "b"), run_info)
    assert [os.path.basename(p) for p in a] == list(CALIBRATION_FIGURE_NAMES)
    for pa, pb in zip(a, b):
        data = open(pa, "rb").read()
        assert data.startswith(PNG) and len(data) > 5000
        assert data == open(pb, "rb").read()


def test_reliability_draws_nonempty_bins_with_ece_labels():
    from confidence_trap.analysis.figures_calibration import figure_reliability
    s = synthetic_summary()
    fig = figure_reliability(s, {})
    ax, counts, place = fig.axes[:3]  # corruption:gaussian_noise sorts first: plot, bin counts, legend
    clean = s["clean"]["calibration"]
    labels = [t.get_text() for t in place.get_legend().get_texts()]
    assert labels[0] == f"clean, ECE {clean['ece']:.3f}"
    assert len(labels) == 3  # clean + two severities
    line = next(ln for ln in ax.lines if ln.get_label().startswith("clean"))
    want = [b["confidence"] for b in clean["bins"] if b["n"] > 0]
    assert list(line.get_xdata()) == want
    assert list(counts.lines[0].get_ydata()) == [b["n"] for b in clean["bins"] if b["n"] > 0]


def test_figures_without_references_still_render(tmp_path):
    from confidence_trap.analysis.figures_calibration import (NO_CALIBRATION, figure_reliability,
                                              render_calibration_figures)
    s = synthetic_summary()
    for sec in s["by_attack"].values():
        for e in sec["by_epsilon"].values():
            for k in ("calibration", "calibration_max_prob", "selective"):
                e.pop(k)
    for k in ("calibration", "calibration_max_prob", "selective"):
        s["clean"].pop(k)
    paths = render_calibration_figures(s, str(tmp_path), {})
    assert all(open(p, "rb").read().startswith(PNG) for p in paths)
    fig = figure_reliability(s, {})
    assert any(t.get_text() == NO_CALIBRATION for ax in fig.axes for t in ax.texts)
    bare = render_calibration_figures({"clean": {"n": 0}, "by_attack": {}}, str(tmp_path / "c"))
    assert all(open(p, "rb").read().startswith(PNG) for p in bare)
