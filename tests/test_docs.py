"""The tables, README.md and paper/paper.tex agree with the results they cite (pytest -q tests/test_docs.py).

Tables (confidence_trap/analysis/tables.py) cell by cell against summary.json through the one formatter of each
kind; README and paper by render_docs.py --check and by compiling the paper; the original study's
numbers by rendering the docs with sentinel values for them and finding each once, in its table."""
import json
import os
import random
import re
import shutil
import subprocess

import pytest

import probes
from confidence_trap.analysis.levels import level_label, sorted_levels
from confidence_trap.analysis.summary import summarize
from confidence_trap.docs.build import main as docs_main
from confidence_trap.docs.render import original
from confidence_trap.runner.environment import tex
from confidence_trap.analysis.tables import build, ci, dig, fixed, floor_cell, num, pct, pval, run_label, signed, value, word

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"<!-- BEGIN GENERATED: ([\w-]+) -->\n(.*?)<!-- END GENERATED: \1 -->", re.S)
DOCS_SOURCES = ["README.md", "paper/paper.tex.j2", "paper/readme.md.j2", "paper/results.md.j2", "paper/refs.bib",
                "paper/quantities.yaml", "paper/original_study.json", "paper/project_gpu_measurements.json"]
# Per table: column header -> (field of a by_epsilon entry, dotted or a tuple, its formatter).
COLUMNS = {
    "delta": {"pairs": ("n", str), "items": ("n_clusters", word), "mean Δ": ("mean_delta", signed), "95% CI": ("ci95", ci),
              "90% CI, Δ − Δ_null": ("tested.ci90", ci), "verdict": ("verdict", word), "Δ, no EOS":
              ("answer_entropy.mean_delta", signed), "verdict, no EOS": ("answer_entropy.verdict", word)},
    "pairs": {"95% CI, pairs": ("ci95_pairs", ci), "sd Δ": ("std_delta", num), "Wilcoxon p, item means": ("wilcoxon_p", pval)},
    "correct": {"accuracy clean": ("accuracy_clean", pct), "accuracy perturbed": ("accuracy_perturbed", pct),
                "AUROC wrong, clean": ("auroc_wrong_clean", fixed),
                "AUROC wrong, perturbed": ("auroc_wrong_perturbed", fixed)},
    "floor": {"clean H < 0.01 nats": (("floor", "share_clean_below_0.01"), pct), "lowest possible mean Δ":
              ("floor.delta_bound", signed), "mean log-ratio": ("floor.mean_log_ratio", signed)},
    "calibration": {"ECE": ("calibration.ece", fixed), "Brier": ("calibration.brier", fixed),
                    "overconfidence": ("calibration.overconfidence", signed),
                    "ECE, top-token": ("calibration_max_prob.ece", fixed)},
    "selective": {probes.label(p): (f"selective.{p}.prr", lambda x: fixed(x, 2)) for p in probes.names()},
}
WITH_CLEAN = ("calibration", "selective", "pope")  # tables whose first row is the clean block


def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def synthetic_summary() -> dict:
    """Two attacks (one by severity), reference answers, two probes and a non-finite record."""
    rng = random.Random(0)

    def rec(img, attack, eps, trial, h, **kw):
        return dict(image=img, question="q?", prompt="p", attack=attack, epsilon=eps, trial=trial,
                    seed=trial, answer="red", token_entropies=[h, h], mean_entropy=h, n_tokens=2,
                    n_nonfinite=0, max_entropy=h + 0.1, mean_max_prob=1 - h / 3,
                    references=["red"], correct=rng.random() < 0.6, **kw)
    recs = [dict(rec("im0", "proxy", 0.3, 9, 0.0), mean_entropy=None, n_nonfinite=1)]
    for i in range(6):
        h0 = 0.5 + rng.random()
        recs.append(rec(f"im{i}", "none", 0.0, 0, h0))
        recs += [rec(f"im{i}", "proxy", e, t, h0 - 0.2 * e + rng.gauss(0, 0.01))
                 for e in (0.1, 0.3, 8 / 255) for t in range(2)]
        recs += [rec(f"im{i}", "corruption:gaussian_noise", 0.0, t, h0 + rng.gauss(0, 1e-3), severity=s)
                 for s in (1, 3) for t in range(2)]
    return summarize(recs, seed=0, n_boot=200)


