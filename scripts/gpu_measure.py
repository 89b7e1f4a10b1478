"""python scripts/gpu_measure.py cache HUB_DIR [--tiny]
python scripts/gpu_measure.py measure RESULTS_DIR [--tiny] [--deadline EPOCH]

The in-process half of scripts/gpu_checks.sh, which runs both with HF_HUB_CACHE=HUB_DIR.
`cache` builds LLaVA-1.5-7B's architecture (configs/llava-1.5-7b.json) with random weights on the
GPU in FP16, with llava-hf's processor files (tests/fixtures/llava-1.5-7b-hf-processor), and saves
it where a Hugging Face cache at HUB_DIR keeps a download of llava-hf/llava-1.5-7b-hf
(confidence_trap.models.checkpoint.save_to_hub_cache): `--model llava-1.5-7b` then loads it offline through
models.load, as a user's downloaded copy loads. `measure` loads it once that way and writes, on
the units of the study grid (configs/study.yaml):
  gpu_memory.json, gpu_memory_fp16_vision.json   one true-gradient PGD step at batch 1 (SDPA,
      checkpointing), CLIP in float32 then in float16 (experiments/gpu_memory_check.measure)
  gpu_throughput.json   the batch confidence_trap/models/decoding.py picks under --max-memory 14.5GiB and its
      peak; samples/s by batch, eager; eager attention's cost, and whether one batch run twice
      repeats bit for bit with SDPA and with eager attention; the compiled path by batch (the
      first pass, which compiles, timed apart), its decode step at batch 1 against the
      memory-bandwidth floor, and its records' agreement with eager (confidence_trap/runner/agreement.py)
A throughput point runs one batch twice through the sweep's own run_batch and times the second.
Each measurement is written as soon as it is done, a failure as {"error": ...} in its place, and
one that would not finish before --deadline (seconds since the epoch) as {"skipped": ...}.
--tiny: the same on CPU with the 7B's geometry at tiny widths (confidence_trap.models.checkpoint.shrunk), 4 new
tokens, small batches: the dry run that shows the script works before a GPU is spent on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback

import torch

from confidence_trap.runner import pipeline, runs
from confidence_trap.runner.config import Config, coerce, load_yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_7B = os.path.join(REPO, "configs", "llava-1.5-7b.json")
GRID = os.path.join(REPO, "configs", "study.yaml")
BUDGET = "14.5GiB"
SIZES = {  # batches measured, new tokens, the batch of the eager-attention and agreement checks
    "gpu": dict(eager=[8, 16, 32, 64, 128], compiled=[64, 1, 16], new_tokens=32, check=64, compile_s=75,
                budget_units=None),
    "tiny": dict(eager=[2, 4], compiled=[4, 1], new_tokens=4, check=4, compile_s=5, budget_units=8),
}


def cache(hub: str, tiny: bool) -> None:
    """Build and save the stand-in, unless a whole one from an earlier run is there (`.built`)."""
    import shutil

    from confidence_trap.models import MODELS
    from confidence_trap.models.checkpoint import random_llava, save_to_hub_cache, shrunk

    repo = os.path.join(hub, "models--" + MODELS["llava-1.5-7b"].replace("/", "--"))
    built = os.path.join(repo, ".built")
    if os.path.exists(built) and open(built, encoding="utf-8").read().strip() == ("tiny" if tiny else "7b"):
        print(f"kept the stand-in saved earlier in {repo}")
        return
    shutil.rmtree(repo, ignore_errors=True)  # a half-written one from a run cut short
    t = time.perf_counter()
    device = "cpu" if tiny else "cuda"
    model, processor = random_llava(shrunk(CONFIG_7B) if tiny else CONFIG_7B, device,
                                    torch.float32 if tiny else torch.float16)
    build_s = time.perf_counter() - t
    folder = save_to_hub_cache(model, processor, MODELS["llava-1.5-7b"], hub)
    with open(built, "w", encoding="utf-8") as f:
        f.write("tiny" if tiny else "7b")
    print(f"built in {build_s:.1f} s, saved to {folder} in {time.perf_counter() - t - build_s:.1f} s")


class Book:
    """A JSON file filled in as measurements finish."""

    def __init__(self, path: str, data: dict, deadline: float | None):
        self.path, self.data, self.deadline = path, data, deadline
        self.save()

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def put(self, key: str, fn, need_s: float = 0.0, into: str | None = None):
        """data[key] (or data[into][key]) = fn(), or what stopped it; returns fn()'s value or None."""
        place = self.data.setdefault(into, {}) if into else self.data
        value = None
        if self.left() < need_s:
            place[key] = {"skipped": f"out of time: {self.left():.0f} s left, it needs about {need_s:.0f} s"}
        else:
            try:
                value = place[key] = fn()
            except Exception as e:  # noqa: BLE001 - one failure must not cost the other measurements
                traceback.print_exc()
                place[key] = {"error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"}
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        self.save()
        return value

    def save(self) -> None:
        runs.atomic_write_json(self.path, self.data)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def take(units: list, n: int) -> list:
    return (units * (n // len(units) + 1))[:n]


def timed(sweep, units, device) -> tuple[list, float, float | None]:
    """(records, seconds, peak GiB on CUDA) of one run_batch."""
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    records = pipeline.run_batch(sweep, units)
    sync(device)
    seconds = time.perf_counter() - t
    peak = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3) if device.startswith("cuda") else None
    return records, seconds, peak


def point(sweep, units, device) -> tuple[dict, list]:
    """One batch twice: the first pass (warm-up, or the compile) and the timed second."""
    first, first_s, _ = timed(sweep, units, device)
    records, seconds, peak = timed(sweep, units, device)
    same = json.dumps(first, sort_keys=True) == json.dumps(records, sort_keys=True)
    return {"batch": len(units), "first_pass_s": round(first_s, 3), "seconds": round(seconds, 3),
            "samples_per_s": round(len(units) / seconds, 2), "peak_gib": peak, "repeat_identical": same}, records


def on_path(model, path: str, max_cache_len=None, deterministic=False):
    from confidence_trap.models.decoding import Decoding, apply

    d = Decoding(0, "", path, "gpu_measure", deterministic=deterministic,
                 attention="eager" if deterministic else None, max_cache_len=max_cache_len)
    apply(model, d)
    return d


def memory(sweep, results: str, device: str, label: dict) -> dict:
    """The PGD step with CLIP as loaded (float32 on CUDA), then in float16; the tower restored."""
    from confidence_trap.runner.memory import measure
    from confidence_trap.models import set_vision_dtype, vision_parts

    model, out = sweep.vlm.model, {}
    tower, _ = vision_parts(model)
    kept = {k: v.detach().to("cpu", copy=True) for k, v in tower.state_dict().items()}
    try:
        for name, dtype in (("gpu_memory.json", None), ("gpu_memory_fp16_vision.json", torch.float16)):
            if dtype is not None:
                set_vision_dtype(model, dtype)
            report = {**label, **measure(model, sweep.vlm.processor, device, original=sweep.vlm.original_ids)}
            runs.atomic_write_json(os.path.join(results, name), report)
            out[name] = {k: report.get(k) for k in ("vision_dtype", "peak_gib", "fits_t4", "seconds_per_step")}
    finally:
        tower.to(next(iter(kept.values())).dtype)
        tower.load_state_dict(kept)
    return out


def budget(sweep, cfg, units, n_prompt, device) -> dict:
    """Two batches at what confidence_trap/models/decoding.py picks for a T4 under a T4-sized --max-memory (its
    path: eager, since a T4 streams the 7B's weights slower than eager steps launch)."""
    from confidence_trap.models.batching import parse_memory
    from confidence_trap.models.decoding import apply, choose

    c = dataclasses.replace(cfg, max_memory=BUDGET)
    d = choose(sweep.vlm.model, device, len(units), n_prompt, c.max_new_tokens, c, gpu="Tesla T4")
    apply(sweep.vlm.model, d)
    try:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        work = units[:2 * d.batch]
        for start in range(0, len(work), d.batch):
            pipeline.run_batch(sweep, work[start:start + d.batch])
        sync(device)
        seconds = time.perf_counter() - t
    finally:
        on_path(sweep.vlm.model, "eager")
    cuda = device.startswith("cuda")
    peak = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3) if cuda else None
    return {"max_memory": BUDGET, "batch_size": d.batch, "chosen_by": d.why, "path": d.path,
            "units": len(work), "seconds": round(seconds, 2), "peak_gib": peak,
            "within_budget": peak <= parse_memory(BUDGET) / 2 ** 30 if cuda else None}


