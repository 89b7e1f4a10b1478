"""summary["original"], its report section, figure 7 and the README's first table, on synthetic
records that follow the record contract of issue 25 (python -m pytest -q tests/test_original_analysis.py).

The block is checked against a recomputation from the records with plain Python: the clean values
and every mean Δ by position kind, the decomposition (clamp, noise, both), σ = ε/10 and where the
original has runs, the per-trial Δs, and the one-cluster statement (no interval from one image).
Prompt-only summaries (the original protocol generates nothing) must render a report and figures,
and the docs must lay the four sources of the README's first table side by side, each labelled."""
import json
import math
import os
import random
import re
import shutil

import numpy as np
import pytest
from matplotlib.text import Text

from confidence_trap.analysis import clusters as C
from confidence_trap.analysis.figures import render_figures
from confidence_trap.analysis.plot import MIN_PT, TEXT_WIDTH_IN
from confidence_trap.analysis.figures_original import FIGURE_NAME, figure_original, render_original_figure
from confidence_trap.analysis.original import ONE_CLUSTER, beyond_one_image, clamp_pixels
from confidence_trap.analysis.original_text import clean_line
from confidence_trap.analysis.report import render_report
from confidence_trap.analysis.summary import summarize
from confidence_trap.analysis.tables import fixed, num, signed
from confidence_trap.docs.build import main as render_docs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(REPO, "paper", "original_study.json"), encoding="utf-8") as f:
    STUDY = json.load(f)
CODE = STUDY["code"]
LOGO = "data/original/llava_logo.png"
QUESTION = "Describe this image in detail."
FIELDS = {"all": "prompt_entropy", "image": "prompt_entropy_image", "text": "prompt_entropy_text",
          "last": "prompt_entropy_last"}
PARTS = {"clamp": "original_clamp", "noise": "original_noise_unclamped", "both": "original_noise"}
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
INFO = {"model": "tiny", "model_id": "models/tiny-llava", "dtype": "float32", "device": "cpu",
        "device_name": "CPU (Test CPU, 2 cores)", "started": "2030-01-02T03:04:05+0000", "git_commit": "0123456789abcdef",
        "command": "entropy_analysis.py --config configs/original.yaml --model tiny", "image_mean": MEAN, "image_std": STD}


def records(images=(LOGO,), eps=(0.1, 0.2, 0.3, 0.5), trials=5, seed=0, answers=False):
    """Records as the contract writes them: a clean, a repeat and an original_clamp record per
    image (level kind none, ε null, σ 0), and per ε `trials` draws of each noise attack."""
    rng = random.Random(seed)

    def rec(img, attack, e, t, h, sigma=None):
        r = dict(image=img, question=QUESTION, prompt="<image>\nDescribe this image in detail.",
                 attack=attack, attack_name=attack, epsilon=e, trial=t, seed=t, n_nonfinite=0,
                 level_kind="epsilon" if attack in ("original_noise", "original_noise_unclamped") else "none",
                 n_positions=49, n_image_positions=36, **{f: v for f, v in zip(FIELDS.values(), h)},
                 **({} if sigma is None else {"sigma": sigma}))
        if answers:  # a generation run that also carries the probe
            r.update(answer="a red circle", token_entropies=[h[3]], mean_entropy=h[3], n_tokens=1)
        return r
    out = []
    for img in images:
        h0 = [1.9 + rng.random() / 5, 2.2 + rng.random() / 10, 1.1 + rng.random() / 10, 0.8 + rng.random() / 10]
        shift = [-0.11 + rng.gauss(0, 0.01), -0.18 + rng.gauss(0, 0.01), 0.08 + rng.gauss(0, 0.01), 0.06]
        out += [rec(img, "none", 0.0, 0, h0), rec(img, "repeat", 0.0, 0, [h + rng.gauss(0, 1e-6) for h in h0]),
                rec(img, "original_clamp", None, 0, [h + s for h, s in zip(h0, shift)], sigma=0.0)]
        for e in eps:
            for t in range(trials):
                z = [rng.gauss(0, e / 100) for _ in h0]
                out.append(rec(img, "original_noise_unclamped", e, t, [h + d for h, d in zip(h0, z)], e / 10))
                out.append(rec(img, "original_noise", e, t, [h + s + d for h, s, d in zip(h0, shift, z)], e / 10))
    return out


