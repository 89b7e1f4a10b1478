"""The README and the paper agree with the results they cite.

    python -m pytest -q tests/test_docs.py

(a) `python scripts/render_docs.py --check` passes on the committed README.md and paper/.
(b) Every number in the README's generated blocks and in the paper is read back and compared with
    the field it cites, at the printed rounding; a number that no check accounts for fails, so a
    number edited or typed by hand fails.
(c) The original study's numbers stand only in their own labelled table, never in our tables or
    the prose.
(d) The README has no number outside its generated blocks.

Besides the committed files, the same checks run on docs rendered into a temporary copy from
(1) a synthetic run with two attacks, reference answers, probes, a non-finite record, a benchmark,
a GPU memory file and a training record, and (2) a real run of a tiny random checkpoint, so every
check is exercised even before results/ is committed.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "render_docs.py")
PAPER_MD, PAPER_TEX, TEMPLATE = ("paper/vlm_failure_modes_paper.md", "paper/paper.tex",
                                 "paper/paper.md.in")
# A number standing alone: not the 1.5 of LLaVA-1.5-7B, the 80 of 2.80GHz or the 90 of p90.
NUM = re.compile(r"(?<![\w.\-−])[+\-−]?\d+(?:\.\d+)?(?:e[+\-]\d+)?(?!\w|\.\d)")
MARKER = re.compile(r"<!-- BEGIN GENERATED: ([\w-]+) -->\n(.*?)<!-- END GENERATED: \1 -->", re.S)
PLACEHOLDER = re.compile(r"\{\{([\w-]+)(?:\|(.*?))?\}\}", re.S)
TABLE_MD = re.compile(r"<!-- table: (?P<id>[^|]+?) \| source: (?P<src>.*?) -->\n\*(?P<cap>.*)\*\n\n"
                      r"(?P<body>(?:\|.*\|(?:\n|$))+)")
TABLE_TEX = re.compile(r"% table: (?P<id>[^|]+?) \| source: (?P<src>.*?)\n\\begin\{table\}.*?"
                       r"\\caption\{(?P<cap>.*?)\}\n\\label.*?\\toprule\n(?P<head>.*?) \\\\\n"
                       r"\\midrule\n(?P<body>.*?)\n\\bottomrule", re.S)
HEADLINE = re.compile(
    r"Attack `(?P<attack>[^`]+)` at (?:ε|severity) = (?P<label>[^:]+): mean Δ = (?P<mean>\S+) nats, "
    r"95% CI \[(?P<lo>\S+), (?P<hi>\S+)\], Wilcoxon p = (?P<p>\S+), n = (?P<n>\d+) pairs "
    r"\((?P<beh>[^)]+)\); entropy filter at τ = (?P<pk>p\d+): clean pass (?P<c>\S+), "
    r"perturbed pass (?P<a>\S+) \((?P<inv>inverted|not inverted)\)\.")
# Tokens with digits that the README may hold outside its generated blocks.
# Names, not measurements: models, a licence, a GPU, dtypes, the pixel range (ε's unit) and the
# shape of an image batch.
README_WHITELIST = re.compile(r"LLaVA-1\.5-7B|llava-1\.5-7b|LLaVA-1\.5|llava-1\.5-13b|CC0|T4|"
                              r"FP16|float16|float32|\[0,1\]|\[B,3,H,W\]")


# ---------------------------------------------------------------- reading numbers back

def close(text: str, value, scale: float = 1.0) -> bool:
    """Does `text` (as printed: "+0.012", "1.6e-05", "43.8%", "n/a") show `value` rounded?"""
    text = text.strip().replace("−", "-").rstrip("%").strip()
    if value is None or text == "n/a":
        return value is None and text == "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    m = re.fullmatch(r"[+\-]?\d+(?:\.(\d+))?(?:e([+\-]\d+))?", text)
    if not m:
        return False
    decimals = len(m.group(1) or "")
    tol = 0.5 * 10.0 ** (int(m.group(2) or 0) - decimals)
    return abs(float(text) - value * scale) <= tol * (1 + 1e-9) + 1e-12


def pct_close(text: str, value) -> bool:
    return (text.strip() == "n/a" and value is None) or (text.strip().endswith("%")
                                                          and close(text, value, 100.0))


def ci_close(text: str, pair) -> bool:
    if pair is None:
        return text.strip() == "n/a"
    m = re.fullmatch(r"\[(\S+), (\S+)\]", text.strip())
    return bool(m) and close(m.group(1), pair[0]) and close(m.group(2), pair[1])


def dig(data, path: str):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def string_leaves(data) -> list[str]:
    """Every string in a JSON file, longest first: text copied from a cited file."""
    out = []
    if isinstance(data, dict):
        for v in data.values():
            out += string_leaves(v)
    elif isinstance(data, list):
        for v in data:
            out += string_leaves(v)
    elif isinstance(data, str) and len(data) >= 3:
        out.append(data)
    return sorted(set(out), key=len, reverse=True)


# ---------------------------------------------------------------- the documents' sources

class Sources:
    """The files a rendered copy of the docs cites, read independently of the renderer."""

    def __init__(self, root: str):
        self.root = root
        self.summary = self._json("results/summary.json")
        self.run = self._json("results/run.json") or {}
        self.orig = self._json("paper/original_study.json")
        date = str(self.run.get("date") or self.run.get("finished") or self.run.get("started") or "")
        self.run_strings = string_leaves(self.run) + ([date[:10]] if date else []) + (
            [self.run["git_commit"][:7]] if self.run.get("git_commit") else [])

    def _json(self, rel):
        path = os.path.join(self.root, rel)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def file(self, src: str):
        data = self._json(src)
        assert data is not None, f"a table cites {src}, which does not exist"
        return data


def labelled(caption: str, run: dict) -> bool:
    """Our tables and figures name the model, dtype, hardware and date of the run."""
    date = str(run.get("date") or run.get("finished") or run.get("started") or "")[:10]
    hw = run.get("device_name") or run.get("device")
    return all(s and s in caption for s in (f"`{run.get('model')}`", run.get("dtype"), hw, date))


def blank(text: str, strings) -> str:
    for s in strings:
        if s:
            text = text.replace(s, " " * len(s))
    return text


# ---------------------------------------------------------------- table checks (b)

def sorted_keys(section: dict) -> list:
    from analysis.summary import sorted_levels

    return sorted_levels(section["by_epsilon"])


def label(key: str, section: dict) -> str:
    from analysis.summary import level_label

    return level_label(key, section["grouped_by"])


def check_level_rows(rows, section, first_col=0):
    keys = sorted_keys(section)
    assert [r[first_col] for r in rows] == [label(k, section) for k in keys], rows
    return [(section["by_epsilon"][k], r) for k, r in zip(keys, rows)]


def check_clean(headers, rows, s):
    fields = {"records": ("meta.n_records", close), "valid": ("meta.n_valid", close),
              "non-finite excluded": ("nonfinite.count", close), "clean answers": ("clean.n", close),
              "clean mean entropy (nats)": ("clean.mean_entropy", close),
              "sd": ("clean.std_entropy", close), "clean accuracy": ("clean.accuracy", pct_close)}
    assert len(rows) == 1 and set(headers) <= set(fields), headers
    for h, cell in zip(headers, rows[0]):
        path, ok = fields[h]
        assert ok(cell, dig(s, path)), (h, cell, dig(s, path))


def check_delta(headers, rows, section):
    assert headers[1:] == ["n", "mean Δ", "95% CI", "median Δ", "Wilcoxon p", "Δ < 0", "behaviour",
                           "AUROC"], headers
    for e, r in check_level_rows(rows, section):
        assert close(r[1], e["n"]) and close(r[2], e["mean_delta"]) and ci_close(r[3], e["ci95"])
        assert close(r[4], e["median_delta"]) and close(r[5], e["wilcoxon_p"]), r
        assert pct_close(r[6], e["frac_negative"]) and r[7] == e["behaviour"], r
        assert close(r[8], e["auroc_detect"]), r


def check_filter(headers, rows, section):
    keys = sorted_keys(section)
    first = section["by_epsilon"][keys[0]]["pass_rate"]
    assert headers[1:] == list(first), headers
    assert rows[0][0] == "τ (nats)" and rows[1][0] == "clean", rows
    for pk, tau, c in zip(headers[1:], rows[0][1:], rows[1][1:]):
        assert close(tau, first[pk]["tau"]) and pct_close(c, first[pk]["clean"]), (pk, tau, c)
    for e, r in check_level_rows(rows[2:], section):
        for pk, cell in zip(headers[1:], r[1:]):
            inv = cell.endswith(" INV")
            assert inv == e["inverted_safety"][pk], (pk, cell)
            assert pct_close(cell.removesuffix(" INV"), e["pass_rate"][pk]["perturbed"]), (pk, cell)


def check_correct(headers, rows, section):
    pks = [h.split()[-1] for h in headers[3:-2]]
    assert headers[1:3] == ["accuracy clean", "accuracy perturbed"], headers
    assert headers[-2:] == ["AUROC wrong, clean", "AUROC wrong, perturbed"], headers
    keys = [k for k in sorted_keys(section) if "accuracy_perturbed" in section["by_epsilon"][k]]
    assert [r[0] for r in rows] == [label(k, section) for k in keys]
    for k, r in zip(keys, rows):
        e = section["by_epsilon"][k]
        assert pct_close(r[1], e["accuracy_clean"]) and pct_close(r[2], e["accuracy_perturbed"]), r
        for pk, cell in zip(pks, r[3:-2]):
            assert pct_close(cell, e["confidently_wrong"][pk]), (pk, cell)
        assert close(r[-2], e["auroc_wrong_clean"]) and close(r[-1], e["auroc_wrong_perturbed"]), r


def check_probes(headers, rows, section):
    assert headers[1:] == ["probe", "mean Δ", "95% CI", "AUROC"], headers
    expected = [(label(k, section), p) for k in sorted_keys(section)
                for p in sorted(section["by_epsilon"][k].get("probes", {}))]
    assert [(r[0], r[1]) for r in rows] == expected
    by_label = {label(k, section): section["by_epsilon"][k] for k in sorted_keys(section)}
    for r in rows:
        pe = by_label[r[0]]["probes"][r[1]]
        assert close(r[2], pe["mean_delta"]) and ci_close(r[3], pe["ci95"]), r
        assert close(r[4], pe["auroc_detect"]), r


def check_original(headers, rows, orig):
    assert len(rows) == len(orig["rows"])
    for r, o in zip(rows, orig["rows"]):
        assert close(r[0], o["epsilon"]) and close(r[1], o["delta"]), (r, o)
        assert len(r[1].split(".")[-1]) == orig["decimals"], r   # the precision it was reported at


def check_kv(headers, rows, data):
    assert headers == ["quantity", "value", "field"], headers
    for quantity, cell, field in rows:
        v = dig(data, field.strip("`"))
        if isinstance(v, bool):
            assert cell == ("yes" if v else "no"), (field, cell)
        elif isinstance(v, (int, float)):
            assert pct_close(cell, v) if cell.endswith("%") else close(cell, v), (field, cell, v)
        elif isinstance(v, list):
            assert [float(x) for x in cell.split(", ")] == pytest.approx([float(x) for x in v],
                                                                        rel=1e-5), (field, cell)
        elif v is None:
            assert not NUM.search(cell), (field, cell)
        else:
            assert cell == str(v), (field, cell, v)


def check_table(tid, src, caption, headers, rows, srcs: Sources):
    """Verify one of the documents' tables against the file it cites; returns nothing, asserts."""
    kind, _, attack = tid.partition(" ")
    if kind == "original":
        assert src == "paper/original_study.json"
        for word in (srcs.orig["label"], srcs.orig["model"], srcs.orig["hardware"], srcs.orig["dtype"]):
            assert word in caption, (word, caption)
        check_original(headers, rows, srcs.orig)
        return
    assert "original" not in caption.lower(), caption
    data = srcs.file(src)
    if kind == "kv":
        check_kv(headers, rows, data)
        leftover = blank(caption, string_leaves(data) + srcs.run_strings)
        assert not NUM.search(leftover), caption
        return
    assert src == "results/summary.json" and data == srcs.summary, src
    assert labelled(caption, srcs.run), f"table {tid} is not labelled with the run: {caption}"
    assert not NUM.search(blank(caption, srcs.run_strings)), caption
    if kind == "clean":
        return check_clean(headers, rows, data)
    section = data["by_attack"][attack]
    {"delta": check_delta, "filter": check_filter, "correct": check_correct,
     "probes": check_probes}[kind](headers, rows, section)


