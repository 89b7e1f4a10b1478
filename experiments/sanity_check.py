"""Check the environment, then load a model and answer one bundled image: proof that the stack
works before a long sweep, and a verdict with the command that fixes each problem.

    python experiments/sanity_check.py --model tiny
    python experiments/sanity_check.py --model llava-1.5-7b      # on a GPU (Colab T4: ~13.5 GiB)

The command lives in `confidence_trap/runner/sanity.py`, whose docstring says what it writes;
this file is the entry point a user runs.
"""
import sys

try:
    from confidence_trap.runner.sanity import main
except ModuleNotFoundError as e:  # a plain checkout: the package is not installed yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

if __name__ == "__main__":
    sys.exit(main())
