"""Tests of confidence_trap/analysis/selective.py: AURC and PRR on rankings whose values are known by hand,
against brute-force definitions (every permutation of a small set) and against an independent
quality-based (LM-Polygraph-style) prediction-rejection ratio.

    python -m pytest tests/test_selective.py -q
"""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from confidence_trap.analysis.selective import aurc, risk_coverage, selective

KEYS = {"n", "aurc", "aurc_random", "aurc_oracle", "prr", "curve"}


def brute_aurc(uncertainty, correct):
    """(1/n) sum_k mean loss of the k most certain, ties broken by input position."""
    order = sorted(range(len(uncertainty)), key=lambda i: (uncertainty[i], i))
    loss = [1.0 - correct[i] for i in order]
    n = len(loss)
    return sum(sum(loss[:k]) / k for k in range(1, n + 1)) / n


def aurc_of_order(loss_in_order):
    n = len(loss_in_order)
    return sum(sum(loss_in_order[:k]) / k for k in range(1, n + 1)) / n


def quality_prr(uncertainty, quality):
    """Prediction-rejection ratio in quality terms, written from its description: quality
    min-max normalized, area = mean over k of the mean quality of the k most certain; oracle
    ranks by quality itself; random = the expected area of a random order (the mean quality)."""
    q = np.asarray(quality, float)
    q = (q - q.min()) / (q.max() - q.min())

    def area(order):
        return np.mean([q[order[:k]].mean() for k in range(1, q.size + 1)])

    raw = area(np.argsort(uncertainty, kind="stable"))
    oracle = area(np.argsort(-q, kind="stable"))
    rand = q.mean()
    return (raw - rand) / (oracle - rand)


def test_perfect_ranking_is_the_oracle():
    s = selective([0.1, 0.2, 0.3, 0.8, 0.9], [1, 1, 1, 0, 0])
    assert set(s) == KEYS and s["n"] == 5
    assert s["aurc"] == pytest.approx(s["aurc_oracle"])
    assert s["prr"] == pytest.approx(1.0)
    assert s["aurc_random"] == pytest.approx(0.4)


def test_reversed_ranking_hand_computed():
    # losses in probe order [1, 1, 0, 0]: risks 1, 1, 2/3, 1/2 -> AURC 19/24
    # oracle [0, 0, 1, 1]: risks 0, 0, 1/3, 1/2 -> 5/24; random 1/2 -> PRR = (-7/24)/(7/24) = -1
    s = selective([1, 2, 3, 4], [0, 0, 1, 1])
    assert s["aurc"] == pytest.approx(19 / 24)
    assert s["aurc_oracle"] == pytest.approx(5 / 24)
    assert s["aurc_random"] == pytest.approx(0.5)
    assert s["prr"] == pytest.approx(-1.0)


def test_constant_probe_keeps_input_order():
    # stable ties: losses stay [1, 0, 0, 1]: risks 1, 1/2, 1/3, 1/2 -> AURC 7/12
    # PRR = (1/2 - 7/12) / (1/2 - 5/24) = -2/7
    s = selective([0.5] * 4, [0, 1, 1, 0])
    assert s["aurc"] == pytest.approx(7 / 12)
    assert s["prr"] == pytest.approx(-2 / 7)
    # the same answers in another input order: the tie order, hence AURC, follows the input
    assert aurc([0.5] * 4, [1, 1, 0, 0]) == pytest.approx(5 / 24)
    assert aurc([0.5] * 4, [0, 0, 1, 1]) == pytest.approx(19 / 24)


@pytest.mark.parametrize("correct", [[1, 1, 1], [0, 0, 0], [0.5, 0.5, 0.5]])
def test_prr_undefined_when_nothing_to_rank(correct):
    s = selective([0.3, 0.1, 0.2], correct)
    assert s["prr"] is None
    assert s["aurc"] == pytest.approx(1 - correct[0])
    assert s["aurc_random"] == pytest.approx(s["aurc_oracle"])


def test_empty():
    s = selective([], [])
    assert s == {"n": 0, "aurc": None, "aurc_random": None, "aurc_oracle": None, "prr": None,
                 "curve": {"coverage": [], "risk": []}}
    assert aurc([None], [1]) is None