def md_tables(text: str):
    for m in TABLE_MD.finditer(text):
        lines = [ln for ln in m.group("body").strip().split("\n")]
        cells = [[c.strip() for c in ln.strip().strip("|").split(" | ")] for ln in lines]
        yield m, m.group("id"), m.group("src"), m.group("cap"), cells[0], cells[2:]


def check_headlines(text: str, srcs: Sources):
    """Verify each headline sentence against summary.json; returns the matches."""
    found = list(HEADLINE.finditer(text))
    for m in found:
        section = srcs.summary["by_attack"][m.group("attack")]
        keys = [k for k in sorted_keys(section) if label(k, section) == m.group("label")]
        assert len(keys) == 1, m.group(0)
        e = section["by_epsilon"][keys[0]]
        assert close(m.group("mean"), e["mean_delta"]) and close(m.group("p"), e["wilcoxon_p"])
        assert ci_close(f"[{m.group('lo')}, {m.group('hi')}]", e["ci95"]), m.group(0)
        assert int(m.group("n")) == e["n"] and m.group("beh") == e["behaviour"], m.group(0)
        rate = e["pass_rate"][m.group("pk")]
        assert pct_close(m.group("c"), rate["clean"]) and pct_close(m.group("a"), rate["perturbed"])
        assert (m.group("inv") == "inverted") == e["inverted_safety"][m.group("pk")], m.group(0)
    return found


