"""render_report(summary, run_info) -> the text of entropy_report.txt, from summary.json alone.

    from confidence_trap.analysis.report import render_report
    print(render_report(summary, {"model": "tiny", "dtype": "float32", "device": "cpu"}))

A header naming the run and the conventions, the run's findings in words (confidence_trap/analysis/findings.py,
the sentences the README and the paper print), then the tables of confidence_trap/analysis/tables.py (the same
the README, the paper and the notebook show) as fixed-width text: the run-wide ones, then one
block per attack, then "Is it the language prior?" (confidence_trap/analysis/prior_text.py's sentences). A
closed-answer metric (POPE) that reads fewer than 80% of the answers gets a warning at the top, in
words. "n/a" marks a number that is undefined (see the summary docstring for when). Nothing
here computes or formats a number: the tables do. No timestamps, so a rerun gives the same bytes.
"""
from __future__ import annotations

import textwrap

from confidence_trap.analysis.findings import takeaways
from confidence_trap.analysis.levels import level_label
from confidence_trap.analysis.original_text import TITLE as ORIGINAL_TITLE, answerless, section as original_section
from confidence_trap.analysis.prior_text import prior_sentences
from confidence_trap.analysis.tables import Table, build, levels, pct
from confidence_trap.analysis.verdicts import MIN_EFFECT, MIN_EFFECT_WHY

CATEGORY_TABLES = ("clean", "noise", "delta", "floor", "correct", "calibration", "selective", "signals", "pope")
HEADLINE = ("Headline: the mean token entropy over every generated step, the one that emits "
            "end-of-sequence included, because that is the answer as generated (when to stop is one of "
            "the model's choices, and an entropy filter sees it); 'no EOS' leaves that step out.")
NO_NOISE = ("Noise floor: none. This run has no null control (--no-null-control, or a run from "
            "before it existed), so it calls no fall and no rise: a verdict needs the run's own noise "
            "floor. Run the command again without --no-null-control to measure it.")
EXACT_ZERO = ("The null control changed nothing: every repeated input gave exactly the same entropy, "
              "so the noise floor is 0 on this hardware and dtype (measured, not assumed).")
FLOOR_WARNING = ("At the entropy floor: more than half of the pairs have a clean answer whose mean token "
                 "entropy is below 0.01 nats (the floor table above). There a mean Δ cannot fall "
                 "much (it is bounded by minus the mean clean entropy), so a rise or no change is "
                 "forced by construction and does not show that perturbation leaves confidence "
                 "alone; read the log-ratio column and the calibration instead.")
VALID_BELOW = 0.8  # under this share of readable answers, a closed-answer metric means little
VALIDITY_WARNING = ("WARNING: the metric reads closed answers (yes or no), and fewer than {floor} of the "
                    "answers are one in: {where}. There the metric is not meaningful: an answer that is "
                    "neither (the embedded model's \"red circle\" to a yes/no question) counts as yes under "
                    "LLaVA's rule, so accuracy, recall and the yes-ratio describe the parser, not the model "
                    "(the \"valid\" column of the POPE table).")
EPS_LINE = "ε is in [0,1] pixel units at the model's input resolution: ε = 0.3 (≈77/255)"


def _header(summary: dict, run_info: dict) -> list[str]:
    ri = run_info or {}
    model = ri.get("model") or ri.get("model_id") or "unknown model"
    if ri.get("model_id") and ri.get("model_id") != model:
        model += f" ({ri['model_id']})"
    if ri.get("revision"):
        model += f" @ {ri['revision']}"
    device = ri.get("device") or "unknown device"
    if ri.get("device_name"):
        device += f" ({ri['device_name']})"
    meta = summary["meta"]
    lines = ["Entropy under perturbation: The Confidence Trap reproduction",
             f"model: {model}   dtype: {ri.get('dtype', 'n/a')}   device: {device}"]
    # No timestamps here: the same command and seed must give a byte-identical report.
    run = _run_line(summary, ri)
    if run:
        lines.append("run: " + run)
    return lines + [
        EPS_LINE,
        "Δ = H_perturbed - H_clean (mean token entropy, nats), paired by image and question",
        *textwrap.wrap(HEADLINE, 100),
        *textwrap.wrap(f"verdict rule: {meta.get('verdict_rule', 'n/a (an analysis from before verdicts)')}", 100),
        *textwrap.wrap(("δ: " if meta.get("min_effect", MIN_EFFECT) == MIN_EFFECT else
                        "δ: set by --min-effect; ") + MIN_EFFECT_WHY + ".", 100),
        *textwrap.wrap(f"entropy filter: {meta['filter_rule']}", 100) * ("filter_rule" in meta),
        *textwrap.wrap(f"95% CIs: percentile bootstrap over {meta.get('cluster', 'items')}, not trials, "
                       f"{meta['bootstrap_resamples']} resamples, seed {meta['seed']}; Wilcoxon "
                       "signed-rank, two-sided, on item means", 100),
    ]


def _run_line(summary: dict, run_info: dict) -> str:
    """The run's settings as the report writes them elsewhere: levels labelled (8/255, 0.2
    (51/255)), and the ε grid only where an attack is graded by ε, the severities only where one
    is graded by severity."""
    cfg = dict(run_info.get("config") or {}, git_commit=run_info.get("git_commit"))
    kinds = {sec["grouped_by"] for sec in (summary.get("by_attack") or {}).values()} or {"epsilon"}
    shown = {"epsilons": "epsilon" in kinds, "severities": "severity" in kinds}

    def cell(key, v):
        if key == "epsilons":
            return ", ".join(level_label(repr(float(x)), "epsilon") for x in v)
        return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return "   ".join(f"{k}: {cell(k, cfg[k])}" for k in ("attack", "epsilons", "severities", "trials", "seed",
                                                           "max_new_tokens", "git_commit")
                       if cfg.get(k) is not None and shown.get(k, True))


