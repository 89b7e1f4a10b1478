"""The unit every CI resamples: images and questions, crossed; dataset rows as their own clusters;
and the same bytes whichever CPU kernels numpy and OpenBLAS pick (python -m pytest -q tests/test_units.py).

The two-way bootstrap is checked against one written here from its definition, on the committed
default run; the rest on records whose right answer is known by construction.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from confidence_trap.analysis import clusters as C
from confidence_trap.analysis.summary import summarize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rec(image, h, attack="none", eps=0.0, trial=0, question="q?", **extra):
    return dict(image=image, question=question, prompt="p", attack=attack, epsilon=float(eps), trial=trial,
                seed=trial, answer="a", token_entropies=[h], mean_entropy=float(h), n_tokens=1, n_nonfinite=0,
                **extra)


def crossed(n_images=30, questions=("a?", "b?", "c?"), q_effect=(0.0, 0.0, 0.0), seed=0, **extra):
    """Every image asked every question; Δ = the question's effect + small noise, a repeat each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        for q, eff in zip(questions, q_effect):
            h = 1.0 + 0.1 * rng.standard_normal()
            out += [rec(f"im{i}", h, question=q, **extra), rec(f"im{i}", h, "repeat", question=q, **extra)]
            out += [rec(f"im{i}", h + eff + 0.01 * rng.standard_normal(), "proxy", 0.3, t, question=q, **extra)
                    for t in range(2)]
    return out


def width(ci):
    return ci[1] - ci[0]


def test_each_entry_names_its_units():
    e = summarize(crossed(n_images=8), n_boot=200)
    b = e["by_epsilon"]["0.3"]
    assert (b["n_images"], b["n_questions"], b["n_clusters"]) == (8, 3, 24)
    assert b["cluster"] == C.CROSSED == e["meta"]["cluster"]


def test_a_question_effect_widens_the_interval_as_a_question_bootstrap_would():
    """Three questions whose Δ differ by ±0.2: the items-only CI would be ~0.005 nats wide; drawing
    the questions makes it as wide as the spread of three question means allows."""
    b = summarize(crossed(q_effect=(-0.2, 0.0, 0.2)), n_boot=400)["by_epsilon"]["0.3"]
    assert width(b["ci95"]) > 0.2 and b["ci95"][0] < 0 < b["ci95"][1]
    assert width(b["ci95_pairs"]) < 0.1  # the pair-level interval, for comparison, misses it
    assert b["verdict"] == "inconclusive" and b["direction"] is None
    flat = summarize(crossed(q_effect=(0.1, 0.1, 0.1)), n_boot=400)["by_epsilon"]["0.3"]
    assert width(flat["ci95"]) < 0.02 and flat["verdict"] == "rises"  # no question effect: narrow


def test_dataset_rows_are_their_own_clusters():
    """Records with a dataset field: each row one cluster, questions not drawn apart, so the CI
    equals the bootstrap over rows with the same draws."""
    rows = crossed(n_images=12, questions=("Is there a dog?", "Is there a cat?"), q_effect=(-0.2, 0.2),
                   dataset="lmms-lab/POPE")
    s = summarize(rows, n_boot=300)
    b = s["by_epsilon"]["0.3"]
    assert b["cluster"] == C.ROWS == s["meta"]["cluster"] and b["n_questions"] == 2
    pairs = sorted((f"{r['image']}\n{r['question']}", r["trial"], r["mean_entropy"]) for r in rows
                   if r["attack"] == "proxy")
    clean = {f"{r['image']}\n{r['question']}": r["mean_entropy"] for r in rows if r["attack"] == "none"}
    st = C.cluster_mean_stats([h - clean[k] for k, _, h in pairs], [(k, "") for k, _, _ in pairs], 300, 0,
                              "proxy|0.3")
    assert b["ci95"] == pytest.approx(st["ci95"], rel=1e-12) and st["n_questions"] == 1