def check_epsilon_note(text: str) -> str:
    """The ε paragraph: its grids are the config's; returns the text with them blanked."""
    from analysis.summary import level_label
    from experiments.config import Config, load_yaml, parse_fraction

    grids = [", ".join(level_label(repr(float(e)), "epsilon") for e in Config().epsilons)]
    small = os.path.join(REPO, "configs", "small_eps.yaml")
    if os.path.exists(small):
        grids.append(", ".join(level_label(repr(parse_fraction(e)), "epsilon")
                               for e in load_yaml(small)["epsilons"]))
    for g in grids:
        assert g in text, f"the ε grid {g!r} is missing from {text!r}"
    m = re.search(r"So ε = (\S+) \((\S+)\) means a pixel may move by (\S+) of its full range", text)
    assert m and level_label(m.group(1), "epsilon") == f"{m.group(1)} ({m.group(2)})" \
        and m.group(1) == m.group(3), text
    return blank(text, grids + [m.group(0)])


def check_region(text: str, srcs: Sources, prose_allowed=()) -> None:
    """(b) on one generated region (a README block or a placeholder's expansion): verify every
    table, headline, ε note, code block and command it holds; then no number may be left."""
    rest = text
    for m, tid, src, cap, headers, rows in md_tables(text):
        check_table(tid, src, cap, headers, rows, srcs)
        rest = rest.replace(m.group(0), "")
    for m in check_headlines(rest, srcs):
        rest = rest.replace(m.group(0), "")
    if "ε is an L∞ budget" in rest:
        rest = check_epsilon_note(rest)
    for code in re.findall(r"```text\n(.*?)\n```", rest, re.S):
        assert code in (expected_code()), f"unexpected code block: {code[:200]}"
        rest = rest.replace(code, "")
    m = re.search(r"Command: `([^`]*)`", rest)
    if m:
        assert m.group(1) == srcs.run.get("command", "n/a"), m.group(1)
        rest = rest.replace(m.group(0), "")
    rest = blank(rest, list(prose_allowed) + srcs.run_strings + ["[0,1]"])
    left = NUM.findall(rest)
    assert not left, f"numbers no check accounts for: {left} in {rest[:500]!r}"


