"""Rebuild summary.json, entropy_report.txt and figures/ from an existing records.jsonl.

    python experiments/analyze.py --out results/
    python experiments/analyze.py --out results/ --records other/records.jsonl --seed 0
    python experiments/analyze.py --out results/ --min-effect 0.02    # the verdicts' δ, in nats
"""
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("confidence_trap") is None:  # a plain checkout, not installed yet
        sys.exit("error: confidence_trap is not importable: run `pip install -e .` in the repository first")
    from confidence_trap.runner.analyze import main  # the command's body; its docstring says what it writes
    sys.exit(main())
