"""Tests of analysis/ and experiments/analyze.py on synthetic records with known answers.

    python -m pytest tests/test_analysis.py -q
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats as st

import probes
from confidence_trap.analysis.figures import render_figures
from confidence_trap.analysis.report import render_report
from confidence_trap.analysis.levels import eps_key
from confidence_trap.analysis.summary import summarize, token_position_profile
from confidence_trap.analysis.stats import auroc, bootstrap_auroc_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG = b"\x89PNG\r\n\x1a\n"


def rec(image, h, attack="none", eps=0.0, trial=0, question="q?", **extra):
    """One record with a constant per-token entropy h (or None = no finite entropy)."""
    toks = None if h is None else [float(h)] * 3
    r = dict(image=image, question=question, prompt=f"USER: {question}", attack=attack,
             epsilon=float(eps), trial=trial, seed=trial, answer="a", token_entropies=toks,
             mean_entropy=None if h is None else float(h), n_tokens=3, n_nonfinite=0)
    r.update(extra)
    return r


def falling_records(n_images=20, n_trials=5, shift=-0.5, sd=0.1, eps=0.3, seed=1):
    """Clean and perturbed records, Δ = shift + sd·noise, and a null control that repeats every
    clean record exactly (a noise floor of 0)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        h = 2.0 + 0.3 * rng.standard_normal()
        out.append(rec(f"im{i}", h))
        out += [rec(f"im{i}", h + shift + sd * rng.standard_normal(), "proxy", eps, t)
                for t in range(n_trials)]
    return out + [dict(r, attack="repeat") for r in out if r["attack"] == "none"]


def hand_records():
    """Clean H = 1..5; perturbed H = 0.5, 0.5, 0.5, 6 with known correctness."""
    clean = [rec(f"im{i}", h, references=["a"], correct=c)
             for i, (h, c) in enumerate(zip([1, 2, 3, 4, 5], [True, True, False, True, False]))]
    pert = [rec(f"im{i}", h, "proxy", 0.3, 0, references=["a"], correct=c)
            for i, (h, c) in enumerate(zip([0.5, 0.5, 0.5, 6], [False, True, False, False]))]
    return clean + pert


def test_eps_key_round_trips():
    assert eps_key(0.3) == "0.3" and eps_key(0.1) == "0.1" and eps_key(0) == "0.0"
    assert eps_key(8 / 255) == repr(8 / 255) and float(eps_key(8 / 255)) == 8 / 255
    assert eps_key(json.loads(json.dumps(8 / 255))) == eps_key(8 / 255)


def test_known_negative_shift():
    e = summarize(falling_records())["by_epsilon"]["0.3"]
    assert e["n"] == 100 and e["n_clusters"] == 20
    assert e["mean_delta"] == pytest.approx(-0.5, abs=0.03)
    assert e["frac_negative"] == 1.0
    assert e["ci95"][0] < -0.5 < e["ci95"][1] and e["ci95"][1] < 0
    assert e["wilcoxon_p"] == pytest.approx(2 / 2 ** 20)  # 20 item means, all negative: the exact p
    assert e["verdict"] == "falls"
    assert e["auroc_detect"] < 0.2  # perturbed look more confident than clean


def test_verdict_rises_and_no_change():
    up = summarize(falling_records(shift=+0.5))["by_epsilon"]["0.3"]
    assert up["verdict"] == "rises" and up["ci95"][0] > 0
    flat = summarize(falling_records(shift=0.0, sd=0.0))["by_epsilon"]["0.3"]
    assert flat["mean_delta"] == 0.0 and flat["wilcoxon_p"] is None
    assert flat["verdict"] == "equivalent"  # exactly no change: shown to lie within δ