def expected_code() -> tuple:
    import analysis.summary
    from analysis.figures import FIGURE_NAMES
    from experiments.entropy_analysis import OUTPUT_FILES

    outputs = "\n".join([f"OUT/{n}" for n in OUTPUT_FILES] + [f"OUT/figures/{n}" for n in FIGURE_NAMES])
    return analysis.summary.__doc__.strip(), outputs


# ---------------------------------------------------------------- the documents

def read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def readme_blocks(root) -> dict:
    return dict(MARKER.findall(read(root, "README.md")))


GENERATED_MD = re.compile(r"<!-- BEGIN GENERATED: ([\w-]+) -->\n(.*?)\n<!-- END GENERATED: \1 -->"
                          r"|<!-- GENERATED: ([\w-]+) -->(.*?)<!-- END GENERATED -->", re.S)


def paper_expansions(root) -> list:
    """[(placeholder name, its argument, what the md paper holds in its place)]; everything
    outside the generated regions must be the template's own text."""
    template, paper = read(root, TEMPLATE), read(root, PAPER_MD)
    paper = paper.split("\n", 1)[1]                      # the "generated by" comment
    regions = [(m.group(1) or m.group(3), m.group(2) if m.group(1) else m.group(4))
               for m in GENERATED_MD.finditer(paper)]
    placeholders = [(m.group(1), m.group(2)) for m in PLACEHOLDER.finditer(template)]
    assert [r[0] for r in regions] == [p[0] for p in placeholders], \
        "the md paper's generated regions differ from paper/paper.md.in's placeholders"
    assert GENERATED_MD.sub("{{}}", paper) == PLACEHOLDER.sub("{{}}", template), \
        "the md paper's prose differs from paper/paper.md.in: rerun scripts/render_docs.py"
    return [(n, a, content) for (n, a), (_, content) in zip(placeholders, regions)]


