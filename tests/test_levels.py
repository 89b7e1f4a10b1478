"""What a record's level is comes from its fields, never from its attack's name
(python -m pytest -q tests/test_levels.py).

A severity-graded attack registered under any name flows through the summary, the report and the
findings as severities; records from before `level_kind` existed are read from what they carry.
"""
from __future__ import annotations

import ast
import dataclasses
import os

import pytest

import attacks
from confidence_trap.analysis.findings import takeaways
from confidence_trap.analysis.levels import level_kind, level_of
from confidence_trap.analysis.report import render_report
from confidence_trap.analysis.summary import summarize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANALYSIS = [os.path.join(REPO, "confidence_trap", "analysis", f) for f in
            sorted(os.listdir(os.path.join(REPO, "confidence_trap", "analysis"))) if f.endswith(".py")]


def rec(image, h, attack="none", trial=0, question="q?", **extra):
    return dict(image=image, question=question, prompt="p", attack=attack, epsilon=None if "severity" in extra
                else 0.0, trial=trial, seed=trial, answer="a", token_entropies=[h], mean_entropy=h, n_tokens=1,
                n_nonfinite=0, **extra)


@pytest.fixture
def fog(monkeypatch):
    """A severity-graded attack named like nothing the analysis has seen, in the registry."""
    graded = next(a for a in attacks.ATTACKS.values()  # a severity-graded entry, to copy its shape
                  if "severity" in (getattr(a, "level", None), getattr(a, "level_kind", None)))
    spec = dataclasses.replace(graded, name="fog", doc="a test's fog, severity 1..5")
    monkeypatch.setitem(attacks.ATTACKS, "fog", spec)
    assert attacks.get("fog") is spec
    return spec


def fog_run(spec, n=12):
    out = []
    for i in range(n):
        h = 0.5 + 0.02 * i
        out += [rec(f"im{i}", h, level_kind="none", attack_name="none"),
                rec(f"im{i}", h, "repeat", level_kind="none", attack_name="repeat")]
        out += [rec(f"im{i}", h + 0.1 * s + 0.01 * t, spec.name, t, severity=s, level_kind="severity",
                    attack_name=spec.name) for s in (1, 3) for t in range(2)]
    return out


def test_a_severity_attack_not_named_corruption_is_read_as_severities(fog):
    s = summarize(fog_run(fog), n_boot=100)
    sec = s["by_attack"]["fog"]
    assert sec["grouped_by"] == "severity" and sorted(sec["by_epsilon"]) == ["1", "3"]
    assert [sec["by_epsilon"][k]["level"] for k in ("1", "3")] == [1.0, 3.0]
    report = render_report(s, {"config": {"attack": "fog", "severities": [1, 3], "epsilons": [0.1]}})
    assert "severity" in report and "ε = " not in report.split("== attack: fog ==")[1]
    assert "epsilons" not in report.splitlines()[2]  # the header names what the run varied
    found = " ".join(takeaways(s, {"model": "tiny"}))
    assert "severity 3" in found and "ε" not in found


def test_records_without_level_kind_are_read_from_their_fields():
    assert level_kind({"attack": "corruption:jpeg", "severity": 2}) == "severity"
    assert level_kind({"attack": "fog", "severity": 2}) == "severity"       # any name
    assert level_kind({"attack": "proxy", "epsilon": 0.3}) == "epsilon"
    assert level_kind({"attack": "corruption:jpeg", "epsilon": 0.3}) == "epsilon"  # no severity: ε
    assert {level_kind({"attack": a}) for a in ("none", "blank", "repeat")} == {"none"}
    assert level_of({"attack": "fog", "level_kind": "severity", "severity": 4, "epsilon": None}) == ("4", 4.0)
    # a perturbation without a level (the original study's clamp) has one setting
    assert level_of({"attack": "original_clamp", "level_kind": "none", "epsilon": None}) == ("none", 0.0)


def test_no_analysis_module_reads_an_attack_kind_from_its_name():
    """No string test of an attack name's prefix anywhere in the analysis or its record check."""
    for path in ANALYSIS + [os.path.join(REPO, "confidence_trap", "runner", "analyze.py")]:
        tree = ast.parse(open(path, encoding="utf-8").read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("startswith", "endswith"):
                args = [a.value for a in node.args if isinstance(a, ast.Constant)]
                assert not any(":" in str(a) for a in args), f"{path}:{node.lineno} tests a name's prefix"