def test_auroc_known_values():
    assert auroc([0, 1, 2], [3, 4, 5]) == 1.0
    assert auroc([3, 4, 5], [0, 1, 2]) == 0.0
    assert auroc([1, 1, 1], [1, 1, 1]) == 0.5
    # pos 2: beats 1, ties 2 -> 1.5; pos 3: beats 1, 2, ties 3 -> 2.5; pos 4: beats all -> 3
    assert auroc([1, 2, 3], [2, 3, 4]) == pytest.approx(7 / 9)
    assert auroc([], [1.0]) is None
    assert bootstrap_auroc_ci([0, 1, 2], [3, 4, 5]) == [1.0, 1.0]
    assert bootstrap_auroc_ci([1, 1, 1], [1, 1]) == [0.5, 0.5]
    lo, hi = bootstrap_auroc_ci([1, 2, 3, 2], [2, 3, 4, 3])
    assert 0 <= lo < auroc([1, 2, 3, 2], [2, 3, 4, 3]) < hi <= 1


def test_pass_rates_and_inverted_safety():
    e = summarize(hand_records())["by_epsilon"]["0.3"]
    pr, inv = e["pass_rate"], e["inverted_safety"]
    point = {p: {k: v[k] for k in ("clean", "perturbed", "tau")} for p, v in pr.items()}
    assert point["p50"] == {"clean": 0.6, "perturbed": 0.75, "tau": 3.0}
    assert point["p75"] == {"clean": 0.8, "perturbed": 0.75, "tau": 4.0}
    assert pr["p90"]["tau"] == pytest.approx(4.6) and pr["p90"]["clean"] == 0.8
    # more perturbed than clean pass at p50 (75% against 60%), but on 5 images the CI holds the
    # margin: a point comparison is not an inversion
    assert pr["p50"]["difference"] == pytest.approx(0.15) and pr["p50"]["margin"] == pytest.approx(0.2)
    assert pr["p50"]["verdict"] == "inconclusive" and inv == {"p50": False, "p75": False, "p90": False, "p95": False}


def test_confidently_wrong_and_accuracy():
    s = summarize(hand_records())
    e = s["by_epsilon"]["0.3"]
    # wrong and H <= τ: 0.5 (wrong), 0.5 (wrong) -> 2 of 4 at every τ in [3, 4.8]
    assert e["confidently_wrong"] == {"p50": 0.5, "p75": 0.5, "p90": 0.5, "p95": 0.5}
    assert e["accuracy_clean"] == 0.6 and e["accuracy_perturbed"] == 0.25
    assert s["clean"]["accuracy"] == 0.6
    # wrong = positive: [0.5, 0.5, 6] vs right [0.5] -> (0.5 + 0.5 + 1) / 3
    assert e["auroc_wrong_perturbed"] == pytest.approx(2 / 3)
    # clean wrong [3, 5] vs right [1, 2, 4] -> (2 + 3) / 6
    assert e["auroc_wrong_clean"] == pytest.approx(5 / 6)
    one_class = [r for r in hand_records() if r["correct"] or r["attack"] == "none"]
    assert summarize(one_class)["by_epsilon"]["0.3"]["auroc_wrong_perturbed"] is None


def test_nonfinite_records_are_excluded_and_listed():
    base = falling_records()
    bad = [dict(rec("im0", 9.0, "proxy", 0.3, 7), n_nonfinite=2),
           rec("im1", None, "proxy", 0.3, 8), dict(rec("im2", 9.0), n_nonfinite=1,
                                                   question="other?")]
    s0, s1 = summarize(base), summarize(base + bad)
    assert s1["nonfinite"]["count"] == 3
    assert {"image": "im0", "attack": "proxy", "epsilon": 0.3, "trial": 7} in \
        s1["nonfinite"]["records"]
    assert s1["by_epsilon"] == s0["by_epsilon"] and s1["clean"] == s0["clean"]
    assert s1["meta"]["n_records"] == len(base) + 3 and s1["meta"]["n_valid"] == len(base)


