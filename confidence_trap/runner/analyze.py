"""Rebuild summary.json, entropy_report.txt and figures/ from an existing records.jsonl.

    python experiments/analyze.py --out results/
    python experiments/analyze.py --out results/ --records other/records.jsonl --seed 0
    python experiments/analyze.py --out results/ --min-effect 0.02    # the verdicts' δ, in nats

Reads OUT/records.jsonl (or --records) and OUT/run.json when present (model, dtype and device
for the report header and figure captions; config.min_effect, the verdicts' δ, which
--min-effect overrides and confidence_trap.analysis.verdicts.MIN_EFFECT stands in for when absent); writes
OUT/summary.json, OUT/entropy_report.txt and OUT/figures/*.png, each atomically (a run of the
original protocol: summary["original"], its report section and figure 7,
confidence_trap/runner/original_image.py reading what they need). Loads no model and never imports torch. Bad input (missing
or empty records, unreadable run.json) prints one line on stderr and exits with status 2;
analyze_run raises ValueError with that line. confidence_trap.runner.pipeline calls analyze_run(out_dir)
at the end of a run.
"""
from __future__ import annotations

import argparse
import os
import sys

try:
    from confidence_trap.analysis.levels import level_kind
    from confidence_trap.runner.runs import atomic_write_json, atomic_write_text, read_info, read_records
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")


REQUIRED = ("image", "question", "attack", "epsilon", "trial")


def _record_problem(rec) -> str | None:
    """Why a record cannot be analysed, or None."""
    if not isinstance(rec, dict):
        return "is not a JSON object"
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        return f"lacks {', '.join(missing)}"
    kind = level_kind(rec)
    try:
        int(rec["trial"])
        if kind == "severity":  # a severity stands in for ε
            int(rec["severity"])
        elif kind == "epsilon":
            float(rec["epsilon"])
    except (TypeError, ValueError, KeyError):
        return "has a non-numeric epsilon, severity or trial"
    return None


def original_study() -> dict | None:
    """paper/original_study.json (the study's reported Δ, drawn apart in figure 1), if present."""
    import json

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "paper",
                        "original_study.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def min_effect_of(run_info: dict, override: float | None = None) -> float:
    """δ for the verdicts: the override, else run.json's config.min_effect, else the default."""
    from confidence_trap.analysis.verdicts import MIN_EFFECT

    value = override if override is not None else (run_info.get("config") or {}).get("min_effect")
    if value is None:
        return MIN_EFFECT
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"min_effect (δ) must be a number of nats, 0 or more; got {value!r}")
    return float(value)


def analyze_run(out_dir: str, records_path: str | None = None, seed: int = 0,
                n_boot: int | None = None, figures: bool = True, min_effect: float | None = None) -> dict:
    """Summarise OUT/records.jsonl and write summary.json, entropy_report.txt, figures/."""
    records_path = records_path or os.path.join(out_dir, "records.jsonl")
    if not os.path.exists(records_path):
        raise ValueError(f"{records_path}: no such file")
    try:
        records = read_records(records_path)
    except OSError as e:
        raise ValueError(str(e)) from None
    if not records:
        raise ValueError(f"{records_path}: no records")
    for i, r in enumerate(records):
        problem = _record_problem(r)
        if problem:
            raise ValueError(f"{records_path}: record {i + 1} {problem}")
    run_info = read_info(out_dir, strict=True)
    # Imported here so bad input is reported without first paying for matplotlib's import.
    from confidence_trap.analysis.figures import render_figures
    from confidence_trap.analysis.figures_original import render_original_figure
    from confidence_trap.runner.original_image import figure_image
    from confidence_trap.analysis.report import render_report
    from confidence_trap.analysis.summary import summarize

    os.makedirs(out_dir, exist_ok=True)
    study = original_study()
    summary = summarize(records, seed=seed, min_effect=min_effect_of(run_info, min_effect),
                        original_code=(study or {}).get("code"), **({} if n_boot is None else {"n_boot": n_boot}))
    atomic_write_json(os.path.join(out_dir, "summary.json"), summary)
    atomic_write_text(os.path.join(out_dir, "entropy_report.txt"),
                      render_report(summary, run_info))
    if figures:
        import matplotlib.style

        with matplotlib.style.context("default"):  # a user's matplotlibrc must not change the PNGs' bytes
            render_figures(summary, os.path.join(out_dir, "figures"), run_info, study)
            render_original_figure(summary, os.path.join(out_dir, "figures"), run_info,
                                   **figure_image(summary, run_info))
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--out", default="results", help="run folder holding records.jsonl")
    ap.add_argument("--records", default=None, help="records file (default OUT/records.jsonl)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples (default confidence_trap.analysis.stats.N_BOOT)")
    ap.add_argument("--no-figures", action="store_true", help="skip the PNGs")
    ap.add_argument("--min-effect", type=float, default=None,
                    help="δ in nats for the verdicts (default: run.json's, else confidence_trap.analysis.verdicts.MIN_EFFECT)")
    args = ap.parse_args(argv)
    if args.bootstrap is not None and args.bootstrap < 1:
        ap.error("--bootstrap must be at least 1")
    if args.min_effect is not None and not args.min_effect >= 0:
        ap.error("--min-effect must be a number of nats, 0 or more")
    try:
        analyze_run(args.out, args.records, args.seed, args.bootstrap, not args.no_figures, args.min_effect)
    except ValueError as e:
        print(f"analyze: {e}", file=sys.stderr)
        return 2
    print(f"wrote {os.path.join(args.out, 'summary.json')}, entropy_report.txt, figures/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