RUN = {"model": "tiny", "model_id": "models/tiny-llava", "dtype": "float32", "device": "cpu",
       "device_name": "CPU (Test CPU, 2 cores)", "started": "2030-01-02T03:04:05+0000",
       "git_commit": "0123456789abcdef", "command": "entropy_analysis.py --model tiny",
       "config": {"attack": "proxy", "epsilons": [0.1, 0.3], "alpha": None, "seed": 0}}


def summaries():
    with open(os.path.join(REPO, "results", "summary.json"), encoding="utf-8") as f:
        return [json.load(f), synthetic_summary()]


def test_formatters():
    assert [num(0.0123), num(-0.0123), num(1.6e-5), num(0), num(None)] == ["0.012", "-0.012", "1.6e-05", "0", "n/a"]
    assert [signed(0.0123), signed(-4.3e-4), signed(0.00999)] == ["+0.012", "-4.3e-04", "+0.010"]
    assert [pct(0.4375), pval(0.0776), pval(5.7e-6), fixed(0.6549), fixed(-0.05, 3, True)] == [
        "43.8%", "0.0776", "5.7e-06", "0.655", "-0.050"]
    assert ci([-9.3e-6, 0.023]) == "[-9.3e-06, +0.023]" and ci(None) == "n/a"
    assert [value(True), value([0.1, 0.5]), value(None), value(13.16)] == ["yes", "0.1, 0.5", "default", "13.16"]


@pytest.mark.parametrize("which", [0, 1], ids=["committed", "synthetic"])
def test_table_cells_are_the_summary_formatted(which):
    s = summaries()[which]
    tables = build(s, RUN)
    assert {t.name for t in tables} == {"clean", "delta", "pairs", "filter", "filter-difference", "probes", "correct",
                                        "floor", "calibration", "selective", "signals"} | (
        {"noise"} if s.get("noise") else set()) | ({"prior-questions"} if s.get("prior") else set())
    for t in tables:
        assert t.label == run_label(RUN) and "original" not in t.caption.lower(), t.caption
        assert all(len(r) == len(t.headers) for r in t.rows), t.name
        # no JSON field names: no snake_case word in a header or a cell
        assert not re.search(r"\b[a-z]+_[a-z_]+\b", " ".join(t.headers + sum(t.rows, []))), t.name
        if (n := s.get("noise")) and t.name == "noise":  # the null control's row, the headline entropy
            assert t.rows[0][1:5] == [str(n["n_clusters"]), signed(n["mean_delta"]), ci(n["ci95"]), floor_cell(n["floor"])]
        if t.attack is None:
            continue
        sec = s["by_attack"][t.attack]
        by = [(level_label(k, sec["grouped_by"]), sec["by_epsilon"][k]) for k in sorted_levels(sec["by_epsilon"])]
        if t.name == "filter":
            first = by[0][1]["pass_rate"]
            assert t.rows[:2] == [["τ (nats)"] + [num(first[p]["tau"]) for p in first],
                                  ["clean"] + [pct(first[p]["clean"]) for p in first]]
            assert t.rows[2:] == [[lab] + [pct(e["pass_rate"][p]["perturbed"]) + (
                " INV" if e["inverted_safety"][p] else "") for p in first] for lab, e in by]
        elif t.name == "filter-difference":  # a row per level and τ: the difference, its 90% CI, the verdict
            assert [r[4:] for r in t.rows] == [[fixed(100 * r["difference"], 1, True), ci([100 * x for x in r[
                "difference_ci90"]], lambda x: fixed(x, 1, True)), fixed(100 * r["margin"], 1), r["verdict"]]
                for _, e in by for r in e["pass_rate"].values()]
        elif t.name == "prior-questions":
            assert [r[0] for r in t.rows] == [q["question"] for q in s["prior"]["by_attack"][t.attack]["by_epsilon"][
                sorted_levels(s["prior"]["by_attack"][t.attack]["by_epsilon"])[-1]]["by_question"]]
        elif t.name == "probes":
            assert t.rows == [[lab, probes.label(p), signed(d["mean_delta"]), ci(d["ci95"]),
                               fixed(d["auroc_detect"]), ci(d.get("auroc_detect_ci95"), fixed)]
                              for lab, e in by for p, d in [("entropy", e)] + sorted(e["probes"].items())]
        elif t.name == "signals":
            assert t.rows == [[lab, probes.label(p), fixed(d["auroc_wrong"]), ci(d["auroc_wrong_ci95"], fixed),
                               fixed(d["prr"], 2), ci(d["prr_ci95"], lambda x: fixed(x, 2)), "INVERTS" * d["inverted"]]
                              for lab, e in [("clean", s["clean"])] + by for p, d in sorted(e["selective"].items())]
        else:
            by = [("clean", s["clean"])] * (t.name in WITH_CLEAN) + by
            assert [r[0] for r in t.rows] == [lab for lab, _ in by], t.name
            cols = dict(COLUMNS[t.name], **{f"conf. wrong, τ = {p}": (f"confidently_wrong.{p}", pct) for p in
                                            (by[0][1]["confidently_wrong"] if t.name == "correct" else [])})
            for col, (field, fmt) in ((c, f) for c, f in cols.items() if c in t.headers):
                assert [r[t.headers.index(col)] for r in t.rows] == [fmt(dig(e, field)) for _, e in by], col