def test_every_number_matches_direct_recomputation():
    rng = np.random.default_rng(7)
    records = []
    for i in range(12):
        h = float(rng.uniform(1, 3))
        records.append(rec(f"im{i}", h, correct=bool(i % 3), references=["x"]))
        for t in range(4):
            for eps in (0.1, 0.3):
                records.append(rec(f"im{i}", h + float(rng.normal(-eps, 0.4)), "proxy", eps,
                                   t, correct=bool((i + t) % 2), references=["x"]))
    e = summarize(records, seed=3)["by_epsilon"]["0.1"]
    clean = {r["image"]: r["mean_entropy"] for r in records if r["attack"] == "none"}
    pert = [r for r in records if r["attack"] == "proxy" and r["epsilon"] == 0.1]
    d = np.array([r["mean_entropy"] - clean[r["image"]] for r in pert])
    hc, ha = np.array(list(clean.values())), np.array([r["mean_entropy"] for r in pert])
    assert e["n"] == len(d) == 48
    assert e["mean_delta"] == pytest.approx(d.mean())
    assert e["median_delta"] == pytest.approx(np.median(d))
    assert e["std_delta"] == pytest.approx(d.std(ddof=1))
    assert e["frac_negative"] == pytest.approx(np.mean(d < 0))
    assert sorted(e["deltas"]) == pytest.approx(sorted(d))
    per_img = [d[[r["image"] == f"im{i}" for r in pert]].mean() for i in range(12)]
    assert e["wilcoxon_p"] == pytest.approx(st.wilcoxon(per_img).pvalue)  # on item means
    per_trial = [d[[r["trial"] == t for r in pert]].mean() for t in range(4)]
    assert e["spread_images"] == pytest.approx(np.std(per_img, ddof=1))
    assert e["spread_trials"] == pytest.approx(np.std(per_trial, ddof=1))
    pairs = [(a > c) + 0.5 * (a == c) for a in ha for c in hc]  # brute-force AUROC
    assert e["auroc_detect"] == pytest.approx(np.mean(pairs))
    assert e["auroc_detect_ci95"][0] <= e["auroc_detect"] <= e["auroc_detect_ci95"][1]
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))  # bootstrap CI ≈ normal CI
    assert e["ci95"][0] == pytest.approx(d.mean() - half, abs=0.3 * half)
    assert e["ci95"][1] == pytest.approx(d.mean() + half, abs=0.3 * half)
    for p in (50, 75, 90, 95):
        tau = np.percentile(hc, p)
        r = e["pass_rate"][f"p{p}"]
        assert [r["tau"], r["clean"], r["perturbed"]] == pytest.approx([tau, np.mean(hc <= tau), np.mean(ha <= tau)])
        assert r["difference"] == pytest.approx(np.mean(ha <= tau) - np.mean(hc <= tau))
        assert r["difference_ci90"][0] <= r["difference"] <= r["difference_ci90"][1]
        assert e["inverted_safety"][f"p{p}"] == (r["verdict"] == "inverted")
        wrong = np.array([not r["correct"] for r in pert])
        assert e["confidently_wrong"][f"p{p}"] == pytest.approx(np.mean(wrong & (ha <= tau)))
    assert e["accuracy_perturbed"] == pytest.approx(np.mean([r["correct"] for r in pert]))
    wrong_pairs = [(a > c) + 0.5 * (a == c) for a, w in zip(ha, wrong) if w
                   for c, w2 in zip(ha, wrong) if not w2]
    assert e["auroc_wrong_perturbed"] == pytest.approx(np.mean(wrong_pairs))


def test_summary_is_order_independent_and_plain_json():
    records = falling_records(n_images=6, n_trials=3)
    s1 = summarize(records, seed=5)
    s2 = summarize(records[::-1], seed=5)
    assert json.dumps(s1, sort_keys=True) == json.dumps(s2, sort_keys=True, allow_nan=False)


def test_several_attacks_probes_and_corruption_severity():
    records = falling_records(n_images=6, n_trials=2)
    for r in records:  # max-prob rises when entropy falls: perturbed look more confident
        r["mean_max_prob"] = 1.0 / (1.0 + r["mean_entropy"])
        r["max_entropy"] = r["mean_entropy"] + 0.1
    records += [dict(rec(f"im{i}", 2.5, "corruption:gaussian_noise", 0.0, 0), severity=3)
                for i in range(6)]
    s = summarize(records)
    assert "by_epsilon" not in s and sorted(s["by_attack"]) == [
        "corruption:gaussian_noise", "proxy"]
    corr = s["by_attack"]["corruption:gaussian_noise"]
    assert corr["grouped_by"] == "severity" and list(corr["by_epsilon"]) == ["3"]
    pr = s["by_attack"]["proxy"]["by_epsilon"]["0.3"]["probes"]
    assert set(pr) == {"mean_max_prob", "max_entropy"} and "mean_entropy" not in pr
    assert pr["mean_max_prob"]["mean_delta"] > 0
    assert pr["mean_max_prob"]["auroc_detect"] < 0.2  # sign flipped: confident = unsuspicious
    assert s["meta"]["probes"] == [k for k in probes.names() if k in pr]


