"""python scripts/render_docs.py [--check] [--root DIR] [--results DIR]

Renders paper/paper.tex from the jinja2 template paper/paper.tex.j2 and docs/RESULTS.md (every
table) from paper/results.md.j2, and fills each block <!-- BEGIN GENERATED: name --> of README.md
with the macro `name` of paper/readme.md.j2. All see context(): confidence_trap/analysis/tables.py's tables of
RESULTS/summary.json and run.json (laid out by confidence_trap/docs/render.py; a page states the run once, so its
tables do not repeat it), the run's findings (confidence_trap/analysis/findings.py, the report's sentences too),
the original study's table (paper/original_study.json, the only file with its numbers), the files
paper/quantities.yaml tabulates, and the print width of each figure. --check writes nothing, exits
1 if a file is stale; --root renders a copy (README.md, docs/ and paper/ under DIR); --results
defaults to ROOT/results. Exits 2 on bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path

import jinja2
import yaml
from markupsafe import Markup

import confidence_trap.analysis.tables as lib
from confidence_trap.analysis.findings import attack_title, headline, takeaways
from confidence_trap.analysis.levels import level_label
from confidence_trap.analysis.tables import Table, build, run_label, side_by_side
from confidence_trap.docs.render import kv, latex, markdown, original, table_key, tex
from confidence_trap.docs.original import original_context

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # paper/ is in the repository

MARKER = re.compile(r"<!-- BEGIN GENERATED: ([\w-]+) -->\n.*?<!-- END GENERATED: \1 -->", re.S)
EXAMPLE_EPS = 0.3               # ε of the worked example of its unit
GPU_FILES = ("study", "throughput", "determinism", "memory", "study_b184")  # RESULTS/gpu_*.json the README sums up


def load(path: str):
    """A JSON file's content, None when it is absent."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ValueError(f"{path}: not readable as JSON ({e})") from None


def strongest(t: Table, s: dict) -> Table:
    """A per-level table of the sampled run cut to the three signals the text compares, on clean
    inputs and at the strongest level."""
    last = lib.levels(s["by_attack"][t.attack])[-1][0]
    keep = ("mean entropy", "semantic entropy", "consistency entropy")
    return dataclasses.replace(t, name="signals-sampled",
                               rows=[r for r in t.rows if r[0] in ("clean", last) and r[1] in keep])