def deltas(recs, attack, eps, field):
    """{(image, trial): Δ} of one attack and ε, from the records alone."""
    clean = {r["image"]: r[field] for r in recs if r["attack"] == "none"}
    return {(r["image"], r["trial"]): r[field] - clean[r["image"]] for r in recs
            if r["attack"] == attack and (eps is None or r["epsilon"] == eps)}


@pytest.mark.parametrize("images", [(LOGO,), tuple(f"data/photos/p{i}.jpg" for i in range(6))])
def test_block_equals_a_recomputation_from_the_records(images):
    recs = records(images)
    o = summarize(recs, seed=0, n_boot=200, original_code=CODE)["original"]
    assert o["n_images"] == len(images) and o["one_cluster"] == (len(images) == 1)
    assert (o["clusters"] == ONE_CLUSTER) == (len(images) == 1)
    for kind, field in FIELDS.items():
        assert o["clean"][kind] == pytest.approx(np.mean([r[field] for r in recs if r["attack"] == "none"]))
        d = deltas(recs, "original_clamp", None, field)
        assert o["clamp"][kind]["mean_delta"] == pytest.approx(np.mean(list(d.values())))
        for eps in (0.1, 0.2, 0.3, 0.5):
            e = o["by_epsilon"][repr(eps)]
            for part in ("noise", "both"):
                d = deltas(recs, PARTS[part], eps, field)
                got = e[part][kind]
                assert got["mean_delta"] == pytest.approx(np.mean(list(d.values())))
                assert got["deltas"] == pytest.approx([d[k] for k in sorted(d)])  # pair order: image, trial
                assert got["trials"] == [t for _, t in sorted(d)]
                if len(images) == 1:  # one cluster: no interval over images, whatever the draws
                    assert got["ci95"] is None and got["n_clusters"] == 1
                else:  # the project's cluster CI over images of these Δs
                    st = C.cluster_mean_stats([d[k] for k in sorted(d)], [(k[0], QUESTION) for k in sorted(d)], 200, 0,
                                              f"original|{part}|{eps!r}|{kind}")
                    assert got["ci95"] == pytest.approx(st["ci95"]) and got["n_clusters"] == len(images)
            both, clamp = e["both"][kind]["mean_delta"], o["clamp"][kind]["mean_delta"]
            assert e["noise_on_clamp"][kind] == pytest.approx(both - clamp)
    for eps in (0.1, 0.2, 0.3, 0.5):
        e = o["by_epsilon"][repr(eps)]
        assert e["sigma"] == pytest.approx(eps / 10) and e["sigma_pairs"] is True
        assert e["original_runs"] == (eps in (0.1, 0.3))  # the original's code ran 0.1 and 0.3 only
    assert o["clean"]["n_positions"] == 49 and o["clean"]["n_image_positions"] == 36
    assert [r["mean"] for r in o["theirs"]["runs"]] == pytest.approx([np.mean(r["deltas"]) for r in CODE["runs"]])


def test_pairing_breaks_where_sigma_is_not_eps_over_10_and_without_the_code_block():
    recs = records(eps=(0.3,), trials=2)
    for r in recs:
        if r.get("sigma"):
            r["sigma"] = 0.3
    o = summarize(recs, n_boot=20)["original"]
    e = o["by_epsilon"]["0.3"]
    assert e["sigma"] == 0.3 and not e["sigma_pairs"] and not o["pairing_holds"]
    assert e["original_runs"] is None and o["theirs"] is None  # no code block: no claim about the original


def test_prompt_only_summary_has_no_answer_blocks_and_its_noise_is_the_prompt_entropy():
    recs = records()
    recs.append(dict(recs[-1], trial=9, prompt_entropy=float("nan")))
    s = summarize(recs, n_boot=50, original_code=CODE)
    assert s["by_attack"] == {} and s["clean"]["n"] == 0 and s["nonfinite"]["count"] == 1
    assert s["meta"]["n_records"] == len(recs) and s["meta"]["n_valid"] == len(recs) - 1
    d = deltas(recs, "repeat", None, "prompt_entropy")
    assert s["noise"]["entropy"] == "prompt_entropy" and s["noise"]["mean_delta"] == pytest.approx(np.mean(list(d.values())))
    assert s["noise"]["answers_changed"] is None and s["meta"]["noise_floor"] == s["noise"]["floor"]