TEX_UNESCAPE = [(r"\textbackslash{}", "\\"), (r"\textasciitilde{}", "~"), (r"\textasciicircum{}", "^"),
                (r"\textless{}", "<"), (r"\textgreater{}", ">"), (r"\textbar{}", "|"), (r"\_", "_"),
                (r"\%", "%"), (r"\&", "&"), (r"\#", "#"), (r"\{", "{"), (r"\}", "}"), (r"\$", "$"),
                ("``", '"'), ("''", '"'), ("-{}", "-")]


def _unmath(m) -> str:
    """$+1.6\\times10^{-5}$ -> +1.6e-05, $-0.042$ -> -0.042; other math stays as it is."""
    inner = m.group(1)
    sci = re.fullmatch(r"(.*?)\\times10\^\{(-?\d+)\}", inner)
    if sci:
        return f"{sci.group(1)}e{int(sci.group(2)):+03d}"
    return inner if "\\" not in inner else m.group(0)


def untex(s: str) -> str:
    """LaTeX as the renderer writes it -> the text the md paper holds (code marks dropped)."""
    s = re.sub(r"\\shortstack\[\w\]\{(.*?)\}(?= &|$)", lambda m: m.group(1).replace("\\\\", " "), s)
    s = re.sub(r"(?<!\\)\$([^$]*)(?<!\\)\$", _unmath, s)
    s = re.sub(r"\\(?:texttt|emph|textbf)\{((?:[^{}]|\{\})*)\}", r"\1", s)
    for a, b in TEX_UNESCAPE:
        s = s.replace(a, b)
    return s


def tex_tables(text: str):
    for m in TABLE_TEX.finditer(text):
        head = [untex(c.strip()) for c in m.group("head").split(" & ")]
        rows = [[untex(c.strip()) for c in ln.removesuffix(r" \\").split(" & ")]
                for ln in m.group("body").split("\n")]
        yield m, m.group("id"), m.group("src"), untex(m.group("cap")), head, rows


def check_docs(root: str) -> None:
    """(b) and (c) on README.md, the md paper and the tex paper under root."""
    srcs = Sources(root)
    blocks = readme_blocks(root)
    for name, content in blocks.items():
        check_region(content, srcs)
    expansions = paper_expansions(root)
    for name, arg, content in expansions:
        check_region(content, srcs, prose_allowed=[(arg or "").partition("|")[2]])
        if name == "figure" and "![" in content:
            assert labelled(content, srcs.run), f"figure not labelled with the run: {content}"

    # (c) the original study's table: once per document, in its own block, and nowhere else
    orig_values = [f"{r['delta']:.{srcs.orig['decimals']}f}".lstrip("-") for r in srcs.orig["rows"]]
    orig_re = re.compile(r"(?<![\d.])[-−+]?(?:" + "|".join(re.escape(v) for v in orig_values) + r")(?!\d)")
    md_paper = read(root, PAPER_MD)
    tex_paper = read(root, PAPER_TEX)
    for doc, text, tables in (("README.md", read(root, "README.md"), md_tables),
                              (PAPER_MD, md_paper, md_tables),
                              (PAPER_TEX, tex_paper, tex_tables)):
        found = list(tables(text))
        originals = [t for t in found if t[1] == "original"]
        assert len(originals) == 1, f"{doc}: the original study's table must appear exactly once"
        rest = text
        for m, tid, *_ in found:
            if tid == "original":
                rest = rest.replace(m.group(0), "")
        if doc == "README.md":
            assert "table: original" in blocks["original"]
            assert all("table: original" not in c for n, c in blocks.items() if n != "original")
        # outside the original table, a value of the original study may appear only inside a
        # table of ours whose every cell (b) has verified against our own results
        for m, tid, *_ in found:
            if tid != "original":
                rest = rest.replace(m.group(0), "")
        prose = untex(rest) if doc == PAPER_TEX else rest
        for h in check_headlines(prose.replace("`", "") if doc == PAPER_TEX else prose, srcs):
            prose = prose.replace(h.group(0), "")
        hits = orig_re.findall(prose)
        assert not hits, f"{doc}: the original study's numbers {hits} appear outside its table"

    # the tex paper holds the md paper's tables, cell for cell, and its headline sentences
    md_t = {t[1]: (t[4], t[5]) for t in md_tables(md_paper)}
    tex_t = {t[1]: (t[4], t[5]) for t in tex_tables(tex_paper)}
    strip = lambda rows: [[c.replace("`", "") for c in r] for r in rows]  # noqa: E731
    assert md_t.keys() == tex_t.keys()
    for tid in md_t:
        assert strip([md_t[tid][0]]) == [tex_t[tid][0]], tid
        assert strip(md_t[tid][1]) == tex_t[tid][1], tid
    flat_tex = re.sub(r"\s+", " ", untex(tex_paper))
    for m in HEADLINE.finditer(md_paper):
        assert m.group(0).replace("`", "") in flat_tex, m.group(0)
    for m, tid, src, cap, head, rows in tex_tables(tex_paper):
        if tid == "original":
            check_table(tid, src, cap, head, rows, srcs)


