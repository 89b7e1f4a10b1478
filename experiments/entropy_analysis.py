"""Measure the Confidence Trap: token entropy of a VLM's answers, clean against perturbed.

    python experiments/entropy_analysis.py --model tiny        # embedded model, offline, CPU, seconds
    python experiments/entropy_analysis.py                     # LLaVA-1.5-7B, FP16 on the GPU
    python experiments/entropy_analysis.py --config configs/small_eps.yaml --out runs/small_eps

The command lives in `confidence_trap/cli.py`, whose docstring says what it writes;
this file is the entry point a user runs.
"""
import sys

try:
    from confidence_trap.cli import main
except ModuleNotFoundError as e:  # a plain checkout: the package is not installed yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

if __name__ == "__main__":
    sys.exit(main())
