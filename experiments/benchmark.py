"""Time the batched sweep against the one-at-a-time loop: same model, same units, one run.

    python experiments/benchmark.py --model tiny --repeats 3 --out results/benchmark_cpu.json
    python experiments/benchmark.py --random-weights configs/llava-1.5-7b.json \\
        --max-memory 14.5GiB --out results/benchmark_gpu.json    # LLaVA-1.5-7B shapes, on a GPU

The command lives in `confidence_trap/runner/benchmark.py`, whose docstring says what it writes;
this file is the entry point a user runs.
"""
import sys

try:
    from confidence_trap.runner.benchmark import main
except ModuleNotFoundError as e:  # a plain checkout: the package is not installed yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

if __name__ == "__main__":
    sys.exit(main())