def check_readme_prose(root: str) -> None:
    """(d) no number in the README outside its generated blocks, except whitelisted names."""
    text = MARKER.sub("", read(root, "README.md"))
    text = README_WHITELIST.sub("", re.sub(r"`[^`\n]*`", "", text))  # code names are no numbers
    bad = [(i + 1, line) for i, line in enumerate(text.split("\n")) if re.search(r"\d", line)]
    assert not bad, f"README.md has numbers outside its generated blocks: {bad}"


# ---------------------------------------------------------------- fixtures

def _render_docs():
    if "render_docs" not in sys.modules:  # scripts/ is no package: load the file by its path
        spec = importlib.util.spec_from_file_location("render_docs", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules["render_docs"] = module
        spec.loader.exec_module(module)
    return sys.modules["render_docs"]


def render(root: str, *args) -> int:
    """render_docs.py's exit status for --root ROOT ARGS, run in this process (fast)."""
    return _render_docs().main(["--root", root, *args])


def copy_docs(dst) -> str:
    """README.md and paper/'s sources, as committed, into a fresh root."""
    os.makedirs(os.path.join(dst, "paper"), exist_ok=True)
    shutil.copy(os.path.join(REPO, "README.md"), dst)
    for name in ("paper.md.in", "paper.tex.in", "original_study.json", "project_gpu_measurements.json"):
        shutil.copy(os.path.join(REPO, "paper", name), os.path.join(dst, "paper", name))
    return str(dst)


def synthetic_records() -> list[dict]:
    rng = random.Random(0)
    out = []

    def rec(image, attack, eps, trial, h, correct, severity=None, nonfinite=0):
        r = {"image": image, "question": "What color is the circle?", "prompt": "USER: <image>",
             "attack": attack, "epsilon": eps, "trial": trial, "seed": trial, "answer": "red",
             "token_entropies": [h, h], "mean_entropy": None if nonfinite else h, "n_tokens": 2,
             "n_nonfinite": nonfinite, "max_entropy": h + 0.1, "first_token_entropy": h,
             "mean_max_prob": 1 - h / 3, "min_max_prob": 0.5 - h / 5, "seq_nll": 2 * h,
             "perplexity": math.exp(h), "references": ["red"], "correct": correct}
        if severity is not None:
            r["severity"] = severity
        return r

    for i in range(6):
        img, h0 = f"data/scenes/scene_{i:03d}.png", 0.5 + rng.random()
        out.append(rec(img, "none", 0.0, 0, h0, rng.random() < 0.7))
        for eps in (0.1, 0.3, 8 / 255):
            for t in range(3):
                out.append(rec(img, "proxy", eps, t, h0 - 0.2 * eps + rng.gauss(0, 0.01),
                               rng.random() < 0.5))
        for sev in (1, 3):
            for t in range(2):
                out.append(rec(img, "corruption:gaussian_noise", 0.0, t, h0 + rng.gauss(0, 1e-4),
                               rng.random() < 0.5, severity=sev))
    out.append(rec("data/scenes/scene_000.png", "proxy", 0.3, 3, 0.0, False, nonfinite=1))
    return out


# The layouts experiments/benchmark.py and experiments/gpu_memory_check.py write.
BENCHMARK = {"hardware": {"device": "cpu", "device_name": "CPU (Test CPU, 2 cores)", "cores": 2},
             "model": {"model": "tiny", "parameters": 2345678, "dtype": "float32"},
             "work": {"units": 96, "max_new_tokens": 24},
             "one_at_a_time": {"batch_size": 1, "samples_per_s": 3.125, "peak_memory_gib": 0.61},
             "batched": {"batch_size": 32, "samples_per_s": 21.457, "peak_memory_gib": 0.93},
             "speedup": 6.87, "agreement": {"same_answers": 96, "of": 96},
             "decode_step": {"ms_batch_1": 4.2, "ms_batch_32": 6.9, "batch": 32},
             "when": "2030-01-02T04:00:00+0000"}
GPU_MEMORY = {"model": "LLaVA-1.5-7B architecture, random weights", "device_name": "NVIDIA Test GPU",
              "dtype": "float16", "attention": "sdpa", "checkpointing": True, "batch": 1,
              "parameters": 7063427072, "prompt_tokens": 629, "answer_tokens": 32, "weights_gib": 13.16,
              "peak_gib": 13.542, "t4_budget_gib": 14.5, "fits_t4": True,
              "seconds_per_step": [0.61, 0.47]}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """Docs rendered from a synthetic run with everything the renderer can show."""
    from analysis.figures import render_figures
    from analysis.summary import summarize

    root = copy_docs(tmp_path_factory.mktemp("docs_synthetic"))
    results = os.path.join(root, "results")
    os.makedirs(os.path.join(results, "figures"))
    summary = summarize(synthetic_records(), seed=0, n_boot=200)
    run = {"model": "tiny", "model_id": "models/tiny-llava", "dtype": "float32", "device": "cpu",
           "device_name": "CPU (Test CPU @ 2.80GHz, 2 cores)", "started": "2030-01-02T03:04:05+0000",
           "finished": "2030-01-02T03:05:06+0000", "git_commit": "0123456789abcdef",
           "command": "entropy_analysis.py --model tiny --trials 3", "parameters": 1234567,
           "config": {"attack": "proxy", "epsilons": [0.1, 0.3, 8 / 255], "trials": 3, "steps": 10,
                      "alpha": None, "max_new_tokens": 32, "seed": 0},
           "versions": {"torch": "2.13.0", "transformers": "5.24.0"}, "wall_time_s": 12.5,
           "peak_gpu_memory_gib": 13.542}
    for name, data in (("summary.json", summary), ("run.json", run),
                       ("benchmark_cpu.json", BENCHMARK), ("gpu_memory.json", GPU_MEMORY)):
        with open(os.path.join(results, name), "w", encoding="utf-8") as f:
            json.dump(data, f)
    render_figures(summary, os.path.join(results, "figures"), run)
    os.makedirs(os.path.join(root, "models", "tiny-llava"))
    with open(os.path.join(root, "models", "tiny-llava", "training.json"), "w") as f:
        json.dump({"command": "python models/tiny-llava/train.py", "steps": 1500, "batch_size": 64,
                   "parameters": 2345678, "train_wall_seconds": 601.3, "total_wall_seconds": 640.9,
                   "machine": {"cpu": "Test CPU", "nproc": 2, "threads": 1, "device": "cpu",
                               "torch": "2.13.0"},
                   "eval": {"per_type": {"color": {"accuracy": 0.991}, "count": {"accuracy": 1.0}}}}, f)
    assert render(root) == 0
    return root


@pytest.fixture(scope="module")
def real_run_root(tiny_ckpt, tmp_path_factory):
    """Docs rendered from a real (small) run of a tiny random checkpoint."""
    root = copy_docs(tmp_path_factory.mktemp("docs_real"))
    with open(os.path.join(REPO, "data", "scenes", "manifest.json"), encoding="utf-8") as f:
        entries = json.load(f)[:3]                       # three questions with reference answers
    for e in entries:
        e["file"] = os.path.join(REPO, "data", "scenes", e["file"])
    manifest = os.path.join(root, "manifest.json")
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(entries, f)
    r = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "entropy_analysis.py"),
                        "--model", tiny_ckpt, "--images", manifest,
                        "--epsilons", "0.1", "0.3", "--trials", "2", "--max-new-tokens", "2",
                        "--out", os.path.join(root, "results")],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert render(root) == 0
    return root


