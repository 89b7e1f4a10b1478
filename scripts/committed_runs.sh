#!/usr/bin/env bash
# bash scripts/committed_runs.sh
#
# Every run committed in results/, from scratch, on the embedded model (CPU, a few minutes), then
# the README and the paper rendered from them:
#   results/                     the default run: the study's proxy at its ε grid (the quick start)
#   results/controls/entropy_min true-gradient PGD built to LOWER entropy, at 8/255: the positive control
#   results/controls/entropy_max its mirror, built to raise it
#   results/controls/proxy       the study's proxy at the same 8/255
#   results/sampled/             the default grid, one trial, with --samples 5: semantic and
#                                consistency entropy beside the greedy probes
#   results/original/            the original study's own protocol (configs/original.yaml): the logo,
#                                one teacher-forced forward pass, noise and clamp in normalised space
#   results/original_photos/     the same protocol over the bundled photos (many images)
set -euo pipefail
cd "$(dirname "$0")/.."
run() { python3 experiments/entropy_analysis.py --model tiny --fresh "$@"; }
run
run --attack pgd --objective entropy_min --epsilons 8/255 --trials 2 --out results/controls/entropy_min
run --attack pgd --objective entropy_max --epsilons 8/255 --trials 2 --out results/controls/entropy_max
run --epsilons 8/255 --out results/controls/proxy
run --samples 5 --trials 1 --out results/sampled
run --config configs/original.yaml --out results/original
run --config configs/original_photos.yaml --out results/original_photos
python3 scripts/render_docs.py