def test_a_generation_run_with_the_probe_keeps_its_answer_blocks():
    # without original_clamp: by_attack's levels of a level-kind "none" perturbation are the
    # analysis restructuring's (level_kind), not this block's
    recs = [r for r in records(eps=(0.3,), trials=2, answers=True) if r["attack"] != "original_clamp"]
    s = summarize(recs, n_boot=20)
    assert s["original"]["generated"] is True and s["clean"]["n"] == 1
    assert s["noise"].get("entropy") is None  # the answers' noise block, as without the probe


def test_prompt_only_report_quotes_theirs_apart_and_states_the_one_cluster():
    s = summarize(records(), n_boot=50, original_code=CODE)
    text = render_report(s, INFO)
    flat = " ".join(text.split())
    assert "== The original experiment, as its code ran ==" in text and "Findings" not in text
    assert " ".join(ONE_CLUSTER.split()) in flat and "ε is in [0,1] pixel units" not in text
    theirs = flat[flat.index("The original code's runs"):flat.index("Not run by the original")]
    assert "not ours" in theirs and CODE["repository"] in theirs and CODE["commit"] in theirs
    assert fixed(CODE["clean"], 4) in theirs and "586 positions, 576 of them image patches" in flat
    assert "This run's prompt is 49 positions, 36 of them image positions" in flat
    ours = flat[flat.index("Our run: model tiny"):]
    assert signed(s["original"]["clamp"]["image"]["mean_delta"]) in ours and CODE["repository"] not in ours
    line = clean_line(s, INFO)
    assert num(s["original"]["clean"]["all"]) in line and fixed(CODE["clean"], 4) in line and "theirs" in line


def test_prompt_only_figures(tmp_path):
    s = summarize(records(), n_boot=50, original_code=CODE)
    assert render_figures(s, str(tmp_path / "figures"), INFO, STUDY) == []  # no answers: nothing to draw
    logo = np.asarray(__import__("PIL.Image").Image.open(os.path.join(REPO, LOGO)).convert("RGB"))
    fig = figure_original(s, INFO, logo, MEAN, STD)
    clamped = fig.axes[1].images[0].get_array()  # every value within [mean, mean + std] of its channel
    lo, hi = np.round(255 * np.array(MEAN)), np.round(255 * (np.array(MEAN) + np.array(STD)))
    assert np.abs(clamped.astype(int) - np.clip(logo, lo, hi)).max() <= 1
    assert 0.2 < np.mean(clamped != logo) < 0.6  # the clamp rewrites much of the logo
    bars = [p.get_height() for p in fig.axes[2].patches][:4]  # the clamp's bars, one per position kind
    assert bars == pytest.approx([s["original"]["clamp"][k]["mean_delta"] for k in FIELDS])
    for f in (fig, figure_original(s, INFO)):  # with and without the image panels
        f.canvas.draw()
        assert f.get_size_inches()[0] <= TEXT_WIDTH_IN
        texts = [t for t in f.findobj(Text) if t.get_text().strip() and t.get_visible()]
        assert all(t.get_fontsize() >= MIN_PT for t in texts)
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", " ".join(t.get_text() for t in texts))
    assert render_original_figure(s, str(tmp_path), INFO) == [str(tmp_path / FIGURE_NAME)]


def test_clamp_pixels_is_the_normalised_clamp():
    x = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    for c in range(3):
        x_norm = (x[..., c] / 255.0 - MEAN[c]) / STD[c]
        want = np.rint((np.clip(x_norm, 0, 1) * STD[c] + MEAN[c]) * 255)
        assert np.abs(clamp_pixels(x, MEAN, STD)[..., c] - want).max() <= 1


