"""Measure the Confidence Trap: token entropy of a VLM's answers, clean against perturbed.

    python experiments/entropy_analysis.py --model tiny        # embedded model, offline, CPU, seconds
    python experiments/entropy_analysis.py                     # LLaVA-1.5-7B, FP16 on the GPU
    python experiments/entropy_analysis.py --config configs/small_eps.yaml --out runs/small_eps
"""
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("confidence_trap") is None:  # a plain checkout, not installed yet
        sys.exit("error: confidence_trap is not importable: run `pip install -e .` in the repository first")
    from confidence_trap.cli import main  # the command's body; its docstring says what it writes
    sys.exit(main())
