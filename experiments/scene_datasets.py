"""python experiments/scene_datasets.py {pope,vqa} OUT [--rows N] [--layout L] [--seed S] [--size PX]


"""
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("confidence_trap") is None:  # a plain checkout, not installed yet
        sys.exit("error: confidence_trap is not importable: run `pip install -e .` in the repository first")
    from confidence_trap.tasks.scene_datasets import main  # the command's body; its docstring says what it writes
    sys.exit(main())
