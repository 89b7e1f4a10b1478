"""The docs' view of the original protocol's runs, for confidence_trap/docs/build.py's context.

    from confidence_trap.docs.original import original_context
    ctx["orig"] = original_context(root, results, study, (summary, run_info))
    ctx["orig"]["first_table"]    # the README's first table, side by side (None without the run)
    ctx["orig"]["found"]          # the sentences of analysis/original_findings.py ([] without the run)
    ctx["orig"]["survives"]       # over the photos: the row of the original perturbation, every
                                  # position, at the shown ε; its "answer": survives, reverses, ...

RUN (results/original/: the logo, configs/original.yaml) and PHOTOS (results/original_photos/: the
bundled photos, configs/original_photos.yaml) are read where present; everything here is None or
empty where they are absent, so the docs skip the original rows and figure. The tables are
confidence_trap/analysis/original_tables.py's; this module only finds the runs and the figure.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from markupsafe import Markup

from confidence_trap.analysis.original import beyond_one_image, shown_epsilon
from confidence_trap.analysis.original_tables import (beyond, decomposition, first_table, pairing, runs,
                                                      their_runs)
from confidence_trap.analysis.original_findings import original_findings
from confidence_trap.analysis.original_text import clean_line
from confidence_trap.analysis.tables import run_label

RUN, PHOTOS = "original", "original_photos"   # folders of results/


def run_of(folder: str) -> tuple | None:
    """(summary, run.json) of a run folder whose summary has the original block, else None."""
    path = Path(folder, "summary.json")
    if not path.exists():
        return None
    info = Path(folder, "run.json")
    if not info.exists():
        raise ValueError(f"{path} has no run.json beside it to label its tables with the model and hardware")
    try:
        s, i = json.loads(path.read_text(encoding="utf-8")), json.loads(info.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"{folder}: not readable as JSON ({e})") from None
    return (s, i) if s.get("original") else None


def _figure(root: str, folder: str) -> dict:
    """The figure's path for the README and docs/RESULTS.md, and for the paper with its width."""
    from confidence_trap.analysis.plot import TEXT_WIDTH_IN, printed_width
    from confidence_trap.analysis.figures_original import FIGURE_NAME

    png = os.path.join(folder, "figures", FIGURE_NAME)
    if not os.path.exists(png):
        return {"figure": None}
    rel = os.path.relpath(png, root).replace(os.sep, "/")
    return {"figure": rel, "figure_tex": Markup(os.path.relpath(png, os.path.join(root, "paper")).replace(os.sep, "/")),
            "figwidth": Markup(f"{min(printed_width(png), TEXT_WIDTH_IN):.2f}in")}


def original_context(root: str, results: str, study: dict, paper: tuple | None) -> dict:
    """Everything the templates show of the original protocol; `paper` is (summary, run.json) of
    the run of the paper's protocol (results/), None where absent."""
    logo, photos = run_of(os.path.join(results, RUN)), run_of(os.path.join(results, PHOTOS))
    code = study.get("code")
    out = {"run": logo, "photos": photos, "their_runs": their_runs(code), "beyond": None, "beyond_rows": [],
           "survives": None,
           "first_table": first_table(study, logo, paper if paper and paper[0] else None) if logo else None,
           "figure": None, "found": original_findings(logo, photos),
           "key": shown_epsilon(logo[0]["original"]) if logo else None}
    for name, run in (("", logo), ("photos_", photos)):
        if run:
            block, info = run[0]["original"], run[1]
            out.update({f"{name}label": run_label(info), f"{name}command": info.get("command"),
                        f"{name}clean_line": clean_line(*run), f"{name}pairing": pairing(block),
                        f"{name}decomposition": decomposition(block, info), f"{name}runs": runs(block, info)})
    if logo:
        out.update(_figure(root, os.path.join(results, RUN)))
    if logo and photos:
        rows = beyond_one_image(logo[0]["original"], photos[0]["original"])
        out["beyond_rows"] = rows
        out["beyond"] = beyond(rows, logo[1], photos[1], photos[0]["original"]["n_images"])
        key = shown_epsilon(logo[0]["original"])  # the headline: the original perturbation, every position
        out["survives"] = next((r for r in rows if r["part"] == "both" and r["kind"] == "all"
                                and key is not None and r["epsilon"] == float(key)), None)
    return out
