"""Peak memory of one true-gradient PGD step on the LLaVA-1.5-7B architecture, batch 1.

    python experiments/gpu_memory_check.py --out results/gpu_memory.json   # a CUDA GPU, ~1 min
    python experiments/gpu_memory_check.py --tiny --out /tmp/gpu_memory.json   # same code, tiny Llava, CPU, seconds

The command lives in `confidence_trap/runner/memory.py`, whose docstring says what it writes;
this file is the entry point a user runs.
"""
import sys

try:
    from confidence_trap.runner.memory import main
except ModuleNotFoundError as e:  # a plain checkout: the package is not installed yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

if __name__ == "__main__":
    sys.exit(main())
