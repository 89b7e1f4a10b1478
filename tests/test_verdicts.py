"""Tests of issue 19's statistics: clusters, the noise floor, verdicts with a size, both entropies.

    python -m pytest -q tests/test_verdicts.py

Each test builds records with a known answer; the last recomputes the numbers from the records
with plain numpy, without calling the analysis code.
"""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from confidence_trap.analysis import verdicts as V
from confidence_trap.analysis.report import EXACT_ZERO, NO_NOISE, render_report
from confidence_trap.analysis.summary import summarize


def rec(image, h, attack="none", eps=0.0, trial=0, question="q?", answer="a", **extra):
    """One record with mean entropy h (answer-only entropy: extra["answer_entropy"] if given)."""
    return dict(image=image, question=question, prompt=f"USER: {question}", attack=attack,
                epsilon=float(eps), trial=trial, seed=trial, answer=answer, token_entropies=[h, h],
                mean_entropy=float(h), n_tokens=2, n_nonfinite=0, **extra)


def shifted(n_images=20, trials=5, shift=-0.5, sd=0.1, seed=1, copies=False, null=True, **extra):
    """Clean H per image and `trials` perturbed records at ε 0.3, Δ = shift + sd·noise; copies:
    the trials of an image are identical (one Δ per image, repeated); null: a null control that
    repeats every clean record exactly (a noise floor of 0), after the rest."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        h = 2.0 + 0.3 * rng.standard_normal()
        out.append(rec(f"im{i:02d}", h, **extra))
        d = [shift + sd * rng.standard_normal() for _ in range(max(trials, 5))]  # same draws for any T
        out += [rec(f"im{i:02d}", h + (d[0] if copies else d[t]), "proxy", 0.3, t, **extra)
                for t in range(trials)]
    return out + ([dict(r, attack="repeat") for r in out if r["attack"] == "none"] if null else [])


def entry(records, **kw):
    return summarize(records, **kw)["by_epsilon"]["0.3"]


def width(ci):
    return ci[1] - ci[0]


# --- clusters ----------------------------------------------------------------------------------

def test_identical_trials_give_the_ci_of_the_images_alone_not_a_root_five_narrower_one():
    """Five identical copies of each image's Δ carry the information of one: the cluster CI equals
    the CI of one trial per image (same draws), while the pair-level CI is about √5 narrower."""
    copies = entry(shifted(n_images=30, trials=5, copies=True, seed=4))
    alone = entry(shifted(n_images=30, trials=1, seed=4))
    assert copies["n"] == 150 and alone["n"] == 30 and copies["n_clusters"] == alone["n_clusters"] == 30
    assert copies["mean_delta"] == pytest.approx(alone["mean_delta"])
    assert copies["ci95"] == pytest.approx(alone["ci95"], rel=1e-12)
    assert width(copies["ci95_pairs"]) / width(copies["ci95"]) == pytest.approx(1 / np.sqrt(5), rel=0.25)
    # the same holds for every other CI of the entry: the AUROC, ECE and PRR ones resample items too
    assert copies["auroc_detect_ci95"] == pytest.approx(alone["auroc_detect_ci95"], rel=1e-12)


def test_identical_trials_leave_calibration_and_selective_cis_as_wide_as_the_images_alone():
    def with_refs(copies, trials):
        rs = shifted(n_images=40, trials=trials, copies=copies, seed=6)
        for i, r in enumerate(rs):  # a score and a confidence that depend on the image only
            k = int(r["image"][2:])
            r.update(correct=float(k % 3 != 0), references=["a"], seq_nll=0.1 + (k % 7) / 4)
        return entry(rs)
    copies, alone = with_refs(True, 5), with_refs(False, 1)
    assert copies["calibration"]["ece_ci95"] == pytest.approx(alone["calibration"]["ece_ci95"], rel=1e-9)
    sel_c, sel_a = copies["selective"]["mean_entropy"], alone["selective"]["mean_entropy"]
    assert sel_c["auroc_wrong_ci95"] == pytest.approx(sel_a["auroc_wrong_ci95"], rel=1e-9)
    # a copy changes the risk-coverage curve's resolution, not its shape: nearly the same width
    assert 0.8 < width(sel_c["prr_ci95"]) / width(sel_a["prr_ci95"]) < 1.25


# --- verdicts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shift, want", [(-0.5, "falls"), (+0.5, "rises")])
def test_clear_fall_and_rise(shift, want):
    e = entry(shifted(shift=shift))
    assert e["verdict"] == want and e["noise_floor"] == 0.0


@pytest.mark.parametrize("shift, way", [(-0.5, "down"), (0.5, "up")])
def test_without_a_null_control_no_verdict_is_called(shift, way):
    """A verdict needs a noise floor in its test: the same clear shift, from a run without the
    null control, is inconclusive (with its direction); so is a shift shown to lie within δ."""
    e = entry(shifted(shift=shift, null=False))
    assert e["noise_floor"] is None and e["tested"] is None and abs(e["mean_delta"]) > 0.4
    assert e["verdict"] == "inconclusive" and e["direction"] == way
    assert entry(shifted(n_images=200, shift=0.0, sd=0.002, null=False))["verdict"] == "inconclusive"
    assert entry(shifted(n_images=200, shift=0.0, sd=0.002))["verdict"] == "equivalent"


def test_a_significant_shift_of_two_thousandths_of_a_nat_is_equivalent_not_a_rise():
    e = entry(shifted(n_images=200, shift=0.002, sd=0.002, seed=2))
    assert e["ci95"][0] > 0                        # significant: the old rule called it a rise
    assert -0.01 < e["ci90"][0] and e["ci90"][1] < 0.01
    assert e["verdict"] == "equivalent"
    assert entry(shifted(n_images=200, shift=0.002, sd=0.002, seed=2), min_effect=0.001)["verdict"] == "rises"


def test_noise_gives_inconclusive():
    recs = [rec(f"im{i}", 1.0) for i in range(6)]  # Δ = ±0.3 by image: mean 0, wide CI
    recs += [rec(f"im{i}", 1.0 + 0.3 * (-1) ** i + 0.01 * t, "proxy", 0.3, t) for i in range(6) for t in range(2)]
    e = entry(recs)
    assert e["ci95"][0] < 0 < e["ci95"][1] and e["verdict"] == "inconclusive"


def with_null(records, shift):
    """records (without repeats) and a null control whose Δ_null of item i is shift(i)."""
    clean = [r for r in records if r["attack"] == "none"]
    return records + [dict(r, attack="repeat", mean_entropy=r["mean_entropy"] + shift(i)) for i, r in enumerate(clean)]


def test_a_shift_inside_the_floor_is_not_a_rise():
    """Every answer, perturbed or repeated, drifts by +0.1 nats with the batch it is generated in:
    the perturbed pass's +0.1 is the batch's, not the perturbation's. Tested against the repeat
    item by item, it is within δ; the same records beside an exact repeat are a rise."""
    recs = shifted(n_images=40, shift=0.1, sd=0.002, seed=5, null=False)
    drift = entry(with_null(recs, lambda i: 0.1 + 0.001 * (i % 3 - 1)))
    exact = entry(with_null(recs, lambda i: 0.0))
    assert exact["verdict"] == "rises" and exact["tested"]["mean"] == exact["mean_delta"]
    assert drift["mean_delta"] == exact["mean_delta"] and drift["ci95"][0] > 0.09  # the same Δ
    assert abs(drift["tested"]["mean"]) < 0.002 and drift["verdict"] == "equivalent"
    assert drift["noise_floor"] > 0.09  # the floor is shown beside it, not compared with


def test_the_null_controls_scatter_widens_the_interval():
    """A fall of 0.05 nats is called beside an exact repeat; beside a repeat that scatters by
    ±0.3 nats item to item (no shift on average), the noise is inside the test and widens it."""
    recs = shifted(n_images=40, shift=-0.05, sd=0.01, seed=5, null=False)
    exact, noisy = entry(with_null(recs, lambda i: 0.0)), entry(with_null(recs, lambda i: 0.3 * (-1) ** i))
    assert exact["verdict"] == "falls"
    assert noisy["tested"]["ci90"][1] - noisy["tested"]["ci90"][0] > 5 * (exact["ci90"][1] - exact["ci90"][0])
    assert noisy["verdict"] == "inconclusive" and noisy["ci95"] == exact["ci95"]


def test_the_rule_at_its_edges():
    """The interval decides, not the point estimate: a mean beyond δ whose 90% CI is not is
    inconclusive, with its direction where the 95% CI excludes 0."""
    assert V.verdict(0.011, (0.002, 0.020), (0.003, 0.019), 0.01, 0.0) == "inconclusive"  # issue 26
    assert V.direction((0.002, 0.020)) == "up" and V.direction((-0.02, -0.002)) == "down"
    assert V.direction((-0.001, 0.02)) is None and V.direction(None) is None
    assert V.verdict(-0.011, [-0.020, -0.002], [-0.019, -0.003], 0.01, 0.0) == "inconclusive"
    assert V.verdict(-0.03, [-0.05, -0.012], [-0.045, -0.0101], 0.01, 0.0) == "falls"
    assert V.verdict(-0.03, [-0.05, -0.008], [-0.045, -0.0099], 0.01, 0.0) == "inconclusive"  # just missed
    assert V.verdict(0.03, [0.008, 0.05], [0.0101, 0.045], 0.01, 0.0) == "rises"
    assert V.verdict(0.16, [-0.007, 0.33], [0.02, 0.30], 0.01, 0.0) == "inconclusive"  # 95% CI holds 0
    assert V.verdict(-0.03, [-0.05, -0.012], [-0.045, -0.0101], 0.01, None) == "inconclusive"  # no null
    assert V.verdict(0.0, [-0.01, 0.01], [-0.0099, 0.0099], 0.01, 0.0) == "equivalent"
    assert V.verdict(0.0, [-0.01, 0.01], [-0.0099, 0.0099], 0.01, None) == "inconclusive"  # no null
    assert V.verdict(0.0, [-0.01, 0.01], [-0.01, 0.0099], 0.01, 0.0) == "inconclusive"  # touches -δ
    assert V.verdict(None, None, None) == "inconclusive"
    assert set(V.VERDICTS) == {"falls", "rises", "equivalent", "inconclusive"}


def test_a_margin_just_missed_is_inconclusive_with_its_direction():
    """Δ = -0.0125 on average: the 95% CI lies below 0, the point below -δ, but the 90% CI
    reaches past -δ, so the run sees a fall it cannot size."""
    e = entry(shifted(n_images=60, shift=-0.0125, sd=0.04, seed=8))
    assert e["ci95"][1] < 0 and e["mean_delta"] < -0.01 and e["tested"]["ci90"][1] > -0.01
    assert e["verdict"] == "inconclusive" and e["direction"] == "down"


def test_the_default_delta_is_the_configs():
    from confidence_trap.runner.config import Config

    assert Config().min_effect == V.MIN_EFFECT
    s = summarize(shifted(n_images=4, trials=1))
    assert s["meta"]["min_effect"] == V.MIN_EFFECT and s["meta"]["verdict_rule"] == V.rule(V.MIN_EFFECT)
    assert "δ = 0.01 nats" in s["meta"]["verdict_rule"]


def test_analyze_reads_delta_from_run_json(tmp_path):
    from confidence_trap.runner.analyze import analyze_run

    with open(tmp_path / "records.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in shifted(shift=-0.05, sd=0.01))
    (tmp_path / "run.json").write_text(json.dumps({"model": "tiny", "config": {"min_effect": 0.1}}))
    s = analyze_run(str(tmp_path), n_boot=200, figures=False)
    assert s["meta"]["min_effect"] == 0.1 and s["by_epsilon"]["0.3"]["verdict"] != "falls"
    s = analyze_run(str(tmp_path), n_boot=200, figures=False, min_effect=0.01)  # --min-effect wins
    assert s["meta"]["min_effect"] == 0.01 and s["by_epsilon"]["0.3"]["verdict"] == "falls"
    (tmp_path / "run.json").write_text(json.dumps({"config": {"min_effect": "big"}}))
    with pytest.raises(ValueError, match="min_effect"):
        analyze_run(str(tmp_path), n_boot=200, figures=False)


# --- the noise floor ---------------------------------------------------------------------------

def test_noise_block_from_repeats():
    recs = shifted(n_images=10, trials=2, null=False)
    clean = [r for r in recs if r["attack"] == "none"]
    null = [0.001 * (i - 4) for i in range(10)]                   # -0.004 .. +0.005
    repeats = [dict(r, attack="repeat", mean_entropy=r["mean_entropy"] + d, answer="b" if i < 3 else "a")
               for i, (r, d) in enumerate(zip(clean, null))]
    s = summarize(recs + repeats)
    n = s["noise"]
    assert n["n"] == n["n_clusters"] == 10 and n["exact_zero"] is False
    assert n["mean_delta"] == pytest.approx(np.mean(null)) and n["max_abs_delta"] == pytest.approx(0.005)
    assert n["answers_changed"] == pytest.approx(0.3)
    assert n["floor"] == pytest.approx(max(abs(n["ci95"][0]), abs(n["ci95"][1])))
    assert n["ci95"][0] < np.mean(null) < n["ci95"][1] and n["answer_entropy"] is None
    assert s["by_epsilon"]["0.3"]["noise_floor"] == n["floor"] == s["meta"]["noise_floor"]
    text = render_report(s, {})
    assert "The noise floor" in text and NO_NOISE.split(".")[0] not in text


def test_an_exactly_zero_noise_floor_is_said_so():
    recs = shifted(n_images=8, trials=2, answer_entropy=1.0, null=False)
    repeats = [dict(r, attack="repeat") for r in recs if r["attack"] == "none"]
    s = summarize(recs + repeats)
    n = s["noise"]
    assert n["exact_zero"] is True and n["floor"] == 0.0 and n["max_abs_delta"] == 0.0
    assert n["ci95"] == [0.0, 0.0] and n["answers_changed"] == 0.0
    assert n["answer_entropy"]["exact_zero"] is True
    assert " ".join(EXACT_ZERO.split()) in " ".join(render_report(s, {}).split())


def test_without_repeats_there_is_no_noise_floor_and_the_report_says_so():
    s = summarize(shifted(n_images=5, trials=2, null=False))
    assert s["noise"] is None and s["meta"]["noise_floor"] is None
    assert s["by_epsilon"]["0.3"]["noise_floor"] is None
    assert " ".join(NO_NOISE.split()) in " ".join(render_report(s, {}).split())


def test_repeat_and_blank_never_enter_by_attack_or_the_clean_statistics():
    recs = shifted(n_images=8, trials=2, null=False)
    extra = [dict(r, attack=a, mean_entropy=r["mean_entropy"] + 0.7, answer="x")
             for r in recs if r["attack"] == "none" for a in ("repeat", "blank")]
    plain, both = summarize(recs), summarize(recs + extra)
    assert sorted(both["by_attack"]) == ["proxy"] == both["meta"]["attacks"] and "by_epsilon" in both
    assert both["clean"] == plain["clean"] and both["token_profile"] == plain["token_profile"]
    strip = lambda e: {k: v for k, v in e.items() if k not in ("noise_floor", "verdict", "tested", "direction")}  # noqa: E731
    assert strip(both["by_epsilon"]["0.3"]) == strip(plain["by_epsilon"]["0.3"])
    assert both["noise"]["n"] == 8 and both["meta"]["n_unpaired"] == 0


def test_each_question_kind_is_checked_against_its_own_noise_floor():
    """Photo runs split by question kind: one-word answers may repeat exactly while open-ended ones
    drift, so each category's verdicts use the category's own null control."""
    recs = []
    for kind, drift in (("one-word", 0.0), ("open-ended", 0.6)):
        part = shifted(n_images=12, shift=-0.2, sd=0.02, category=kind, question=kind, null=False)
        recs += with_null(part, lambda i: drift * (-1) ** i)  # open-ended: ±0.6 item to item
    cats = summarize(recs)["by_category"]
    one, open_ = (cats[k]["by_attack"]["proxy"]["by_epsilon"]["0.3"] for k in ("one-word", "open-ended"))
    assert cats["one-word"]["noise"]["exact_zero"] and one["noise_floor"] == 0.0 and one["verdict"] == "falls"
    assert cats["open-ended"]["noise"]["floor"] > 0.1 and open_["verdict"] == "inconclusive"


# --- both entropies ----------------------------------------------------------------------------

def test_answer_entropy_gets_its_own_delta_ci_and_verdict():
    recs = shifted(n_images=20, shift=-0.5)
    for r in recs:  # the answer-only entropy moves twice as far, and one answer has none
        r["answer_entropy"] = 2 * r["mean_entropy"]
    recs[1]["answer_entropy"] = None
    s = summarize(recs)
    e, a = s["by_epsilon"]["0.3"], s["by_epsilon"]["0.3"]["answer_entropy"]
    assert a["n"] == e["n"] - 1 and a["n_clusters"] == 20
    pairs = {(r["image"], r["trial"]): r["mean_entropy"] for r in recs if r["attack"] == "proxy"}
    clean = {r["image"]: r["mean_entropy"] for r in recs if r["attack"] == "none"}
    d = [2 * (h - clean[img]) for (img, t), h in pairs.items() if (img, t) != (recs[1]["image"], 0)]
    assert a["mean_delta"] == pytest.approx(np.mean(d))
    assert a["verdict"] == "falls" and a["ci95"][1] < 0 and a["noise_floor"] == 0.0
    assert s["clean"]["mean_answer_entropy"] == pytest.approx(2 * s["clean"]["mean_entropy"])


# --- an independent recomputation --------------------------------------------------------------

def recompute(records, attack, eps, seed=0, n_boot=1000, delta=0.01):
    """n_clusters, mean Δ, the crossed-bootstrap CIs, the noise floor, the tested CIs and the
    verdict, from records with plain numpy. The draws mirror confidence_trap/analysis/clusters.py's
    documented order: images and questions each sorted, images of resample b row b of
    default_rng([seed, crc32("cluster_mean|<tag>|images")]).integers(0, I, (n_boot, I)), questions
    the same from "questions", an item's weight the product of its image's and its question's
    draw counts; statistic = weighted Δ sums / weighted pair counts. The tag is "<attack>|<ε key>"
    for Δ and Δ - Δ_null alike, "noise|mean_entropy" for the null control."""
    def boot(groups, tag):
        keys = sorted(groups)
        images, questions = sorted({k[0] for k in keys}), sorted({k[1] for k in keys})
        img = np.array([images.index(k[0]) for k in keys])
        qst = np.array([questions.index(k[1]) for k in keys])
        sums = np.array([sum(groups[k]) for k in keys])
        sizes = np.array([len(groups[k]) for k in keys])

        def counts(name, m):
            rng = np.random.default_rng([seed, zlib.crc32(f"cluster_mean|{tag}|{name}".encode())])
            draws = rng.integers(0, m, size=(n_boot, m))
            return np.array([np.bincount(row, minlength=m) for row in draws])
        w = counts("images", len(images))[:, img] * (counts("questions", len(questions))[:, qst]
                                                     if len(questions) > 1 else 1)
        means = (w * sums).sum(axis=1) / (w * sizes).sum(axis=1)
        return len(keys), int(sizes.sum()), sums.sum() / sizes.sum(), means

    clean = {(r["image"], r["question"]): r["mean_entropy"] for r in records if r["attack"] == "none"}
    groups, null = {}, {}
    for r in records:
        item = (r["image"], r["question"])
        if r["attack"] == attack and r["epsilon"] == eps:
            groups.setdefault(item, []).append(r["mean_entropy"] - clean[item])
        elif r["attack"] == "repeat":
            null.setdefault(item, []).append(r["mean_entropy"] - clean[item])
    k, n, mean, means = boot(groups, f"{attack}|{eps!r}")
    out = {"n_clusters": k, "n": n, "mean_delta": mean, "ci95": list(np.percentile(means, [2.5, 97.5])),
           "ci90": list(np.percentile(means, [5, 95])), "noise_floor": None, "tested": None,
           "verdict": "inconclusive"}
    if null:
        _, _, _, nulls = boot(null, "noise|mean_entropy")
        exact = not any(d != 0 for v in null.values() for d in v)
        out["noise_floor"] = 0.0 if exact else max(abs(x) for x in np.percentile(nulls, [2.5, 97.5]))
        shifted_ = {u: [d - np.mean(null[u]) for d in v] for u, v in groups.items() if u in null}
        _, _, t_mean, t_means = boot(shifted_, f"{attack}|{eps!r}")
        lo, hi = np.percentile(t_means, [5, 95])
        out["tested"] = {"mean": t_mean, "ci90": [lo, hi]}
        out["verdict"] = ("falls" if hi < -delta else "rises" if lo > delta else
                          "equivalent" if -delta < lo and hi < delta else "inconclusive")
    return out


@pytest.mark.parametrize("shift, delta, null", [(-0.3, 0.01, None), (0.004, 0.01, None), (0.02, 0.05, None),
                                                (-0.3, 0.01, 0.0), (-0.3, 0.01, 0.35), (0.004, 0.01, 0.0)])
def test_summary_equals_an_independent_recomputation(shift, delta, null):
    rng = np.random.default_rng(9)
    records = []
    for i in range(25):
        for q in ("What colour?", "How many?"):            # two items per image: 50 items, crossed
            h = float(rng.uniform(1, 2))
            records.append(rec(f"img{i}", h, question=q))
            if null is not None:                            # the null control: one repeat an item
                records.append(rec(f"img{i}", h + null * (1 + 0.1 * (i % 3)), "repeat", question=q))
            for t in range(int(rng.integers(1, 6))):       # unbalanced: 1-5 trials an item
                records.append(rec(f"img{i}", h + shift + float(rng.normal(0, 0.05)) * (1 + i % 4),
                                   "proxy", 0.3, t, question=q))
    rng.shuffle(records)  # file order must not matter
    got = summarize(list(records), seed=7, min_effect=delta)["by_epsilon"]["0.3"]
    want = recompute(records, "proxy", 0.3, seed=7, delta=delta)
    for key in ("n_clusters", "n", "verdict"):
        assert got[key] == want[key], key
    for key in ("mean_delta", "ci95", "ci90", "noise_floor"):
        if want[key] is None:  # no null control: no floor
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    if want["tested"] is not None:
        assert got["tested"]["mean"] == pytest.approx(want["tested"]["mean"], rel=1e-9, abs=1e-12)
        assert got["tested"]["ci90"] == pytest.approx(want["tested"]["ci90"], rel=1e-9, abs=1e-12)
    if shift == -0.3:  # a clear fall, unless there is no null control: then nothing is called
        assert got["verdict"] == ("inconclusive" if null is None else "falls")