def header(p, sweep, model_label: str, device: str, tiny: bool, load_s: float, wbytes: int) -> dict:
    """gpu_throughput.json's opening: what was measured, on what, when."""
    from confidence_trap.models import vision_dtype_of

    name, model = runs.device_name(device), sweep.vlm.model
    return {
        "label": f"{name}; {model_label}; git {(runs.git_commit() or '')[:7]}; {time.strftime('%Y-%m-%d')}",
        "hardware": {"device_name": name, "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory
                                                                  / 2 ** 30, 1) if not tiny else None},
        "versions": runs.versions(), "git_commit": runs.git_commit(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"model": model_label, "checkpoint": p.model.checkpoint, "load_s": round(load_s, 1),
                  "dtype": p.view["dtype"], "vision_dtype": vision_dtype_of(model), "prompt_format": p.fmt,
                  "scored_vocab_size": sweep.vlm.vocab.size, "weights_gib": round(wbytes / 2 ** 30, 3),
                  "parameters": sum(q.numel() for q in model.parameters())}}


def measure(results: str, tiny: bool, deadline: float | None) -> int:
    from confidence_trap.runner.benchmark import bandwidth, decode_ms
    from attacks import NULL_PAD
    from confidence_trap.models import vision_parts
    from confidence_trap.models.batching import knee, prompt_tokens, weight_bytes

    size = SIZES["tiny" if tiny else "gpu"]
    device = "cpu" if tiny else "cuda"
    os.makedirs(results, exist_ok=True)
    grid = Config(**{k: coerce(k, v) for k, v in load_yaml(GRID).items()})
    cfg = dataclasses.replace(grid, device=device, max_new_tokens=size["new_tokens"])
    t = time.perf_counter()
    p = pipeline.plan(cfg, check_out=False)
    sweep = pipeline.prepare(p)
    load_s = time.perf_counter() - t
    model, units = sweep.vlm.model, pipeline.make_units(cfg, sweep.items)
    n_prompt = prompt_tokens(sweep.vlm.processor, sweep.prompts, sweep.images.pixels([0]), sweep.vlm.original_ids)
    new, steps = cfg.max_new_tokens, max(cfg.max_new_tokens, 8)
    gbs, gbs_from = bandwidth(device)
    wbytes = weight_bytes(model)
    floor_ms = 1000 * wbytes / (gbs * 1e9) if gbs else None  # all weights, as benchmark.py and the issue count
    tower, projector = vision_parts(model)  # a decode step reads the language model's alone
    text_bytes = wbytes - sum(weight_bytes(m) for m in (tower, projector) if m is not None)
    label = {"model": f"LLaVA-1.5-7B architecture, random weights{' (tiny widths: dry run)' if tiny else ''}",
             "config_source": "models.load('llava-1.5-7b') from a local Hugging Face cache ("
                              + ("configs/llava-1.5-7b.json, shrunk" if tiny else "configs/llava-1.5-7b.json") + ")"}
    book = Book(os.path.join(results, "gpu_throughput.json"), {
        **header(p, sweep, label["model"], device, tiny, load_s, wbytes),
        "work": {"grid": "configs/study.yaml", "units": len(units), "prompt_tokens": n_prompt, "max_new_tokens": new},
        "knee": {"compiled": knee(n_prompt, new), "eager": knee(n_prompt, new, compiled=False)}}, deadline)
    book.put("memory", lambda: memory(sweep, results, device, label), need_s=20)
    book.put("budget", lambda: budget(sweep, cfg, units[:size["budget_units"]], n_prompt, device), need_s=15)
    kept = {}
    for b in size["eager"]:
        def run(b=b):
            pt, kept[b] = point(sweep, take(units, b), device)
            return pt
        book.put(str(b), run, need_s=5 + b * 0.15, into="eager")
    eager = book.data["eager"]
    xs, ps = sweep.images.pixels([units[0].item]), [sweep.prompts[units[0].item]]
    book.put("decode_step_eager_ms_batch_1", lambda: decode_ms(sweep, xs, ps, steps, device), need_s=10)
    check = size["check"]
    book.put("eager_attention", lambda: eager_attention(sweep, take(units, check), device, eager.get(str(check)),
                                                        xs, ps, steps), need_s=20)
    put_compiled(book, sweep, units, size, tiny, device, kept, n_prompt + NULL_PAD + steps, (xs, ps, steps))
    compiled = book.data["compiled"]
    step = (compiled.get("1") or {}).get("ms_per_decode_step")
    book.data["decode_step"] = {
        "eager_ms_batch_1": book.data.get("decode_step_eager_ms_batch_1"), "compiled_ms_batch_1": step,
        "floor_ms": round(floor_ms, 3) if floor_ms else None, "bandwidth_gb_s": gbs, "bandwidth_from": gbs_from,
        "compiled_over_floor": round(step / floor_ms, 2) if step and floor_ms else None, "target_at_most": 3.0,
        "floor_ms_language_model_only": round(1000 * text_bytes / (gbs * 1e9), 3) if gbs else None}
    book.data.pop("decode_step_eager_ms_batch_1", None)
    book.data["by_batch"] = {k: {"eager": (eager.get(k) or {}).get("samples_per_s"),
                                 "compiled": (compiled.get(k) or {}).get("samples_per_s")}
                             for k in sorted(set(eager) | set(compiled), key=int)}
    book.save()
    print(f"wrote {book.path}, gpu_memory.json, gpu_memory_fp16_vision.json")
    return 0