def validity_warning(summary: dict) -> list[str]:
    """The warning lines where a closed-answer metric reads fewer than VALID_BELOW of the answers."""
    def blocks(s, prefix=""):
        yield f"{prefix}clean", s.get("clean") or {}
        for a in sorted(s.get("by_attack") or {}):
            for lab, e in levels(s["by_attack"][a]):
                yield f"{prefix}{a} at {lab}", e
    rated = [(name, e["valid_rate"]) for c, sub in [(None, summary)] + sorted((summary.get("by_category") or {}).items())
             for name, e in blocks(sub, f"category {c}, " if c else "") if e.get("valid_rate") is not None]
    low = [(name, v) for name, v in rated if v < VALID_BELOW]
    where = (f"every level and category (at most {pct(max(v for _, v in low))})" if len(low) == len(rated) > 1
             else "; ".join(f"{name} ({pct(v)})" for name, v in low))
    return [textwrap.fill(VALIDITY_WARNING.format(floor=pct(VALID_BELOW), where=where), 100), ""] if low else []


def text(t: Table, indent="  ") -> str:
    """A table as fixed-width text: numbers right-aligned, text left."""
    widths = [max(len(c) for c in col) for col in zip(t.headers, *t.rows)]
    align = t.align or "l" + "r" * (len(t.headers) - 1)

    def line(cells):
        return (indent + "  ".join(c.rjust(w) if a == "r" else c.ljust(w)
                                   for c, w, a in zip(cells, widths, align))).rstrip()
    return "\n".join([line(t.headers), indent + "  ".join("-" * w for w in widths)]
                     + [line(r) for r in t.rows])


def _block(t: Table) -> list[str]:
    return [textwrap.fill(t.title, 100), text(t), ""]


def _noise_note(noise: dict | None) -> list[str]:
    """The sentence a noise block needs beside its table: none measured, or exactly zero."""
    if noise is None:
        return [textwrap.fill(NO_NOISE, 100), ""]
    return [textwrap.fill(EXACT_ZERO, 100), ""] if noise.get("exact_zero") else []


def render_report(summary: dict, run_info: dict | None = None) -> str:
    """The whole report as one string, ending in a newline."""
    if answerless(summary):  # the original protocol: one forward pass over the prompt, no answer
        return _original_only(summary, run_info or {})
    tables = build(summary, run_info or {})
    lines = _header(summary, run_info or {}) + [""] + validity_warning(summary)
    found = takeaways(summary, run_info or {})  # the README's and the paper's sentences too
    lines += ["Findings:"] + [textwrap.fill(t, 100, initial_indent="- ", subsequent_indent="  ") for t in found] + [
        ""] if found else []
    lines += [x for t in tables if t.attack is None for x in _block(t)]
    lines += _noise_note(summary.get("noise"))
    if not summary["by_attack"]:
        lines += ["No perturbed records: nothing to compare against clean.", ""]
    for attack in sorted(summary["by_attack"]):
        lines += [f"== attack: {attack} ==", ""]
        lines += [x for t in tables if t.attack == attack for x in _block(t)]
        if summary["by_attack"][attack]["by_epsilon"] and any(
                e["floor"]["majority_at_floor"] for e in summary["by_attack"][attack]["by_epsilon"].values()
                if e.get("floor")):
            lines += [textwrap.fill(FLOOR_WARNING, 100), ""]
    for c, sub in sorted(summary.get("by_category", {}).items()):  # a dataset run's categories
        lines += [f"== category: {c} ==", ""]
        lines += [x for t in build({**summary, **sub, "by_category": {}}, run_info or {}, CATEGORY_TABLES)
                  for x in _block(t)]
        lines += _noise_note(sub.get("noise"))
    if "prior" in summary:  # a summary without the key predates the prior pass's analysis
        lines += ["== Is it the language prior? ==", ""]
        lines += [x for p in prior_sentences(summary) for x in (textwrap.fill(p, 100), "")]
    return "\n".join(lines + _original(summary, run_info or {}) + _nonfinite(summary)).rstrip() + "\n"


def _nonfinite(summary: dict) -> list[str]:
    nf = summary["nonfinite"]
    if not nf["count"]:
        return []
    shown = nf["records"][:20]
    lines = _block(Table(f"Excluded for non-finite logits ({nf['count']}):", ["image", "attack", "epsilon", "trial"],
                         [[str(r.get(k)) for k in ("image", "attack", "epsilon", "trial")] for r in shown], "llrr"))
    return lines + [f"  ... and {nf['count'] - len(shown)} more (see summary.json)", ""] * (nf["count"] > len(shown))


def _original(summary: dict, run_info: dict) -> list[str]:
    """The original protocol's section (confidence_trap/analysis/original_text.py), where the run has it."""
    parts = original_section(summary, run_info)
    return [f"== {ORIGINAL_TITLE} ==", ""] + [x for p in parts for x in (
        _block(p) if isinstance(p, Table) else [textwrap.fill(p, 100), ""])] if parts else []


def _original_only(summary: dict, run_info: dict) -> str:
    """The report of a run of the original protocol alone: no answers, so no answer tables."""
    head = _header(summary, run_info)
    lines = head[:head.index(EPS_LINE)] + [""] + _original(summary, run_info)
    lines += [x for t in build(summary, run_info, ["noise"]) for x in _block(t)] + _noise_note(summary.get("noise"))
    return "\n".join(lines + _nonfinite(summary)).rstrip() + "\n"
