"""Peak memory of one true-gradient PGD step on the LLaVA-1.5-7B architecture, batch 1.

    python experiments/gpu_memory_check.py --out results/gpu_memory.json   # a CUDA GPU, ~1 min
    python experiments/gpu_memory_check.py --tiny --out /tmp/gpu_memory.json   # same code, tiny Llava, CPU, seconds
"""
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("confidence_trap") is None:  # a plain checkout, not installed yet
        sys.exit("error: confidence_trap is not importable: run `pip install -e .` in the repository first")
    from confidence_trap.runner.memory import main  # the command's body; its docstring says what it writes
    sys.exit(main())