def put_compiled(book, sweep, units, size: dict, tiny: bool, device: str, kept: dict, cache_len: int,
                 timing: tuple) -> None:
    """Samples/s at each compiled batch size (a static cache of one length, `cache_len`, so one
    shape per batch; compiled on CUDA), the decode step at batch 1, and the records' agreement
    with the eager pass at the same batch (`kept`)."""
    from confidence_trap.runner.agreement import agreement, tie_gaps
    from confidence_trap.runner.benchmark import decode_ms

    model, path = sweep.vlm.model, "static" if tiny else "compiled"  # transformers compiles on CUDA only
    for b in size["compiled"]:
        def run(b=b):
            if not tiny:  # each size compiled afresh, as a run compiles its one shape
                import torch._dynamo

                torch._dynamo.reset()
            on_path(model, path, max_cache_len=cache_len)
            try:
                pt, recs = point(sweep, take(units, b), device)
                pt["compile_s"] = round(pt["first_pass_s"] - pt["seconds"], 1)
                if b == 1:
                    pt["ms_per_decode_step"] = decode_ms(sweep, *timing, device)
            finally:
                on_path(model, "eager")
            if b in kept:
                pt["agreement_with_eager"] = agreement(kept[b], recs, tie_gaps(sweep, take(units, b), kept[b], recs))
            return pt
        book.put(str(b), run, need_s=size["compile_s"], into="compiled")


