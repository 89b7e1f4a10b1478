"""python scripts/quickstart_speed.py --out results/quickstart_speed.json [--repeats 3]

Wall time of the quick start, whole process (interpreter start, imports, model load, sweep,
analysis, figures): `python experiments/entropy_analysis.py --model tiny` into a fresh folder,
batched as it runs by default and again with `--batch-size 1`, each --repeats times in a fresh
process, alternating, keeping the best of each (on a shared machine other load otherwise decides
the ratio). Counts how many answers the two give alike. Writes --out (JSON: seconds each way, their
ratio, the machine, the command).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from confidence_trap.runner import runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "experiments", "entropy_analysis.py")
MODES = {"batched": [], "batch_1": ["--batch-size", "1"]}


def timed_run(out: str, extra: list[str]) -> tuple[float, list]:
    """(wall seconds, the answers in record order) of one quick start in its own process."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, SCRIPT, "--model", "tiny", "--out", out, "--fresh", *extra],
                       capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    wall = time.perf_counter() - t
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"error: the quick start failed: {last}")
    with open(os.path.join(out, "records.jsonl"), encoding="utf-8") as f:
        answers = [json.loads(line)["answer"] for line in f]
    return wall, answers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join("results", "quickstart_speed.json"))
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    walls, answers = {m: [] for m in MODES}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for mode, extra in MODES.items():
                wall, answers[mode] = timed_run(os.path.join(tmp, mode), extra)
                walls[mode].append(round(wall, 2))
                print(f"{mode} run {i + 1}: {wall:.1f} s", file=sys.stderr)
    best = {m: min(w) for m, w in walls.items()}
    same = sum(a == b for a, b in zip(answers["batched"], answers["batch_1"]))
    result = {"command": "python experiments/entropy_analysis.py --model tiny",
              "batched_s": best["batched"], "batch_1_s": best["batch_1"],
              "speedup": round(best["batch_1"] / best["batched"], 2), "repeats": args.repeats, "all_runs_s": walls,
              "generations": len(answers["batched"]), "same_answers": same,
              "hardware": runs.device_name("cpu"), "cores": os.cpu_count(), "versions": runs.versions(),
              "git_commit": runs.git_commit(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "script": "scripts/quickstart_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    runs.atomic_write_json(args.out, result)
    print(f"wrote {args.out}: {result['batched_s']} s batched, {result['batch_1_s']} s at batch 1, "
          f"{result['speedup']}x", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