def two_way(d, images, questions, n_boot=2000, seed=12345):
    """A pigeonhole bootstrap written from its definition: draw images and questions with
    replacement, weight each pair by the product of its image's and its question's counts."""
    rng = np.random.default_rng(seed)
    im_ids = {x: i for i, x in enumerate(sorted(set(images)))}
    q_ids = {x: i for i, x in enumerate(sorted(set(questions)))}
    im = np.array([im_ids[x] for x in images])
    qs = np.array([q_ids[x] for x in questions])
    means = []
    for _ in range(n_boot):
        a = np.bincount(rng.integers(0, len(im_ids), len(im_ids)), minlength=len(im_ids))
        b = np.bincount(rng.integers(0, len(q_ids), len(q_ids)), minlength=len(q_ids))
        w = a[im] * b[qs]
        if w.sum():
            means.append(np.sum(w * d) / w.sum())
    return np.percentile(means, [2.5, 97.5])


def test_the_default_runs_interval_matches_an_independent_two_way_bootstrap():
    """Issue 26: on the committed default run, at ε 0.5, an independent two-way bootstrap of the
    mean Δ gives a CI whose width is within 25% of summary.json's."""
    with open(os.path.join(REPO, "results", "records.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    with open(os.path.join(REPO, "results", "summary.json"), encoding="utf-8") as f:
        entry = json.load(f)["by_epsilon"]["0.5"]
    clean = {(r["image"], r["question"]): r["mean_entropy"] for r in records if r["attack"] == "none"}
    pert = [r for r in records if r["attack"] == "proxy" and r["epsilon"] == 0.5]
    d = np.array([r["mean_entropy"] - clean[(r["image"], r["question"])] for r in pert])
    lo, hi = two_way(d, [r["image"] for r in pert], [r["question"] for r in pert])
    assert entry["cluster"] == C.CROSSED and entry["n_questions"] == 9
    assert (hi - lo) == pytest.approx(width(entry["ci95"]), rel=0.25)
    assert lo == pytest.approx(entry["ci95"][0], abs=0.25 * (hi - lo))


def test_sums_in_the_bootstrap_are_not_blas_products():
    """wsum adds in an order fixed by the length alone: the same bits as a left-to-right add of
    each row's pairwise sum, whichever BLAS kernel a matrix product would pick."""
    rng = np.random.default_rng(0)
    w, x = rng.integers(0, 4, (50, 333)), rng.standard_normal(333)
    assert np.array_equal(C.wsum(w, x), np.array([np.add.reduce(row * x) for row in w]))
    g = rng.integers(0, 7, 333)
    got = C.group_wsum(w, x, g, 9)
    assert got[:, 7:].sum() == 0 and np.allclose(got.sum(axis=1), C.wsum(w, x))


def _cpu_variants() -> list[dict]:
    """Environments that make numpy and OpenBLAS take other kernels than this CPU's best."""
    from numpy._core._multiarray_umath import __cpu_features__ as have

    avx512 = [k for k in ("AVX512F", "AVX512CD", "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL",
                          "AVX512_SPR") if have.get(k)]
    numpy_off = " ".join(avx512) if avx512 else " ".join(k for k in ("AVX2", "FMA3") if have.get(k))
    return [{"NPY_DISABLE_CPU_FEATURES": numpy_off}, {"OPENBLAS_CORETYPE": "Haswell"},
            {"OPENBLAS_CORETYPE": "Prescott"}]


def analysed(out, env: dict) -> bytes:
    """summary.json of the committed proxy control, analysed in a subprocess under `env`."""
    out.mkdir()
    for f in ("records.jsonl", "run.json"):
        shutil.copy(os.path.join(REPO, "results", "controls", "proxy", f), out / f)
    r = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "analyze.py"), "--out", str(out),
                        "--no-figures"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO, **env})
    assert r.returncode == 0, r.stderr
    return (out / "summary.json").read_bytes()


@pytest.fixture(scope="module")
def here(tmp_path_factory):
    return analysed(tmp_path_factory.mktemp("here") / "run", {})


@pytest.mark.slow
@pytest.mark.parametrize("variant", _cpu_variants(), ids=lambda v: " ".join(f"{k}={x}" for k, x in v.items()))
def test_the_summary_is_the_same_bytes_on_other_cpu_kernels(tmp_path, here, variant):
    """The committed proxy control, analysed as this CPU would and with the kernels another CPU
    takes (numpy without AVX-512, or without AVX2 where this CPU lacks AVX-512; OpenBLAS's
    Haswell and generic kernels, whose matrix products sum in another order): summary.json must
    be byte-identical (issue 28; it was not, in the ECE intervals, while they used a BLAS product)."""
    assert analysed(tmp_path / "run", variant) == here