def test_fractional_correctness():
    # losses [0, 1/3, 2/3, 1] already in probe order: risks 0, 1/6, 1/3, 1/2 -> AURC 1/4
    s = selective([1, 2, 3, 4], [1, 2 / 3, 1 / 3, 0])
    assert s["aurc"] == pytest.approx(0.25)
    assert s["prr"] == pytest.approx(1.0)
    assert s["aurc_random"] == pytest.approx(0.5)


def test_missing_probe_values_are_left_out():
    s = selective([0.1, None, float("nan"), float("inf"), 0.9], [1, 0, 0, 0, 0])
    assert s["n"] == 2 and s["prr"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        selective([0.1, 0.2], [1])
    with pytest.raises(ValueError):
        selective([0.1], [1.5])


def test_against_brute_force_over_all_orders():
    rng = np.random.default_rng(11)
    for _ in range(5):
        n = 6
        u = rng.integers(0, 4, n).astype(float).tolist()  # ties on purpose
        y = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], n).tolist()
        s = selective(u, y)
        assert s["aurc"] == pytest.approx(brute_aurc(u, y), abs=1e-12)
        all_orders = [aurc_of_order([1 - y[i] for i in p])
                      for p in itertools.permutations(range(n))]
        assert s["aurc_oracle"] == pytest.approx(min(all_orders), abs=1e-12)
        assert s["aurc_random"] == pytest.approx(np.mean(all_orders), abs=1e-12)
        if s["prr"] is not None:
            rand, best = np.mean(all_orders), min(all_orders)
            want = (rand - brute_aurc(u, y)) / (rand - best)
            assert s["prr"] == pytest.approx(want, abs=1e-9)


def test_agrees_with_quality_form_of_prr():
    rng = np.random.default_rng(2)
    u = rng.uniform(0, 1, 80)  # continuous: no ties, so the tie rule cannot matter
    y = np.clip(1 - u + 0.4 * rng.standard_normal(80), 0, 1).round(3)
    s = selective(u.tolist(), y.tolist())
    assert s["prr"] == pytest.approx(quality_prr(u, y), abs=1e-9)
    assert 0 < s["prr"] < 1


def test_curve_points():
    rng = np.random.default_rng(4)
    u = rng.uniform(0, 1, 200).tolist()
    y = (rng.uniform(0, 1, 200) < 0.7).astype(float).tolist()
    s = selective(u, y, points=51)
    cov, risk = s["curve"]["coverage"], s["curve"]["risk"]
    assert len(cov) == len(risk) == 51
    assert cov[-1] == 1.0 and risk[-1] == pytest.approx(1 - np.mean(y))  # full coverage
    assert cov[0] == 1 / 200 and all(a < b for a, b in zip(cov, cov[1:]))
    full_cov, full_risk = risk_coverage(u, y)
    lookup = dict(zip(full_cov, full_risk))
    assert all(lookup[c] == r for c, r in zip(cov, risk))  # points of the full curve
    assert np.mean(full_risk) == pytest.approx(s["aurc"])
    assert max(np.diff(cov)) <= 2 * (1 / 50)  # spread over coverage, no big gaps
    small = selective(u[:7], y[:7], points=51)
    assert len(small["curve"]["coverage"]) == 7
    only = selective(u, y, points=1)
    assert only["curve"]["coverage"] == [1.0]
    assert json.dumps(s, allow_nan=False)


def test_the_prr_bootstrap_equals_prr_of_each_resample_expanded():
    """bootstrap_prr_ci ranks each resample in O(n) from counts; the same resamples, written out
    (each answer repeated as often as drawn, in input order) and scored by selective(), give
    the same percentile interval."""
    import numpy as np

    from confidence_trap.analysis import stats as S
    from confidence_trap.analysis.selective import bootstrap_prr_ci

    rng = np.random.default_rng(3)
    u = rng.choice([0.1, 0.2, 0.5, 0.9], 40).tolist()        # ties, so input order matters
    y = rng.choice([0.0, 0.3, 1.0], 40).tolist()
    got = bootstrap_prr_ci(u, y, n_boot=300, seed=5, tag="t")
    counts = S.resample_counts(S.sub_rng(5, "prr", "t", "images"), 300, 40)  # each answer its own image
    prrs = [selective(np.repeat(u, c), np.repeat(y, c))["prr"] for c in counts]
    want = np.percentile([p for p in prrs if p is not None], [2.5, 97.5])
    assert got == pytest.approx(list(want), abs=1e-9)
