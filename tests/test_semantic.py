"""Tests of probes/semantic.py: answer normalization, clustering, and cluster entropies computed
by hand.

    python -m pytest tests/test_semantic.py -q
"""
from __future__ import annotations

import functools
import math

import pytest

from probes.semantic import (CLUSTERERS, answer_clusters, cluster_by_equivalence,
                             cluster_by_normalized_match, cluster_entropy, cluster_ids,
                             cluster_sizes, consistency_entropy, normalize_answer,
                             semantic_entropy, semantic_entropy_weighted)

H_31 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))  # clusters of 3 and 1 among 4
ANSWERS_31 = ["Two", "2.", "two", "three"]


@pytest.mark.parametrize("a, b", [
    ("The cat.", "cat"), ("Two", "2"), ("Two.", "2"), ("two", "2."), ("  A  Red\tcar!", "red car"),
    ("twenty-one", "21"), ("Twenty one", "21"), ("ZERO", "0"), ("twenty", "20"),
    ("1,000", "1000"), ("T-shirt", "t shirt"), ("An apple", "apple"), ("Yes!", "yes"),
    ("It's red", "its red"),
])
def test_normalized_equal(a, b):
    assert normalize_answer(a) == normalize_answer(b)


@pytest.mark.parametrize("a, b", [
    ("3.5", "35"), ("two", "three"), ("cat", "cats"), ("theater", "ater"), ("12", "1 2"),
])
def test_normalized_different(a, b):
    assert normalize_answer(a) != normalize_answer(b)


def test_normalized_forms():
    assert normalize_answer("The cat.") == "cat"
    assert normalize_answer("Two.") == "2"
    assert normalize_answer("There are three dogs") == "there are 3 dogs"
    assert normalize_answer(None) == "" and normalize_answer("the") == ""
    words = ["zero", "one", "ten", "nineteen"]
    assert [normalize_answer(w) for w in words] == ["0", "1", "10", "19"]


def test_hand_computed_semantic_entropy():
    answers = ANSWERS_31
    assert cluster_ids(answers) == [0, 0, 0, 1]
    assert cluster_entropy(answers) == pytest.approx(H_31, abs=1e-15)
    assert semantic_entropy(answers) == cluster_entropy(answers)
    assert consistency_entropy(answers) == cluster_entropy(answers)


def test_entropy_limits():
    assert cluster_entropy(["cat", "Cat.", "the cat"]) == 0.0
    assert cluster_entropy(["a cat", "dog", "bird", "fish", "cow"]) == pytest.approx(math.log(5))
    assert cluster_entropy(["x"]) == 0.0
    assert cluster_entropy([]) is None
    # the answer order does not change a bit
    assert cluster_entropy(["three", "2", "two", "Two"]) == cluster_entropy(ANSWERS_31)


def test_cluster_ids_first_seen_order():
    assert cluster_by_normalized_match(["b", "a", "B", "c", "a"]) == [0, 1, 0, 2, 1]
    assert cluster_sizes([0, 1, 0, 2, 1]) == [2, 2, 1] and cluster_sizes([]) == []


def test_registry_and_equivalence_clusterer():
    assert CLUSTERERS["normalized"] is cluster_by_normalized_match
    answers = ["Two", "three", "2", "The three", "four"]
    same = functools.partial(cluster_by_equivalence,
                             equivalent=lambda a, b: normalize_answer(a) == normalize_answer(b))
    assert same(answers) == cluster_by_normalized_match(answers) == [0, 1, 0, 1, 2]
    assert cluster_entropy(answers, clusterer=same) == cluster_entropy(answers)
    # a non-transitive test: each answer joins the first cluster whose first member matches
    near = functools.partial(cluster_by_equivalence,
                             equivalent=lambda a, b: abs(int(a) - int(b)) <= 1)
    assert near(["1", "2", "3", "5", "4"]) == [0, 0, 1, 2, 1]
    with pytest.raises(ValueError):
        cluster_entropy(answers, clusterer="nli")


def test_weighted_semantic_entropy():
    # p(cluster "2") = (0.2 + 0.1) / 0.4 = 3/4, p("three") = 1/4
    lp = [math.log(0.2), math.log(0.1), math.log(0.1)]
    assert semantic_entropy_weighted(["2", "two", "three"], lp) == pytest.approx(H_31)
    # equal likelihoods reduce to the counting form
    assert semantic_entropy_weighted(ANSWERS_31, [-1.3] * 4) == pytest.approx(H_31)
    # far below float range in probability space: still ln 2, no underflow
    assert semantic_entropy_weighted(["x", "y"], [-2000.0, -2000.0]) == pytest.approx(math.log(2))
    assert semantic_entropy_weighted(["x", "y"], [0.0, float("-inf")]) == 0.0
    assert semantic_entropy_weighted([], []) is None
    assert semantic_entropy_weighted(["x"], [float("nan")]) is None
    with pytest.raises(ValueError):
        semantic_entropy_weighted(["x"], [0.0, 0.0])


def test_answer_clusters_for_records():
    out = answer_clusters([ANSWERS_31, ["cat"], []])
    assert out[0] == {"cluster_ids": [0, 0, 0, 1], "cluster_sizes": [3, 1], "n_clusters": 2,
                      "n_answers": 4, "entropy": pytest.approx(H_31)}
    assert out[1]["cluster_sizes"] == [1] and out[1]["entropy"] == 0.0
    assert out[2]["n_answers"] == 0 and out[2]["entropy"] is None