def test_clean_table_and_original_table():
    s = summaries()[1]
    row = dict(zip(*[(t.headers, t.rows[0]) for t in build(s, RUN, names=["clean"])][0]))
    assert row["records"] == str(s["meta"]["n_records"]) and row["non-finite"] == "1"
    assert row["clean mean H (nats)"] == num(s["clean"]["mean_entropy"])
    assert row["clean accuracy"] == pct(s["clean"]["accuracy"])
    study = json.loads(read(REPO, "paper/original_study.json"))
    t = original(study)
    assert [r[1] for r in t.rows] == [fixed(r["delta"], 3, r["delta"] != 0) for r in study["rows"]]
    for text in ("The original study's numbers, not ours", study["model"], study["dtype"], study["hardware"]):
        assert text in t.caption


def render(root, *args) -> int:  # render_docs.py's exit status for --root ROOT ARGS, in process
    return docs_main(["--root", str(root), *args])


def test_committed_docs_are_current(capsys):
    """In process (scripts/render_docs.py calls this main): a fresh interpreter cost 2 s of the fast tier."""
    assert docs_main(["--root", REPO, "--check"]) == 0, capsys.readouterr().err


@pytest.fixture
def docs_copy(tmp_path):
    """README.md and the docs' sources as committed, in a fresh root beside a copy of results/."""
    for rel in DOCS_SOURCES:
        os.makedirs(tmp_path / os.path.dirname(rel), exist_ok=True)
        shutil.copy(os.path.join(REPO, rel), tmp_path / rel)
    shutil.copytree(os.path.join(REPO, "results"), tmp_path / "results")
    return tmp_path


def test_check_fails_on_a_hand_edit_and_on_missing_blocks(docs_copy, capsys):
    assert render(docs_copy) == 0 and render(docs_copy, "--check") == 0
    readme = read(docs_copy, "README.md")
    results = dict(BLOCK.findall(readme))["findings"]
    (docs_copy / "README.md").write_text(readme.replace(results, results.replace("%", "1%", 1)))
    assert render(docs_copy, "--check") == 1  # a percentage edited by hand
    (docs_copy / "README.md").write_text("# no blocks\n")
    assert render(docs_copy, "--check") == 2 and "lacks the generated blocks" in capsys.readouterr().err


def test_original_numbers_stand_only_in_their_table(docs_copy):
    """With sentinel values (six decimals, which no formatter of ours prints), each appears
    exactly once in the README, in its block, and once in the paper, in its table."""
    study = json.loads(read(REPO, "paper/original_study.json"))
    study["decimals"], _ = 6, [r.update(delta=-0.417293 - i * 0.1) for i, r in enumerate(study["rows"])]
    (docs_copy / "paper" / "original_study.json").write_text(json.dumps(study))
    assert render(docs_copy) == 0
    readme, paper = read(docs_copy, "README.md"), read(docs_copy, "paper/paper.tex")
    tables = re.findall(r"\\begin\{table\}.*?\\end\{table\}", paper, re.S)
    own = [t for t in tables if r"\label{tab:original}" in t]
    assert len(own) == 1 and "original study" in own[0]
    for r in study["rows"]:
        v = f"{abs(r['delta']):.6f}"
        assert readme.count(v) == 1 and v in dict(BLOCK.findall(readme))["original"], v
        assert paper.count(v) == 1 and v in own[0], v


