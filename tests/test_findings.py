"""The findings generator on runs of every shape (python -m pytest -q tests/test_findings.py).

Each sentence must hold for any run: mixed verdicts, one ε, severities, no references, no null
control, no prior pass. Where an interval holds 0 the sentence says the run cannot tell, and
nothing is called inverted without an interval above its margin.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from confidence_trap.analysis.findings import takeaways
from confidence_trap.analysis.report import render_report
from confidence_trap.analysis.summary import summarize

INFO = {"model": "tiny", "dtype": "float32"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rec(image, h, attack="none", trial=0, question="q?", **extra):
    return dict(image=image, question=question, prompt="p", attack=attack, trial=trial, seed=trial,
                answer=extra.pop("answer", "a"), token_entropies=[h], mean_entropy=float(h), n_tokens=1,
                n_nonfinite=0, **{"epsilon": 0.0, **extra})


def run(levels=((0.3, -0.3),), severity=False, null=True, refs=False, prior=False, n=16, sd=0.05, seed=0):
    """Records of one attack: `levels` [(level, Δ)], each Δ + sd·noise over n images × 2 questions."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        for q in ("What colour?", "How many?"):
            h = 1.0 + 0.2 * rng.random()
            kw = {"correct": float(rng.random() < 0.7), "references": ["a"]} if refs else {}
            out.append(rec(f"im{i}", h, question=q, **kw))
            if null:
                out.append(rec(f"im{i}", h, "repeat", question=q, **kw))
            if prior:
                out.append(rec(f"im{i}", 0.2, "blank", question=q, answer="b"))
            for lvl, shift in levels:
                where = {"severity": int(lvl), "epsilon": None, "level_kind": "severity"} if severity else \
                    {"epsilon": float(lvl), "level_kind": "epsilon"}
                out += [rec(f"im{i}", max(0.0, h + shift + sd * rng.standard_normal()),
                            "corruption:fog" if severity else "proxy", t, question=q,
                            answer="b" if rng.random() < 0.3 else "a", **where, **kw) for t in range(2)]
    return out


SHAPES = {
    "mixed verdicts": dict(levels=((8 / 255, 0.0), (0.2, -0.3))),
    "one ε": dict(levels=((0.2, -0.3),)),
    "severities": dict(levels=((1, 0.0), (3, 0.3)), severity=True),
    "no references": dict(levels=((0.1, 0.2), (0.3, 0.3)), refs=False),
    "references and prior": dict(levels=((0.1, 0.2), (0.3, 0.3)), refs=True, prior=True),
    "no null control": dict(levels=((0.1, -0.3), (0.3, -0.3)), null=False),
    "a change the run cannot tell": dict(levels=((0.2, 0.0),), sd=0.6),
}


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped(request):
    s = summarize(run(**SHAPES[request.param]), n_boot=200)
    return request.param, s, takeaways(s, INFO)


def test_every_sentence_is_whole(shaped):
    name, s, found = shaped
    assert 2 <= len(found) <= 5, name
    for t in found:
        assert not re.search(r"\bat,|, ,|\( |\(\)|\bNone\b|\bn/a\b|  |;\.|,\.", t), (name, t)
        assert t.endswith(".") and (t[0].isupper() or t[0].isdigit()), (name, t)


def test_each_shape_says_what_it_is(shaped):
    name, s, found = shaped
    text = " ".join(found)
    sec = s["by_attack"][next(iter(s["by_attack"]))]
    verdicts = [e["verdict"] for e in sec["by_epsilon"].values()]
    if name == "severities":
        assert "severity 3" in text and "ε" not in text
    if name == "mixed verdicts":
        assert len(set(verdicts)) > 1 and "by level:" in text and all(v in text for v in set(verdicts))
    if name == "one ε":
        head = found[0].split(". ")[0]
        assert "every" not in head and "at ε = 0.2 (51/255)" in head
    if name == "no null control":
        assert set(verdicts) == {"inconclusive"} and "calls no verdict" in text
    if name == "references and prior":
        assert any("language prior" in t for t in found)