def test_sign_beyond_one_image():
    one = summarize(records(eps=(0.3,), trials=3), n_boot=100)["original"]
    many = summarize(records(tuple(f"p{i}" for i in range(8)), eps=(0.3,), trials=3, seed=1), n_boot=100)["original"]
    rows = {(r["part"], r["kind"]): r for r in beyond_one_image(one, many)}
    assert rows[("clamp", "image")]["answer"] == "survives" and rows[("clamp", "text")]["answer"] == "survives"
    assert rows[("noise", "all")]["answer"] in ("equivalent", "cannot tell")
    flipped = json.loads(json.dumps(one))
    flipped["clamp"]["image"]["mean_delta"] *= -1
    assert {(r["part"], r["kind"]): r for r in beyond_one_image(flipped, many)}[("clamp", "image")]["answer"] == "reverses"


def write_run(folder, recs, info):
    from confidence_trap.runner.analyze import analyze_run
    os.makedirs(folder)
    with open(os.path.join(folder, "records.jsonl"), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    with open(os.path.join(folder, "run.json"), "w", encoding="utf-8") as f:
        json.dump(info, f)
    return analyze_run(str(folder), n_boot=100)


def test_readme_first_table_on_a_synthetic_results_tree(tmp_path):
    shutil.copytree(os.path.join(REPO, "paper"), tmp_path / "paper", ignore=shutil.ignore_patterns("*.tex", "*.pdf"))
    shutil.copy(os.path.join(REPO, "README.md"), tmp_path)
    # the committed results without the original protocol's runs, which the test writes itself
    shutil.copytree(os.path.join(REPO, "results"), tmp_path / "results",
                    ignore=lambda d, names: [n for n in names if n in ("original", "original_photos")
                                             and os.path.samefile(d, os.path.join(REPO, "results"))])
    assert render_docs(["--root", str(tmp_path)]) == 0
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    block = re.search(r"BEGIN GENERATED: original -->\n(.*?)<!--", readme, re.S)[1]
    assert "reported Δ" in block and "Ours, original protocol" not in block  # no results/original: the study's table alone
    assert "No run of the original protocol in this version" in readme
    s = write_run(tmp_path / "results" / "original", records(), INFO)
    write_run(tmp_path / "results" / "original_photos", records(tuple(f"p{i}" for i in range(6))),
              dict(INFO, command="entropy_analysis.py --config configs/original_photos.yaml --model tiny"))
    assert (tmp_path / "results" / "original" / "figures" / FIGURE_NAME).exists()
    assert render_docs(["--root", str(tmp_path)]) == 0
    block = re.search(r"BEGIN GENERATED: original -->\n(.*?)<!--", (tmp_path / "README.md").read_text(encoding="utf-8"), re.S)[1]
    lines = block.strip().split("\n")
    caption, rows = lines[0], lines[4:]  # the caption, a blank line, the header, the rule, the rows
    for who in ("not ours", CODE["repository"], "Ours, original protocol", "Ours, the paper's protocol", "2030-01-02"):
        assert who in caption, who
    cells = {r.split(" | ")[0].lstrip("| "): [c.strip() for c in r.strip("| ").split(" | ")] for r in rows}
    o, main = s["original"], json.load(open(os.path.join(REPO, "results", "summary.json"), encoding="utf-8"))
    assert cells["clean H (nats)"][2:8] == [fixed(CODE["clean"], 4)] + [num(o["clean"][k]) for k in FIELDS] + [
        num(main["clean"]["mean_entropy"])]
    r03 = cells["0.3 (σ 0.03)"]
    assert r03[1] == "-0.028" and r03[2].startswith(fixed(np.mean(CODE["runs"][1]["deltas"]), 4, sign=True))
    assert r03[3:7] == [signed(o["by_epsilon"]["0.3"]["both"][k]["mean_delta"]) for k in FIELDS]
    assert r03[7].startswith(signed(main["by_attack"]["proxy"]["by_epsilon"]["0.3"]["mean_delta"]))
    assert cells["0.2 (σ 0.02)"][2] == "no run" and math.isclose(o["by_epsilon"]["0.2"]["sigma"], 0.02)
    results_md = (tmp_path / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert "## The original experiment, as its code ran" in results_md and "### Beyond one image" in results_md
    assert f"results/original/figures/{FIGURE_NAME}" in results_md and "| survives |" in results_md
    assert f"{{../results/original/figures/{FIGURE_NAME}}}" in (tmp_path / "paper" / "paper.tex").read_text(encoding="utf-8")