def test_every_path_named_exists():
    """Every file or folder the README or the paper names (in `code` or \\texttt) is in the repository."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout
    names = {part for p in tracked.split() for part in p.split("/")}
    paper = read(REPO, "paper/paper.tex").replace("\\_", "_").replace("-{}", "-")
    spans = re.findall(r"`([^`\n]+)`|\]\(([^)\s]+)\)", read(REPO, "README.md")) + re.findall(
        r"\\texttt\{([^}]*)\}", paper) + ["paper/" + p for p in re.findall(r"\\includegraphics\[.*?\]\{(.*?)\}", paper)]
    words = {w.strip(",;:()").rstrip(".") for span in spans for w in " ".join(span if isinstance(span, tuple)
                                                                              else [span]).split()}
    for name in words - {"results/benchmark_gpu.json", "results/gpu_memory.json", "org/name"}:  # to be made; a hub id
        hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not os.path.exists(os.path.join(REPO, name.split("/")[0]))
        if hub_id or not re.fullmatch(r"[\w./+-]*(/|\.(py|md|json|yaml|ipynb|txt|tex|j2|png|sh))[\w./-]*", name) or \
                name.startswith(("OUT/", "runs/", "/", "v/")):  # made by the commands named
            continue
        bare = "/" not in name.rstrip("/") and not name.endswith(".md")  # e.g. a file of a folder named before
        ok = name.rstrip("/") in names if bare else os.path.exists(os.path.join(REPO, name))
        assert ok, f"the docs name {name}, which does not exist"


TEX = tex()  # pdflatex, bibtex and lmodern.sty, as sanity_check.py checks them


@pytest.mark.slow
@pytest.mark.skipif(TEX.status != "ok" and os.environ.get("CI") != "true",
                    reason=f"TeX: {TEX.text}; fix: {TEX.fix}; .ci/run installs it, so CI never skips this")
@pytest.mark.parametrize("which", ["committed", "synthetic"])
def test_paper_compiles_with_its_citations_in_eight_plus_four_pages(docs_copy, which):
    if which == "synthetic":  # every kind of table and both kinds of level, figures included
        from confidence_trap.analysis.figures import render_figures
        s, res = synthetic_summary(), docs_copy / "results"
        (res / "summary.json").write_text(json.dumps(s))
        (res / "run.json").write_text(json.dumps(RUN))
        (res / "gpu_memory.json").write_text(json.dumps({"device_name": "Test GPU", "peak_gib": 13.5}))
        render_figures(s, str(res / "figures"), RUN, json.loads(read(REPO, "paper/original_study.json")))
        assert render(docs_copy) == 0
    else:
        shutil.copy(os.path.join(REPO, "paper", "paper.tex"), docs_copy / "paper")
    for tool in ("pdflatex", "bibtex", "pdflatex", "pdflatex"):  # bibtex, then two passes settle references
        r = subprocess.run([tool, *(["-interaction=nonstopmode", "-halt-on-error"] if tool == "pdflatex" else []),
                            "paper"], cwd=docs_copy / "paper", capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:]
    log = read(docs_copy, "paper/paper.log")
    for bad in ("undefined", "multiply defined", "Missing character", "not found"):
        assert bad not in log, bad
    assert read(docs_copy, "paper/paper.bbl").count("\\bibitem") >= 12 and "Warning" not in read(docs_copy, "paper/paper.blg")
    page = {k: int(p) for k, p in re.findall(r"\\newlabel\{(main:end|app:config|appendix:end)\}\{\{[^}]*\}\{(\d+)\}",
                                             read(docs_copy, "paper/paper.aux"))}
    if which == "committed":  # the synthetic run draws every figure for two attacks: only that it compiles
        assert page["main:end"] <= 8 and page["appendix:end"] - page["app:config"] < 4, f"8 + 4 pages: {page}"


def test_docs_layer_stays_small():
    """confidence_trap/docs/ and render_docs.py only lay out what analysis builds (docs/DESIGN.md)."""
    def lines(*rels): return sum(read(REPO, rel).count("\n") for rel in rels)  # noqa: E704
    folder = os.path.join(REPO, "confidence_trap", "docs")
    layer = [f"confidence_trap/docs/{n}" for n in os.listdir(folder) if n.endswith(".py")]
    assert len(layer) >= 3 and lines(*layer, "scripts/render_docs.py") <= 400


def test_readme_commands_match_ci():
    """The README's install and test commands are the ones .ci/run runs, both tiers."""
    readme, ci_script = read(REPO, "README.md"), read(REPO, ".ci/run")
    for cmd in ('pip install -e ".[dev]"', "python -m pytest -q tests && python -m pytest -q -m slow tests"):
        assert cmd in readme and cmd.replace("python ", "python3 ") in ci_script, cmd
