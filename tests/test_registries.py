"""The registries carry their special cases: a probe added in a test as one function and one entry
reaches the records and the summary without an engine edit; an attack entry says how its name is
recorded, which passes a run adds and what it needs from the model; several attacks share a run."""
import os

import pytest

import attacks
import probes
from confidence_trap.runner import pipeline
from confidence_trap.runner.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = [os.path.join(REPO, "data", "scenes", f"scene_00{i}.png") for i in (1, 2, 4)]


def distinct_share(answers):
    """A sampled probe written for this test: the share of the K answers that differ from the first."""
    return sum(a != answers[0] for a in answers) / len(answers)


def test_a_sampled_probe_is_one_function_and_one_entry(monkeypatch):
    monkeypatch.setitem(probes.PROBES, "distinct_share",
                        probes.Probe("distinct_share", +1, "samples", distinct_share, "share of samples unlike the first"))
    from confidence_trap.analysis.summary import summarize

    cfg = Config(model="tiny", images=SCENES, epsilons=[0.3], trials=1, samples=2, max_new_tokens=4)
    sweep = pipeline.prepare(pipeline.plan(cfg, check_out=False))
    records = pipeline.run_batch(sweep, pipeline.make_units(cfg, sweep.items))
    for r in records:
        assert r["distinct_share"] == distinct_share(r["samples"])  # served the same K samples
    summary = summarize(records, seed=0, n_boot=20)
    assert "distinct_share" in summary["meta"]["probes"] and summary["meta"]["probe_sign"]["distinct_share"] == 1
    assert "distinct_share" in summary["by_epsilon"]["0.3"]["probes"]


def test_a_probe_names_a_source_the_engine_serves():
    with pytest.raises(ValueError, match="unknown probe source"):
        probes.register(probes.Probe("x", +1, "hidden_states", distinct_share, ""))
    assert set(p.source for p in probes.PROBES.values()) <= set(probes.SOURCES)


def test_units_follow_the_entries():
    """Record names, passes, their order and padding, levels and trials: all read off the entries."""
    from confidence_trap.runner.sweep import make_units
    from confidence_trap.tasks.imagesets import Item

    items = [Item(f"i{k}.png", f"i{k}.png", "Q?") for k in range(2)]
    cfg = Config(model="tiny", attack=["pgd", "original_clamp", "corruption:jpeg"], epsilons=[0.1], severities=[2],
                 trials=3, objective="ce")
    units = make_units(cfg, items)
    names = [u.attack for u in units]
    assert names == ["none"] * 2 + ["blank"] * 2 + ["pgd:ce"] * 6 + ["original_clamp"] * 2 + \
        ["corruption:jpeg"] * 6 + ["repeat"] * 2
    clamp = [u for u in units if u.name == "original_clamp"]
    assert {(u.epsilon, u.severity, u.trial) for u in clamp} == {(None, None, 0)}  # no level, no trials
    assert {u.severity for u in units if u.name == "corruption:jpeg"} == {2}
    assert attacks.PASSES == {"blank": "prior", "repeat": "null_control"}
    assert [p.name for p in attacks.passes() if p.last] == ["repeat"] and attacks.get("repeat").pad_left > 0
    off = make_units(Config(model="tiny", epsilons=[0.1], trials=1, prior=False, null_control=False), items)
    assert {u.attack for u in off} == {"none", "proxy"}


def test_records_carry_level_kind_and_attack_name():
    from confidence_trap.runner.config import plain

    cfg = Config(model="tiny", images=SCENES[:2], attack=["proxy", "corruption:jpeg"], epsilons=[0.2],
                 severities=[3], trials=1, max_new_tokens=4)
    sweep = pipeline.prepare(pipeline.plan(cfg, check_out=False))
    records = pipeline.run_batch(sweep, pipeline.make_units(cfg, sweep.items))
    kinds = {(r["attack"], r["attack_name"], r["level_kind"]) for r in records}
    assert kinds == {("none", "none", "none"), ("blank", "blank", "none"), ("repeat", "repeat", "none"),
                     ("proxy", "proxy", "epsilon"), ("corruption:jpeg", "corruption:jpeg", "severity")}
    assert {r["severity"] for r in records if "severity" in r} == {3}
    # run.json writes several attacks as a list and one as its name, as before
    assert plain(cfg)["attack"] == ["proxy", "corruption:jpeg"] and plain(Config())["attack"] == "proxy"


@pytest.mark.parametrize("argv, message", [
    (["--attack", "proxy", "proxy"], "names an attack twice"),
    (["--attack", "blank"], "is a pass every run makes"),
    (["--attack", "corruption:jpeg", "--epsilons", "0.1"], "--epsilons applies to attacks with a epsilon"),
    (["--attack", "original_clamp", "--severities", "2"], "takes no level"),
    (["--protocol", "prompt"], "add --no-prior"),
    (["--protocol", "prompt", "--no-prior", "--samples", "2"], "leave --samples at 0"),
    (["--protocol", "prompt", "--no-prior", "--attack", "pgd"], "use --protocol answer"),
    (["--protocol", "generate"], "unknown --protocol"),
])
def test_bad_attack_and_protocol_flags_are_one_line(argv, message, capsys, tmp_path):
    from confidence_trap.cli import main

    assert main(["--model", "tiny", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not os.path.exists(tmp_path / "o")