def eager_attention(sweep, units, device, sdpa: dict | None, xs, ps, steps) -> dict:
    """The same batch with eager attention and --deterministic's other settings, then SDPA again."""
    from confidence_trap.runner.benchmark import decode_ms
    from confidence_trap.models.decoding import repeatable

    d = on_path(sweep.vlm.model, "eager", deterministic=True)
    try:
        with repeatable(d):
            pt, _ = point(sweep, units, device)
            ms = decode_ms(sweep, xs, ps, steps, device)
    finally:
        sweep.vlm.model.set_attn_implementation("sdpa")
    out = {"batch": len(units), "eager_attention": pt, "ms_per_decode_step_batch_1": ms,
           "settings": "eager attention, use_deterministic_algorithms(warn_only), cuDNN deterministic "
                       "(CUBLAS_WORKSPACE_CONFIG is the CLI's, not set here)"}
    if sdpa and "samples_per_s" in sdpa:
        out.update(sdpa_samples_per_s=sdpa["samples_per_s"], sdpa_repeat_identical=sdpa["repeat_identical"],
                   slowdown=round(sdpa["samples_per_s"] / pt["samples_per_s"], 2))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("what", choices=["cache", "measure"])
    ap.add_argument("folder", help="cache: the hub cache folder; measure: the results folder")
    ap.add_argument("--tiny", action="store_true", help="CPU, the 7B's geometry at tiny widths (the dry run)")
    ap.add_argument("--deadline", type=float, help="seconds since the epoch: skip what would end after it")
    args = ap.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("error: no CUDA GPU here (--tiny runs the same on CPU)", file=sys.stderr)
        return 2
    if args.what == "cache":
        cache(args.folder, args.tiny)
        return 0
    return measure(args.folder, args.tiny, args.deadline)


if __name__ == "__main__":
    sys.exit(main())