def test_token_position_profile():
    records = [rec("a", 1.0), rec("b", 3.0), rec("a", 0.5, "proxy", 0.1, 0)]
    records[1]["token_entropies"] = [3.0, 3.0, 3.0, 3.0]
    p = token_position_profile(records)
    assert p["clean"] == {"mean": [2.0, 2.0, 2.0, 3.0], "n": [2, 2, 2, 1]}
    assert p["by_attack"]["proxy"]["0.1"]["mean"] == [0.5, 0.5, 0.5]


def test_report_names_run_and_conventions():
    s = summarize(falling_records(n_images=5, n_trials=2))
    text = render_report(s, {"model": "tiny", "dtype": "float32", "device": "cpu"})
    assert "model: tiny" in text and "dtype: float32" in text and "device: cpu" in text
    assert "ε = 0.3 (≈77/255)" in text and "falls" in text
    assert "INV" in text and s["meta"]["verdict_rule"] in " ".join(text.split())
    assert text == render_report(s, {"model": "tiny", "dtype": "float32", "device": "cpu"})


def test_committed_report_is_what_the_summary_renders():
    """results/entropy_report.txt is render_report of the summary and run.json beside it, byte for
    byte: the report holds no timestamp and the tables format every number."""
    def read(name):
        with open(os.path.join(ROOT, "results", name), encoding="utf-8") as f:
            return f.read()
    assert render_report(json.loads(read("summary.json")), json.loads(read("run.json"))) == \
        read("entropy_report.txt")


ORIGINAL = {"model": "LLaVA-1.5-7B", "dtype": "float16", "hardware": "NVIDIA T4 16 GB",
            "rows": [{"epsilon": 0.1, "delta": 0.0}, {"epsilon": 0.3, "delta": -0.028}]}


def test_figures_are_valid_deterministic_pngs(tmp_path):
    s = summarize(falling_records(n_images=5, n_trials=2))
    paths = render_figures(s, str(tmp_path / "a"), {"model": "tiny", "device": "cpu"}, ORIGINAL)
    again = render_figures(s, str(tmp_path / "b"), {"model": "tiny", "device": "cpu"}, ORIGINAL)
    assert [os.path.basename(p) for p in paths] == [
        "figure_1_epsilon_delta.png", "figure_2_defense.png", "figure_3_token_entropy.png",
        "figure_4_reliability.png", "figure_5_risk_coverage.png", "figure_6_prior.png"]
    for p, q in zip(paths, again):
        data = open(p, "rb").read()
        assert data[:8] == PNG and len(data) > 5000 and data == open(q, "rb").read()
    assert sorted(os.listdir(tmp_path / "a")) == sorted(os.path.basename(p) for p in paths)
    plain = render_figures(s, str(tmp_path / "c"), {"model": "tiny", "device": "cpu"})
    assert open(plain[0], "rb").read() != open(paths[0], "rb").read()  # the study's series shows


@pytest.mark.parametrize("attack", ["proxy", "pgd"])
def test_figure_1_keeps_the_original_study_apart_and_labelled(attack):
    """The study's reported Δ is in a panel of its own, never on our axes (another model,
    precision and image set), its title naming it as the study's, model and precision."""
    from confidence_trap.analysis.figures import figure_epsilon_delta

    records = falling_records(n_images=5, n_trials=2)
    for r in (r for r in records if r["attack"] != "none"):
        r["attack"] = attack
    fig = figure_epsilon_delta(summarize(records), {"model": "tiny", "device": "cpu"}, ORIGINAL)
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert legends == [["mean Δ, 95% CI"], ["the study, as reported"]]
    ours, theirs = fig.axes
    assert ours.get_title().startswith("this run") and not ours.collections[0].get_offsets().size == 0
    assert theirs.get_title() == "the study: LLaVA-1.5-7B, float16 (not ours)"
    line = next(ln for ln in theirs.get_lines() if ln.get_label() == "the study, as reported")
    assert list(line.get_xdata()) == [0.1, 0.3] and list(line.get_ydata()) == [0.0, -0.028]
    assert not any(ln.get_color() == "tab:red" for ln in ours.get_lines())