# ---------------------------------------------------------------- tests

def test_committed_docs_are_current():
    """(a) README.md and paper/ are what render_docs.py makes of results/ now (the command itself)."""
    r = subprocess.run([sys.executable, SCRIPT, "--check"], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def test_committed_docs_cite_their_numbers():
    """(b), (c) and (d) on the committed files, results or not."""
    check_docs(REPO)
    check_readme_prose(REPO)


def test_synthetic_run_docs(synthetic_root):
    check_docs(synthetic_root)
    check_readme_prose(synthetic_root)
    readme = read(synthetic_root, "README.md")
    for piece in ("table: delta proxy", "table: delta corruption:gaussian_noise",
                  "table: correct proxy", "table: kv benchmark_cpu", "table: kv gpu_memory",
                  "table: kv project_gradient_step", "table: kv project_decode",
                  "table: kv training"):
        assert piece in readme, piece
    paper = read(synthetic_root, PAPER_MD)
    assert "table: probes proxy" in paper and "../results/figures/figure_1_epsilon_delta.png" in paper
    assert "No run of LLaVA-1.5-7B is included in this version" in paper
    assert r"\includegraphics[width=0.8\linewidth]{../results/figures/figure_2_defense.png}" \
        in read(synthetic_root, PAPER_TEX)


def test_real_run_docs(real_run_root):
    check_docs(real_run_root)
    assert render(real_run_root, "--check") == 0


@pytest.mark.parametrize("edit", ["number", "original", "readme_prose", "prose_number"])
def test_checks_catch_hand_edits(synthetic_root, tmp_path, edit):
    """A number edited by hand fails --check and the read-back checks; so does a typed one."""
    root = str(tmp_path / "edited")
    shutil.copytree(synthetic_root, root)
    readme = read(root, "README.md")
    s = json.load(open(os.path.join(root, "results", "summary.json")))
    e = s["by_attack"]["proxy"]["by_epsilon"]["0.3"]
    if edit == "number":      # our mean Δ, off by one in the last printed digit
        row = next(ln for ln in readme.split("\n") if ln.startswith("| 0.3 (≈77/255) | "))
        cells = row.split(" | ")
        cells[2] = "+9.999" if not cells[2].startswith("+9") else "-9.999"
        readme = readme.replace(row, " | ".join(cells))
    elif edit == "original":  # the original study's Δ slipped into our prose
        d = next(r for r in json.load(open(os.path.join(root, "paper", "original_study.json")))["rows"]
                 if r["delta"])
        readme = readme.replace("<!-- END GENERATED: results -->",
                                f"The study saw {d['delta']:.3f} here.\n<!-- END GENERATED: results -->")
    elif edit == "readme_prose":
        readme = readme.replace("## Results\n", f"## Results\n\nMean Δ was {e['mean_delta']:.3f}.\n")
    if edit == "prose_number":
        paper = read(root, PAPER_MD).replace("## Limitations", "## Limitations\n\nAccuracy was 97.5%.")
        with open(os.path.join(root, PAPER_MD), "w", encoding="utf-8") as f:
            f.write(paper)
    else:
        with open(os.path.join(root, "README.md"), "w", encoding="utf-8") as f:
            f.write(readme)
    if edit == "readme_prose":  # README prose is hand-written: --check passes, (d) does not
        assert render(root, "--check") == 0
        with pytest.raises(AssertionError, match="outside its generated blocks"):
            check_readme_prose(root)
        return
    assert render(root, "--check") == 1
    with pytest.raises(AssertionError):
        check_docs(root)


def test_check_reports_missing_blocks(tmp_path, capsys):
    root = copy_docs(tmp_path)
    with open(os.path.join(root, "README.md"), "w") as f:
        f.write("# no blocks\n")
    assert render(root, "--check") == 2
    assert "lacks the generated blocks" in capsys.readouterr().err


def test_original_numbers_are_typed_only_in_original_study_json():
    orig = json.load(open(os.path.join(REPO, "paper", "original_study.json")))
    values = [f"{abs(r['delta']):.{orig['decimals']}f}" for r in orig["rows"] if r["delta"]]
    for rel in ("README.md", TEMPLATE, "paper/paper.tex.in", "scripts/render_docs.py",
                "paper/markup.py", "paper/results.py", "paper/sections.py", "tests/test_docs.py"):
        text = MARKER.sub("", read(REPO, rel))
        for v in values:
            assert not re.search(r"(?<![\d.])" + re.escape(v) + r"(?!\d)", text), (rel, v)


def test_readme_commands_match_ci():
    """The README's test command is the one .ci/run runs."""
    readme = read(REPO, "README.md")
    ci = read(REPO, ".ci/run")
    assert "pip install -r requirements-dev.txt && python -m pytest -q tests" in readme
    assert "pip install -r requirements.txt && python experiments/entropy_analysis.py --model tiny" \
        in readme
    assert re.search(r"^python3? -m pytest -q tests$", ci, re.M), ci


@pytest.mark.skipif(shutil.which("pdflatex") is None and os.environ.get("CI") != "true",
                    reason="pdflatex is not installed (Debian: texlive-latex-base "
                    "texlive-latex-recommended); .ci/run installs it, so CI never skips this")
def test_paper_tex_compiles(synthetic_root, tmp_path):
    """paper.tex, with every kind of table and the figures, builds with pdflatex."""
    root = str(tmp_path / "build")
    shutil.copytree(synthetic_root, root)
    for _ in range(2):  # the second pass settles references
        r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                           cwd=os.path.join(root, "paper"), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout[-3000:]
    assert os.path.getsize(os.path.join(root, "paper", "paper.pdf")) > 10_000
    log = read(root, "paper/paper.log")
    assert "LaTeX Warning: Reference" not in log and "Missing character" not in log, log[-2000:]
