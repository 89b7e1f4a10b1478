"""Time the batched sweep against the one-at-a-time loop: same model, same units, one run.

    python experiments/benchmark.py --model tiny --repeats 3 --out results/benchmark_cpu.json
    python experiments/benchmark.py --random-weights configs/llava-1.5-7b.json \\
        --max-memory 14.5GiB --out results/benchmark_gpu.json    # LLaVA-1.5-7B shapes, on a GPU
"""
import importlib.util
import sys

if __name__ == "__main__":
    if importlib.util.find_spec("confidence_trap") is None:  # a plain checkout, not installed yet
        sys.exit("error: confidence_trap is not importable: run `pip install -e .` in the repository first")
    from confidence_trap.runner.benchmark import main  # the command's body; its docstring says what it writes
    sys.exit(main())