def _cli(args, cwd=ROOT):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_missing_and_empty_input_exit_2(tmp_path, capsys):
    r = _cli(["experiments/analyze.py", "--out", str(tmp_path / "nothing")])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    from confidence_trap.runner.analyze import main
    (tmp_path / "records.jsonl").write_text("\n")
    assert main(["--out", str(tmp_path)]) == 2
    assert "no records" in capsys.readouterr().err


@pytest.mark.slow  # a subprocess: the slow tier
def test_cli_rebuilds_outputs_without_torch(tmp_path):
    with open(tmp_path / "records.jsonl", "w") as f:
        for r in falling_records(n_images=5, n_trials=2):
            f.write(json.dumps(r) + "\n")
    (tmp_path / "run.json").write_text(json.dumps({"model": "tiny", "device": "cpu"}))
    code = ("import runpy, sys\n"
            "sys.argv = ['analyze.py', '--out', sys.argv[1], '--bootstrap', '500']\n"
            "try:\n    runpy.run_path('experiments/analyze.py', run_name='__main__')\n"
            "except SystemExit as e:\n    print('EXIT', e.code, 'torch' in sys.modules)\n")
    r = _cli(["-c", code, str(tmp_path)])
    assert "EXIT 0 False" in r.stdout, r.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["by_epsilon"]["0.3"]["verdict"] == "falls"
    assert "model: tiny" in (tmp_path / "entropy_report.txt").read_text()
    assert len(os.listdir(tmp_path / "figures")) == 6


# --- the floor, calibration, selective prediction and categories (issues 14-16) -----------------