def test_a_ci_holding_zero_is_said_as_cannot_tell(shaped):
    name, s, found = shaped
    sec = s["by_attack"][next(iter(s["by_attack"]))]
    top = max(sec["by_epsilon"].values(), key=lambda e: e["level"])
    read = top["tested"] or {"ci95": top["ci95"]}
    if read["ci95"][0] < 0 < read["ci95"][1] and top["verdict"] == "inconclusive":
        assert "the run cannot tell whether" in found[0], (name, found[0])
    if top["verdict"] in ("rises", "falls"):
        assert "cannot tell" not in found[0]


def test_nothing_is_inverted_without_an_interval_above_its_margin(shaped):
    name, s, found = shaped
    for sec in s["by_attack"].values():
        for e in sec["by_epsilon"].values():
            for p, r in e["pass_rate"].items():
                inverted = r["verdict"] == "inverted"
                assert inverted == e["inverted_safety"][p]
                assert not inverted or r["difference_ci90"][0] > r["margin"] > 0
    report = render_report(s, INFO)
    assert bool(re.search(r"% INV", report)) == any(v for sec in s["by_attack"].values() for e in sec["by_epsilon"].values()
                                     for v in e["inverted_safety"].values())


def test_a_point_comparison_is_not_an_inversion():
    """Two ε and a small set: perturbed inputs pass slightly more often than clean ones at some τ
    (a point comparison the old rule called inverted); with its CI, no such setting is."""
    s = summarize(run(levels=((8 / 255, -0.02), (0.2, -0.03)), n=10, sd=0.1, seed=3), n_boot=300)
    cells = [r for e in s["by_epsilon"].values() for r in e["pass_rate"].values()]
    assert any(r["perturbed"] > r["clean"] for r in cells)
    assert not any(r["verdict"] == "inverted" for r in cells)
    assert "inverted at none" in takeaways(s, INFO)[-1]


@pytest.mark.slow
def test_a_tiny_run_at_two_epsilons_writes_whole_sentences(tmp_path):
    """Issue 26: `--epsilons 8/255 0.2` on the embedded model, end to end: whole findings, and no
    setting called inverted without its interval."""
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "entropy_analysis.py"), "--model", "tiny",
                        "--epsilons", "8/255", "0.2", "--trials", "2", "--images", "data/photos/manifest.json",
                        "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((out / "summary.json").read_text())
    found = takeaways(s, json.loads((out / "run.json").read_text()))
    assert found and not any(re.search(r"\bat,|, ,|\bNone\b", t) for t in found)
    report = (out / "entropy_report.txt").read_text()
    assert "epsilons: 0.03137 (8/255), 0.2 (51/255)" in report
    for e in s["by_epsilon"].values():
        for p, rate in e["pass_rate"].items():
            assert rate["difference_ci90"] is not None
            assert e["inverted_safety"][p] == (rate["difference_ci90"][0] > rate["margin"])


def test_one_model_phrase_serves_both_findings():
    """findings and original_findings name the run's model with one helper; its flags add the
    hardware and, for a model that is not LLaVA-1.5, say so."""
    from confidence_trap.analysis.findings import model_phrase
    tiny = {"model": "tiny", "model_id": "models/tiny-llava", "dtype": "float32", "device": "cpu",
            "device_name": "CPU (AMD EPYC, 2 cores)"}
    assert model_phrase(tiny) == "the model tiny (models/tiny-llava, float32)"
    assert model_phrase(tiny, hardware=True, not_llava=True) == \
        "the model tiny (models/tiny-llava, float32 on CPU (AMD EPYC, 2 cores)), not LLaVA-1.5-7B"
    llava = {"model": "llava-1.5-7b", "model_id": "llava-hf/llava-1.5-7b-hf", "dtype": "float16", "device": "cuda"}
    assert model_phrase(llava, hardware=True, not_llava=True) == \
        "the model llava-1.5-7b (llava-hf/llava-1.5-7b-hf, float16 on cuda)"
    assert model_phrase({}) == "the model of this run"
