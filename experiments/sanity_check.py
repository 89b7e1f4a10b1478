"""Check the environment, then load a model and answer one bundled image: proof that the stack
works before a long sweep, and a verdict with the command that fixes each problem.

    python experiments/sanity_check.py --model tiny
    python experiments/sanity_check.py --model llava-1.5-7b      # on a GPU (Colab T4: ~13.5 GiB)
"""
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("confidence_trap") is None:  # a plain checkout, not installed yet
        sys.exit("error: confidence_trap is not importable: run `pip install -e .` in the repository first")
    from confidence_trap.runner.sanity import main  # the command's body; its docstring says what it writes
    sys.exit(main())
