#!/usr/bin/env bash
# bash scripts/gpu_checks.sh [--dry-run] [RESULTS_DIR]
#
# Every GPU measurement issue 20 asks for, on LLaVA-1.5-7B's architecture with random weights,
# in at most 8 minutes on one H100/H200, offline (nothing is downloaded), writing RESULTS_DIR
# (relative to the repository; default results/) gpu_memory.json, gpu_memory_fp16_vision.json, gpu_throughput.json,
# gpu_study.json, gpu_determinism.json and gpu_checks.json (with the original protocol's run), then
# printing a summary. Then
# `python scripts/render_docs.py` shows them in the README's *Speed and memory* section.
# Steps, in order, each with its own time limit inside one 460 s deadline; a step that fails or
# times out is recorded and the script goes on (each step's output: WORK/logs/STEP.log):
#   cache        the random-weights 7B built on the GPU in FP16 and saved as the Hugging Face
#                cache's copy of llava-hf/llava-1.5-7b-hf (WORK/hf/hub), with llava-hf's
#                processor files: `--model llava-1.5-7b` loads it through models.load as it
#                loads a user's download (~35 s)
#   study        configs/study.yaml (368 generations) through the CLI on the default path (its
#                batch and decode path as a user gets them) (~45 s)
#   resume       the same command again: a finished run, so no weights load (~10 s)
#   original     configs/original.yaml through the CLI: the study's own protocol (the plain prompt,
#                one teacher-forced forward pass a unit, its noise and clamp on the normalized
#                tensor) on the 7B's architecture: 586 positions, 576 of them the image's (~30 s)
#   determinism  two identical CLI runs with --deterministic side by side, then two without, on a
#                reduced grid (ε 0.3, 2 trials, batch 20: 80 generations), each pair compared byte
#                for byte (~70 s)
#   measure      one process, one load (scripts/gpu_measure.py): the PGD step's memory (CLIP
#                float32 and float16), the batch under --max-memory 14.5GiB, samples/s by batch
#                eager and compiled (each compile 40-54 s), the compiled decode step at batch 1
#                against the bandwidth floor, eager attention's cost, compiled-vs-eager agreement;
#                it skips what would not finish before the deadline (~4 min; the third compiled
#                size, batch 16, only if time is left)
#   report       scripts/gpu_report.py: gpu_study.json, gpu_determinism.json, gpu_checks.json, summary
# Give it a 600 s timeout. --dry-run: every step on CPU with the 7B's geometry at tiny widths,
# 4 new tokens and a reduced grid, into /tmp/gpu_checks_dry/results: a couple of minutes, exit 0,
# so that the script is known to run before a GPU is spent on it. WORK is /tmp/gpu_checks(_dry),
# or $GPU_CHECKS_WORK; the 7B's cache there takes 14 GB.
set -o pipefail   # not -e: a failed step is written down and the next one runs
deadline=$(( $(date +%s) + 460 ))   # 8 minutes, less the report's few seconds
cd "$(dirname "$0")/.."
dry=0
if [[ "${1:-}" == "--dry-run" ]]; then dry=1; shift; fi
if (( dry )); then suffix=_dry; else suffix=; fi
work="${GPU_CHECKS_WORK:-/tmp/gpu_checks$suffix}"
out="${1:-$( (( dry )) && echo "$work/results" || echo results)}"
rm -rf "$work/runs" "$work/logs" "$work/steps.tsv"
mkdir -p "$work/logs" "$work/runs" "$out"
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HOME="$work/hf" HF_HUB_CACHE="$work/hf/hub"
unset TRANSFORMERS_CACHE
PY="${PYTHON:-$(command -v python3 || command -v python)}"

if (( dry )); then
  tiny=(--tiny); dev=(--device cpu)
  grid=(--epsilons 0.3 --trials 1 --max-new-tokens 4)
  original=(--epsilons 0.3 --trials 1)
  pairs=(--epsilons 0.3 --trials 1 --max-new-tokens 4 --batch-size 4)
  omp=1
else
  tiny=(); dev=(); grid=(); original=()
  pairs=(--epsilons 0.3 --trials 2 --batch-size 20)
  omp=4
fi

# step NAME LIMIT_S COMMAND...: run it under the smaller of its limit and the time left; one line
# "name rc seconds note" in steps.tsv whatever happens.
step() {
  local name=$1 limit=$2; shift 2
  local left=$(( deadline - $(date +%s) ))
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    printf '%s\t%s\t%s\t%s\n' "$name" 124 0 "skipped: out of time" >> "$work/steps.tsv"
    echo "== $name: skipped (out of time)"; return
  fi
  echo "== $name (limit ${limit} s)"
  local t0=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@" > "$work/logs/$name.log" 2>&1
  local rc=$?
  local ds=$(( ($(date +%s%N) - t0) / 100000000 ))  # tenths of a second
  local note=""; (( rc == 124 || rc == 137 )) && note="timed out after ${limit} s"
  printf '%s\t%s\t%d.%d\t%s\n' "$name" "$rc" $(( ds / 10 )) $(( ds % 10 )) "$note" >> "$work/steps.tsv"
  echo "   rc $rc, $(( ds / 10 )) s; $(tail -n 1 "$work/logs/$name.log" | cut -c1-200)"
}

cli() {  # the project's own command line
  "$PY" experiments/entropy_analysis.py "${dev[@]}" "$@"
}

determinism() {  # two pairs, each pair's runs side by side (two 7B processes fit an H100's 80 GB)
  local rc=0
  export OMP_NUM_THREADS=$omp  # processes share the CPU (on a GPU the records are computed there)
  for pair in det def; do
    local flag=(); [[ $pair == det ]] && flag=(--deterministic)
    local pids=()
    for run in ${pair}_a ${pair}_b; do
      cli --config configs/study.yaml "${pairs[@]}" "${flag[@]}" --out "$work/runs/$run" \
        > "$work/logs/determinism_$run.log" 2>&1 &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || rc=$?; done
  done
  for run in det_a det_b def_a def_b; do echo "$run: $(tail -n 1 "$work/logs/determinism_$run.log")"; done
  return $rc
}
export -f cli determinism
export work PY omp
export dev_s="${dev[*]}" pairs_s="${pairs[*]}"

if (( ! dry )); then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU here (--dry-run runs on CPU)')" || exit 2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$work/logs/gpu.log"
fi
step cache 150 "$PY" scripts/gpu_measure.py cache "$HF_HUB_CACHE" "${tiny[@]}"
step study 150 "$PY" experiments/entropy_analysis.py "${dev[@]}" --config configs/study.yaml "${grid[@]}" --out "$work/runs/study"
step resume 60 "$PY" experiments/entropy_analysis.py "${dev[@]}" --config configs/study.yaml "${grid[@]}" --out "$work/runs/study"
step original 90 "$PY" experiments/entropy_analysis.py "${dev[@]}" --config configs/original.yaml "${original[@]}" --out "$work/runs/original"
step determinism 180 bash -c 'dev=($dev_s); pairs=($pairs_s); determinism'
step measure 400 "$PY" scripts/gpu_measure.py measure "$out" "${tiny[@]}" --deadline $(( deadline - 15 ))
"$PY" scripts/gpu_report.py "$work" "$out"
echo "wrote $out/gpu_*.json; then: python scripts/render_docs.py"
