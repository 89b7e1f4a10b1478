"""python experiments/scene_datasets.py {pope,vqa} OUT [--rows N] [--layout L] [--seed S] [--size PX]



The command lives in `confidence_trap/tasks/scene_datasets.py`, whose docstring says what it writes;
this file is the entry point a user runs.
"""
import sys

try:
    from confidence_trap.tasks.scene_datasets import main
except ModuleNotFoundError as e:  # a plain checkout: the package is not installed yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

if __name__ == "__main__":
    sys.exit(main())
