"""Measure the Confidence Trap: token entropy of a VLM's answers, clean against perturbed.

    python experiments/entropy_analysis.py --model tiny        # embedded model, offline, CPU, seconds
    python experiments/entropy_analysis.py                     # LLaVA-1.5-7B, FP16 on the GPU
    python experiments/entropy_analysis.py --config configs/small_eps.yaml --out runs/small_eps

Writes into --out (default results/): records.jsonl (one line per generation, appended as
produced), run.json (config, model, versions, timing), summary.json, entropy_report.txt and
figures/. Run the same command again to resume; --fresh starts over. `--help` lists the flags,
one per field of confidence_trap/runner/config.py. Entropy Delta Δ = H_adv − H_clean, H = mean token
entropy (nats) of the greedy answer; ε is an L-inf budget in [0,1] pixel units at the model's
input resolution: ε = 0.3 (≈77/255). Bad input: one line on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import sys

try:
    from confidence_trap.runner import pipeline
    from confidence_trap.runner.config import add_arguments, build_config
    from confidence_trap.errors import InputError
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    add_arguments(p)

    def refuse(message):  # argparse would print its whole usage block; a bad flag gets one line
        raise InputError(f"{message} (see --help)")

    p.error = refuse
    cfg, changed = build_config(p.parse_args(argv))
    result = pipeline.run(cfg, changed=changed)
    if result.summary:
        for line in pipeline.describe(result):
            print(line, file=sys.stderr)
    return 0


def main(argv=None) -> int:
    try:
        return run(argv)
    except InputError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # always one line
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