def runs_in(folder: str) -> dict:
    """{name: (summary, run.json)} of the run folders in `folder` (the controls), by name."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return {n: (load(os.path.join(folder, n, "summary.json")), load(os.path.join(folder, n, "run.json")) or {})
            for n in names if os.path.exists(os.path.join(folder, n, "summary.json"))}


def questions_in(root: str) -> str:
    """How many distinct questions each bundled image set asks: "9 in data/photos, 9 in data/scenes"."""
    sets = [(d, load(os.path.join(root, "data", d, "manifest.json"))) for d in ("photos", "scenes")]
    return ", ".join(f"{len({e['question'] for e in m})} in data/{d}" for d, m in sets if m)


def context(root: str, results: str) -> dict:
    """Everything the templates may show, by name."""
    from confidence_trap.analysis.figures import FIGURE_NAMES, MIN_POSITION_ANSWERS
    from confidence_trap.analysis.plot import TEXT_WIDTH_IN, printed_width
    from confidence_trap.analysis.prior_contrast import contrast_sentences
    from confidence_trap.analysis.prior_text import attack_sentences, questions_sentence
    from attacks.corruptions import CORRUPTIONS
    from confidence_trap.runner.config import Config, load_yaml, parse_fraction
    from confidence_trap.runner.runs import OUTPUT_FILES

    rel = os.path.relpath(os.path.abspath(results), os.path.abspath(root)).replace(os.sep, "/")
    s, info = load(os.path.join(results, "summary.json")), load(os.path.join(results, "run.json")) or {}
    study = load(os.path.join(root, "paper", "original_study.json"))
    if study is None or (s is not None and not info):
        raise ValueError("paper/original_study.json is missing" if study is None else f"{rel}/summary.json "
                        "has no run.json beside it to label its tables with the model and hardware")
    specs = yaml.safe_load(Path(root, "paper", "quantities.yaml").read_text(encoding="utf-8"))
    kvs = {k: kv(k, spec, d, file=spec["file"].format(rel=rel), run_label=run_label(info))
           for k, spec in specs.items() if (d := load(os.path.join(root, spec["file"].format(rel=rel))))}
    small = os.path.join(REPO, "configs", "small_eps.yaml")
    controls = runs_in(os.path.join(results, "controls"))
    sampled = runs_in(results).get("sampled")  # results/sampled/: the run with --samples
    figures = [n for n in FIGURE_NAMES if s and os.path.exists(os.path.join(results, "figures", n))]
    widths = {n: printed_width(os.path.join(results, "figures", n)) for n in figures}  # inches, as printed
    gpu = {n: load(os.path.join(results, f"gpu_{n}.json")) for n in GPU_FILES}  # scripts/gpu_checks.sh
    hl = headline(s) if s and s.get("by_attack") else None
    prior = ((s or {}).get("prior") or {}).get("by_attack", {}).get(hl)
    low = controls.get("entropy_min")  # the control the prior contrast is drawn with
    return dict(controls=side_by_side(controls) if controls else None, found=takeaways(s, info, controls),
                gpu=gpu, quick=load(os.path.join(results, "quickstart_speed.json")),
                prior_lines=attack_sentences(hl, prior) if prior else [],
                prior_questions=questions_sentence(s["prior"]["n_questions"]) if prior else "",
                default_questions=questions_in(root),
                contrast=contrast_sentences(s, low[0]) if prior and low else [],
                headline=headline(s) if s and s.get("by_attack") else None,
                attack_title=attack_title, md=markdown, key=lambda *a: Markup(table_key(*a)), min_position_answers=MIN_POSITION_ANSWERS,
                sampled=sampled, sampled_tables=[strongest(t, sampled[0]) for t in build(*sampled, names=["signals"])]
                if sampled else [],
        rel=rel, s=s, info=info, label=run_label(info), kv=kvs, study=study, original_table=original(study),
        orig=original_context(root, results, study, (s, info)),  # results/original*: issue 25
        tables=build(s, info) if s else [], lib=lib,  # lib: the formatters, levels() and level_name()
        is_llava="llava-1.5" in str(info.get("model_id") or info.get("model")).lower(),
        figures=figures, figwidth={n: Markup(f"{min(w, TEXT_WIDTH_IN):.2f}in") for n, w in widths.items()},
        narrow={n for n, w in widths.items() if w <= TEXT_WIDTH_IN / 2},  # two fit side by side
        figdir=Markup(os.path.relpath(os.path.join(root, rel, "figures"), os.path.join(root, "paper"))),
        example=level_label(repr(EXAMPLE_EPS), "epsilon"), example_eps=EXAMPLE_EPS,
        eps=[level_label(repr(float(e)), "epsilon") for e in Config().epsilons],
        small_eps=[level_label(repr(parse_fraction(e)), "epsilon") for e in load_yaml(small).get("epsilons", [])]
        if os.path.exists(small) else [], corruptions=list(CORRUPTIONS),
        output_files=list(OUTPUT_FILES) + [f"figures/{n}" for n in FIGURE_NAMES])


def environment(root: str, for_latex: bool, stated: str = "") -> jinja2.Environment:
    """Tables render as markdown or LaTeX, without the provenance `stated` once on their page; for
    LaTeX, the delimiters \\VAR{...}, \\BLOCK{...} and %{# comment #}, and text is escaped unless it
    is Markup."""
    def finalize(v):
        if isinstance(v, Table):
            return latex(v, stated) if for_latex else markdown(v, stated)
        return tex(v) if for_latex and not isinstance(v, Markup) else v
    delims = dict(variable_start_string=r"\VAR{", variable_end_string="}", block_start_string=r"\BLOCK{",
                  block_end_string="}", comment_start_string="%{#", comment_end_string="#}") if for_latex else {}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(root), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             finalize=finalize, **delims)
    env.filters["columns"] = lib.columns  # a table cut to the columns a page has room for
    return env


def render_all(root: str, results: str) -> dict:
    """{path relative to root: rendered text} for README.md, docs/RESULTS.md and paper/paper.tex."""
    ctx = context(root, results)
    stated = ctx["label"] if ctx["s"] else ""
    macros = environment(root, False, stated).get_template("paper/readme.md.j2").make_module(ctx)
    readme = Path(root, "README.md").read_text(encoding="utf-8")
    if missing := {"findings", "original"} - set(MARKER.findall(readme)):
        raise ValueError(f"README.md lacks the generated blocks {', '.join(sorted(missing))}")

    def fill(m):
        text = str(getattr(macros, m[1].replace("-", "_"))()).strip()
        return f"<!-- BEGIN GENERATED: {m[1]} -->\n{text}\n<!-- END GENERATED: {m[1]} -->"
    return {"README.md": MARKER.sub(fill, readme),
            "docs/RESULTS.md": environment(root, False, stated).get_template("paper/results.md.j2").render(ctx),
            "paper/paper.tex": environment(root, True, stated).get_template("paper/paper.tex.j2").render(ctx)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    ap.add_argument("--root", default=REPO, help="folder holding README.md and paper/")
    ap.add_argument("--results", default=None, help="run folder (default ROOT/results)")
    args = ap.parse_args(argv)
    results = args.results or os.path.join(args.root, "results")
    try:
        rendered = render_all(args.root, results)
    except (ValueError, OSError, AttributeError, KeyError, TypeError, jinja2.TemplateError) as e:
        print(f"render_docs: {type(e).__name__}: {e}", file=sys.stderr)  # e.g. a field missing
        return 2
    stale = []
    for rel, text in rendered.items():
        path = Path(args.root, rel)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                Path(f"{path}.tmp").write_text(text, encoding="utf-8")
                os.replace(f"{path}.tmp", path)  # a reader never sees half a file
    if args.check and stale:
        print(f"render_docs: out of date (run python scripts/render_docs.py): {', '.join(stale)}",
              file=sys.stderr)
        return 1
    print("render_docs: " + (f"README.md, docs/RESULTS.md and paper/ agree with {results}" if args.check
                             else f"wrote {', '.join(stale) or 'nothing (all up to date)'}"))
    return 0
