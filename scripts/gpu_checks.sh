#!/usr/bin/env bash
# bash scripts/gpu_checks.sh [RESULTS_DIR]
#
# The two GPU measurements this repository's docs wait for, on the LLaVA-1.5-7B architecture with
# random weights (nothing downloaded; about 10 minutes on an H100/H200, longer on smaller GPUs):
#   1. gpu_memory_check.py: peak memory of one true-gradient PGD step at batch 1 (SDPA and
#      gradient checkpointing, the T4 path), the vision tower in float32 as the original runs it
#      -> RESULTS_DIR/gpu_memory.json, and all in FP16 -> RESULTS_DIR/gpu_memory_fp16_vision.json,
#      about a minute each;
#   2. benchmark.py: the sweep one at a time against batched, and batches under a T4-sized
#      budget -> RESULTS_DIR/benchmark_gpu.json.
# Then `python scripts/render_docs.py` puts both into README.md and the paper.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results}"
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU here')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 300 python3 experiments/gpu_memory_check.py --out "$out/gpu_memory.json"
timeout 300 python3 experiments/gpu_memory_check.py --vision-dtype float16 --out "$out/gpu_memory_fp16_vision.json"
timeout 900 python3 experiments/benchmark.py --random-weights configs/llava-1.5-7b.json \
  --max-memory 14.5GiB --out "$out/benchmark_gpu.json"
echo "now: python scripts/render_docs.py"
