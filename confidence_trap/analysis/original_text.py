"""The report's section "The original experiment, as its code ran", from summary["original"] alone.

    from confidence_trap.analysis.original_text import clean_line, section
    for part in section(summary, run_info):   # paragraphs (str) and tables (Table), in order
        ...                                   # confidence_trap/analysis/report.py lays them out
    print(clean_line(summary, run_info))      # our clean entropy beside the original's (the notebook)

The section quotes the original's own runs and clean entropy as theirs (summary["original"]
["theirs"], paper/original_study.json's code block as the analysis was given it: repository and
commit in the caption), then the ε ↔ σ pairing, what the protocol measures (positions: the
original's on LLaVA-1.5, and this run's), and this run's decomposition by position kind under
this run's label. Their numbers and ours stand in separate tables with separate labels.
"""
from __future__ import annotations

import dataclasses

from confidence_trap.analysis.original_tables import decomposition, pairing, runs, their_fmt, their_runs
from confidence_trap.analysis.tables import Table, num, pct, run_label

TITLE = "The original experiment, as its code ran"


def answerless(summary: dict) -> bool:
    """A run of the original protocol alone: the probe, and no generated answer anywhere."""
    block = summary.get("original") or {}
    return block.get("generated") is False and not summary.get("by_attack") and not summary["clean"].get("n")


def _captioned(t: Table | None) -> Table | None:
    """Their table with its label in its title: the report prints titles, and theirs must say whose."""
    return t and dataclasses.replace(t, title=t.caption)


def _positions(block: dict, code: dict | None) -> str:
    c = block["clean"]
    out = []
    p = (code or {}).get("positions")
    if p:
        out.append(f"On LLaVA-1.5 the original's prompt is {p['n_positions']} positions, "
                   f"{p['n_image_positions']} of them image patches ({pct(p['n_image_positions'] / p['n_positions'])}), "
                   "so its mean is mostly the language model's next-token distributions at image positions; "
                   "only the last position's distribution is about the answer (its first token).")
    if c["n_positions"] is not None and c["n_image_positions"] is not None:
        out.append(f"This run's prompt is {c['n_positions']} positions, {c['n_image_positions']} of them image "
                   f"positions ({pct(c['n_image_positions'] / c['n_positions'])}).")
    elif c["n_positions_range"]:
        lo, hi = c["n_positions_range"]
        out.append(f"This run's prompts are {lo} to {hi} positions long.")
    return " ".join(out)


def _noise(block: dict) -> str:
    n = (block.get("noise") or {}).get("all")
    if not n:
        return ("This run has no null control, so no noise floor: its Δs cannot be told from the "
                "run-to-run drift of the forward pass.")
    if n["exact_zero"]:
        return ("The null control ran every clean input's forward pass again in another batch and every "
                "prompt entropy came out exactly the same: the noise floor is 0 on this hardware and dtype.")
    return (f"The null control ran every clean input's forward pass again in another batch: Δ_null "
            f"of the prompt entropy {num(n['mean_delta'])} nats, noise floor {num(n['floor'])} nats.")


def section(summary: dict, run_info: dict) -> list:
    """The section's paragraphs (str) and tables (Table), in reading order; [] without the block."""
    block = summary.get("original")
    if not block:
        return []
    code = block.get("theirs")
    out: list = []
    if code:
        out += [f"The original study's code ({code['repository']} at {code['commit']}) ran {code['measure']}, "
                f"on one image, {code['image']}, and one prompt ({code['prompt']!r}; prompt format "
                f"{code['prompt_format']}), perturbed by {code['perturbation']}. Its numbers here are quoted "
                f"from {code['file']}, as its repository records them; they are not ours.",
                _captioned(their_runs(code))]
        out += [f"Not run by the original: {code['not_run']}."] if code.get("not_run") else []
    holds = "holds for every ε of this run" if block["pairing_holds"] else "does NOT hold for every ε of this run"
    out += [f"ε ↔ σ: {block['pairing']}. The pairing {holds}. ε here names a noise level; it is not "
            "an L∞ bound in pixel units, as ε is in the paper's protocol.", pairing(block)]
    out += [t for t in [_positions(block, code)] if t]
    out += [run_label(run_info), decomposition(block, run_info),
            block["clusters"], runs(block, run_info), _noise(block)]
    if block.get("other_attacks"):
        out.append(f"Also perturbed with the probe, not taken apart here: {', '.join(block['other_attacks'])}.")
    return [x for x in out if x]


def clean_line(summary: dict, run_info: dict) -> str:
    """Our clean prompt entropy beside the original's clean 4.8681, each with whose it is."""
    block = summary.get("original") or {}
    c, code = block.get("clean") or {}, block.get("theirs")
    ours = (f"Clean prompt entropy, mean over every position: {num(c.get('all'))} nats, ours "
            f"({run_label(run_info).removeprefix('Our run: ').rstrip('.')})")
    if not code:
        return ours + "."
    return (f"{ours}; the original's: {their_fmt(code, code['clean'], False)} nats, theirs ({code['model']}; "
            f"{code['hardware']}; {code['repository']} at {code['commit']}).")

