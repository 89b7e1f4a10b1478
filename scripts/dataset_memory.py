"""python scripts/dataset_memory.py --out results/dataset_memory.json [--rows 200 2000]

Peak memory of a dataset run against the number of rows: for each N, a local POPE-layout dataset
of N rows of drawn scenes at 336 px (experiments/scene_datasets.py, PNG bytes in the dataset, as
COCO's JPEGs are in lmms-lab/POPE) is swept by `python experiments/entropy_analysis.py --model
tiny --task configs/tasks/pope.yaml --epsilons 0.1 --trials 1` in a fresh process, and that
process's peak resident memory is read off getrusage. Images are decoded batch by batch, so the
peak should not grow with N (the records and the summary do, by a few kB a row). Writes --out
(JSON: rows -> peak GiB, the ratio of the largest to the smallest, the machine, the command).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from confidence_trap.runner import runs
from confidence_trap.tasks.scene_datasets import build_pope

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "experiments", "entropy_analysis.py")


def peak_of_run(dataset: str, out: str) -> tuple[float, float]:
    """(peak resident GiB, wall seconds) of one sweep over the dataset, in its own process."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    argv = [sys.executable, SCRIPT, "--model", "tiny", "--task", os.path.join(REPO, "configs", "tasks", "pope.yaml"),
            "--dataset", dataset, "--epsilons", "0.1", "--trials", "1", "--out", out, "--fresh"]
    t = time.time()
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                       env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"))
    if r.returncode != 0:
        sys.exit(f"error: the sweep over {dataset} failed: {r.stderr.strip().splitlines()[-1:]}")
    return int(r.stdout.split()[-1]) / 2**20, time.time() - t  # ru_maxrss is in KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--rows", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--out", default=os.path.join("results", "dataset_memory.json"))
    args = ap.parse_args(argv)
    result = {"rows": {}, "wall_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(args.rows):
            data = build_pope(os.path.join(tmp, f"pope{n}"), n, layout="parquet", size=336)
            peak, wall = peak_of_run(data, os.path.join(tmp, f"run{n}"))
            result["rows"][str(n)], result["wall_s"][str(n)] = round(peak, 3), round(wall, 1)
            print(f"{n} rows: peak {peak:.3f} GiB ({wall:.0f} s)", file=sys.stderr)
    peaks = [result["rows"][str(n)] for n in sorted(args.rows)]
    result.update(peak_ratio=round(peaks[-1] / peaks[0], 3), generations_per_row=2,
                  setup="--model tiny, POPE layout (parquet), drawn scenes at 336 px, ε 0.1, one trial",
                  hardware=runs.device_name("cpu"), versions=runs.versions(), git_commit=runs.git_commit(),
                  command="scripts/dataset_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  when=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    runs.atomic_write_json(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