def quality_records(seed=11):
    """Clean and perturbed records with references, probes and categories: scores in {0, 0.3, 1}."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(16):
        h = float(rng.choice([0.002, 0.004, 0.5, 1.2]))
        for attack, eps, t in [("none", 0.0, 0)] + [("proxy", 0.3, t) for t in range(3)]:
            hh = max(0.0, h + (0 if attack == "none" else float(rng.normal(0.1, 0.3))))
            score = float(rng.choice([0.0, 0.3, 1.0], p=[0.3, 0.1, 0.6]))
            out.append(rec(f"im{i}", hh, attack, eps, t, references=["x"], correct=score,
                           seq_nll=float(rng.uniform(0, 3)), mean_max_prob=float(rng.uniform(0.2, 1)),
                           category="ab"[i % 2]))
    return out


def test_floor_keys_equal_a_recomputation():
    records = quality_records()
    e = summarize(records, seed=0)["by_epsilon"]["0.3"]
    clean = {r["image"]: r["mean_entropy"] for r in records if r["attack"] == "none"}
    pert = [r for r in records if r["attack"] == "proxy"]
    hc = np.array([clean[r["image"]] for r in pert])
    ha = np.array([r["mean_entropy"] for r in pert])
    f = e["floor"]
    assert f["share_clean_below_0.01"] == pytest.approx(np.mean(hc < 0.01))
    assert f["delta_bound"] == pytest.approx(-hc.mean())
    assert f["mean_log_ratio"] == pytest.approx(np.mean(np.log((ha + 1e-3) / (hc + 1e-3))))
    assert f["majority_at_floor"] == bool(np.mean(hc < 0.01) > 0.5)
    assert e["mean_delta"] >= f["delta_bound"]  # the floor bounds the mean Δ from below


def _ece(conf, y):
    bins = np.minimum((np.asarray(conf) * 10).astype(int), 9)  # no value here sits on an edge
    return sum(abs(np.mean(y[bins == b]) - np.mean(conf[bins == b])) * np.mean(bins == b)
               for b in range(10) if (bins == b).any())


def _aurc(u, loss):
    order = np.argsort(u, kind="stable")
    return np.mean([loss[order[:k]].sum() / k for k in range(1, len(u) + 1)])


def test_calibration_and_selective_equal_a_recomputation_from_the_records():
    records = quality_records()
    s = summarize(records, seed=0)
    canonical = sorted(records, key=lambda r: (r["image"], r["trial"]))  # ties keep this order
    for block, recs in ((s["clean"], [r for r in canonical if r["attack"] == "none"]),
                        (s["by_epsilon"]["0.3"], [r for r in canonical if r["attack"] == "proxy"])):
        y = np.array([r["correct"] for r in recs])
        conf = np.exp(-np.array([r["seq_nll"] for r in recs]))
        cal = block["calibration"]
        assert cal["confidence"] == "sequence_prob" and cal["n"] == len(recs)
        assert cal["ece"] == pytest.approx(_ece(conf, y))
        assert cal["brier"] == pytest.approx(np.mean((conf - y) ** 2))
        assert cal["overconfidence"] == pytest.approx(conf.mean() - y.mean())
        assert cal["ece_ci95"][0] <= cal["ece"] <= cal["ece_ci95"][1]
        mp = np.array([r["mean_max_prob"] for r in recs])
        assert block["calibration_max_prob"]["ece"] == pytest.approx(_ece(mp, y))
        loss = 1 - y
        for key, u in (("mean_entropy", np.array([r["mean_entropy"] for r in recs])),
                       ("mean_max_prob", -mp)):  # a probability: higher = more confident, so negated
            sel = block["selective"][key]
            a, rand, orc = _aurc(u, loss), loss.mean(), _aurc(loss, loss)
            assert sel["aurc"] == pytest.approx(a) and sel["aurc_random"] == pytest.approx(rand)
            assert sel["prr"] == pytest.approx((rand - a) / (rand - orc))


def test_by_category_repeats_every_number_for_each_category():
    records = quality_records()
    s = summarize(records, seed=0)
    assert sorted(s["by_category"]) == ["a", "b"]
    for c in "ab":
        sub = [r for r in records if r["category"] == c]
        assert s["by_category"][c]["clean"]["n"] == sum(r["attack"] == "none" for r in sub)
        got = s["by_category"][c]["by_attack"]["proxy"]["by_epsilon"]["0.3"]
        want = summarize(sub, seed=0)["by_epsilon"]["0.3"]
        for key in ("n", "mean_delta", "median_delta", "wilcoxon_p", "auroc_detect", "floor",
                    "accuracy_perturbed", "auroc_wrong_perturbed"):
            assert got[key] == want[key], key
        assert got["calibration"]["ece"] == pytest.approx(want["calibration"]["ece"])
        # CIs draw from streams tagged by category, so they differ; every point estimate agrees
        strip = lambda d: {k: v for k, v in d.items() if not k.endswith("_ci95") and k != "inverted"}  # noqa: E731
        assert strip(got["selective"]["mean_entropy"]) == strip(want["selective"]["mean_entropy"])


def test_controls_side_by_side_show_each_runs_delta_and_the_ci_its_verdict_reads():
    from confidence_trap.analysis.tables import ci, pct, side_by_side, signed

    low, high = summarize(falling_records(n_images=6, n_trials=2, shift=-0.4)), summarize(
        falling_records(n_images=6, n_trials=2, shift=0.3))
    info = {"model": "tiny", "dtype": "float32", "device": "cpu"}
    t = side_by_side({"entropy_min": (low, info), "proxy": (high, info)})
    assert [r[0] for r in t.rows] == ["entropy_min", "proxy"] and t.label == "Our runs entropy_min, proxy: model tiny, float32 on cpu, run of n/a."  # stated once
    for row, s in zip(t.rows, (low, high)):
        e = s["by_epsilon"]["0.3"]
        assert row[3:] == [str(e["n"]), str(e["n_clusters"]), signed(e["mean_delta"]), ci(e["ci95"]),
                           ci(e["tested"]["ci90"]), e["verdict"], pct(e["floor"]["share_clean_below_0.01"])]
        assert e["noise_floor"] == 0.0  # the null control repeats every clean record exactly
        assert e["tested"]["mean"] == e["mean_delta"]  # so Δ − Δ_null is Δ
    assert t.rows[0][8] == "falls" and t.rows[1][8] == "rises"
