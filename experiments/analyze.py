"""Rebuild summary.json, entropy_report.txt and figures/ from an existing records.jsonl.

    python experiments/analyze.py --out results/
    python experiments/analyze.py --out results/ --records other/records.jsonl --seed 0
    python experiments/analyze.py --out results/ --min-effect 0.02    # the verdicts' δ, in nats

The command lives in `confidence_trap/runner/analyze.py`, whose docstring says what it writes;
this file is the entry point a user runs.
"""
import sys

try:
    from confidence_trap.runner.analyze import main
except ModuleNotFoundError as e:  # a plain checkout: the package is not installed yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

if __name__ == "__main__":
    sys.exit(main())
