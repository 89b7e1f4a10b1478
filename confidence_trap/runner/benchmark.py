"""Time the batched sweep against the one-at-a-time loop: same model, same units, one run.

    python experiments/benchmark.py --model tiny --repeats 3 --out results/benchmark_cpu.json
    python experiments/benchmark.py --random-weights configs/llava-1.5-7b.json \\
        --max-memory 14.5GiB --out results/benchmark_gpu.json    # LLaVA-1.5-7B shapes, on a GPU

Runs the experiment's own sweep (confidence_trap.runner.sweep: perturb, generate, probe) over the units of
the default sweep (or --images/--epsilons/--trials/--units), first one unit at a time, then in
batches as entropy_analysis.py runs them eagerly (--batch-size, else the smaller of the largest
that fits and the eager knee, with the same OOM back-off), and prints samples per second for both and their ratio; milliseconds per
decode step at batch 1 and at the batch, against the memory-bandwidth floor (weight bytes /
bandwidth, from a table of GPUs, or a measured copy bandwidth on CPU); peak memory. Both
baselines decode eagerly with the model as loaded, whatever the flags: no static cache, no
compile. With --max-memory it also runs --budget-batches batches at the batch chosen under that
budget and reports their peak; with --static-cache, the batched pass again on the compiled path
(confidence_trap/models/decoding.py: a static KV cache of one length for the run, the last batch padded; on CUDA
generate compiles the decode step; the first batch, compile included, is timed apart), and the
agreement of its records with the eager batched pass's (confidence_trap/runner/agreement.py: the same
answers except near-ties, token entropies within 1e-3 nats).
--random-weights builds the architecture of a config.json (no download) with random weights in
the GPU's memory and llava-hf's processor with the real Llama-2 tokenizer
(confidence_trap.models.checkpoint.random_llava; the llava_v1 prompt, 576 image tokens at 336 px). The flags the
experiment shares are derived from confidence_trap/runner/config.py as it derives its own. A decode-step
time that drowns in the machine's noise (a negative difference) is written as null. Writes --out (JSON) with the hardware named.
--repeats N times both passes N times and keeps the best of each (on a shared machine the other
load otherwise decides the ratio); --threads sets torch's CPU threads (default torch's own, one
per core, as entropy_analysis.py runs; on a machine busy with other work one thread is the
steadier measure, and the JSON names the count).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

try:
    import torch

    import attacks
    from confidence_trap import models
    from confidence_trap.models.batching import GIB, Backoff, knee, parse_memory, pick_batch_size, sample_bytes, weight_bytes
    from confidence_trap.models.checkpoint import random_llava
    from confidence_trap.models.decoding import Decoding, table_bandwidth
    from confidence_trap.models.images import load_image
    from confidence_trap.models.vlm import VLM
    from confidence_trap.runner import pipeline, runs
    from confidence_trap.runner.agreement import agreement, tie_gaps
    from confidence_trap.runner.config import Config, add_arguments, build_config, plain
    from confidence_trap.runner.sweep import Sweep
    from confidence_trap.tasks.imagesets import resolve_items
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

TARGET_SPEEDUP = {"cuda": 15.0, "cpu": 4.0}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_gib(device: str) -> float:
    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated(torch.device(device)) / GIB, 3)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 3)  # whole process


def bandwidth(device: str) -> tuple[float | None, str]:
    """(GB/s, where the figure comes from) for the floor of a decode step."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
        gbs = table_bandwidth(name)
        return (gbs, f"table ({name})") if gbs else (None, f"n/a ({name} is not in the table)")
    a = torch.empty(64 * 2 ** 20, dtype=torch.float32)  # 256 MiB, far past any cache
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t)
    return round(2 * a.numel() * 4 / best / 1e9, 1), "measured (256 MiB copy, read + write)"


def timed_sweep(fn, units: list, batch: int, backoff: Backoff, device: str, pad: bool = False) -> tuple[list, float]:
    """Run `units` in fixed batches through fn (with `pad`, the last one padded to the batch's
    shape, as a static-cache run pads it); returns (records, seconds)."""
    sync(device)
    t = time.perf_counter()
    records = []
    for start in range(0, len(units), batch):
        chunk = units[start:start + batch]
        records += backoff(fn, pipeline.pad_units(chunk, batch) if pad else chunk)[:len(chunk)]
    sync(device)
    return records, time.perf_counter() - t


def decode_ms(sweep, xs, prompts, steps: int, device: str, reps: int = 2) -> float | None:
    """Milliseconds per decode step: (time of `steps` new tokens - time of 1) / (steps - 1).

    Both runs ask for `steps` tokens (EOS suppressed) and a stopping criterion ends the short one
    after 1, so a static cache has the same shape in both and a compiled step is not recompiled."""
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopAfter(StoppingCriteria):
        def __init__(self, n):
            self.n, self.start = n, None

        def __call__(self, input_ids, scores, **kwargs):
            self.start = self.start or input_ids.shape[1] - 1  # first call: one token generated
            done = input_ids.shape[1] - self.start >= self.n
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    def timed(n):
        best = float("inf")
        for _ in range(reps):
            sync(device)
            t = time.perf_counter()
            sweep.vlm.generate(xs, prompts, steps, min_new_tokens=steps,
                               stopping_criteria=StoppingCriteriaList([StopAfter(n)]))
            sync(device)
            best = min(best, time.perf_counter() - t)
        return best

    timed(2)  # warm
    ms = 1000 * (timed(steps) - timed(1)) / (steps - 1)
    return round(ms, 3) if ms > 0 else None  # under load the difference can drown in noise


SHARED = ("model", "images", "epsilons", "trials", "max_new_tokens", "device", "dtype", "vision_dtype",
          "batch_size", "max_memory", "static_cache")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    add_arguments(p, only=SHARED)  # the experiment's own flags, parsed alike (8/255 works)
    p.add_argument("--random-weights", metavar="CONFIG_JSON",
                   help="build this Llava config.json with random weights (no download), instead of --model")
    p.add_argument("--units", type=int, help="only the first N units of the sweep")
    p.add_argument("--budget-batches", type=int, default=2, help="batches to run under --max-memory")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=1, help="time both passes this many times, keep the best")
    p.add_argument("--out", default="results/benchmark.json")
    args = p.parse_args(argv)
    if args.random_weights and args.model:
        p.error("give --model or --random-weights, not both")
    args.model = args.model or "tiny"
    return args


def build(args, cfg: Config):
    """(sweep, label, seconds to build): the experiment's Sweep on --model or a random-weight build."""
    t = time.perf_counter()
    if not args.random_weights:
        p = pipeline.plan(cfg, check_out=False)
        return pipeline.prepare(p), runs.model_label(p.source), time.perf_counter() - t
    device = pipeline.plan_device(cfg)
    dtype = models.parse_dtype(cfg.dtype, device)
    model, processor = random_llava(args.random_weights, device, dtype)
    vdtype = models.vision_dtype_for(cfg.vision_dtype, "llava-1.5", device, dtype)  # the config is LLaVA-1.5's
    if vdtype != dtype:
        models.set_vision_dtype(model, vdtype)
    vlm = VLM(model, processor, "llava_v1")
    items = resolve_items(cfg.images, None, "photos")
    images = pipeline.Pixels([load_image(it.path) for it in items], vlm.image_size, vlm.image_mean, device)
    sweep = Sweep(vlm, cfg, items, [vlm.prompt(it.question) for it in items], images)
    return sweep, f"random weights ({args.random_weights})", time.perf_counter() - t


def baselines(sweep, units: list, batch: int, why: str, repeats: int, device: str) -> dict:
    """Both passes, one unit at a time and batched, `repeats` times each, the best of each kept."""
    def fn(piece):
        return pipeline.run_batch(sweep, piece)

    backoff = Backoff()
    fn(units[:1]), backoff(fn, units[:batch])  # warm both paths (kernels, allocator, lazy imports)
    one_s = many_s = float("inf")
    for _ in range(repeats):  # the best of each: what the machine's other load left alone
        reset_peak(device)
        one, seconds = timed_sweep(fn, units, 1, Backoff(), device)
        one_s, one_peak = min(one_s, seconds), peak_gib(device)
        reset_peak(device)
        many, seconds = timed_sweep(fn, units, batch, backoff, device)
        many_s, many_peak = min(many_s, seconds), peak_gib(device)
    same = sum(a["answer"] == b["answer"] for a, b in zip(one, many))
    dh = max((abs(a["mean_entropy"] - b["mean_entropy"]) for a, b in zip(one, many)
              if a["answer"] == b["answer"] and a["mean_entropy"] is not None
              and b["mean_entropy"] is not None), default=None)
    return {"fn": fn, "many": many, "many_s": many_s, "backoff": backoff, "one_at_a_time": {
                "batch_size": 1, "seconds": round(one_s, 3), "samples_per_s": round(len(units) / one_s, 3),
                "peak_memory_gib": one_peak},
            "batched": {"batch_size": batch, "chosen_by": why, "seconds": round(many_s, 3),
                        "samples_per_s": round(len(units) / many_s, 3), "peak_memory_gib": many_peak,
                        "oom_backoff_depth": backoff.depth},
            "speedup": round(one_s / many_s, 2),
            "agreement": {"same_answers": same, "of": len(units), "max_mean_entropy_diff": dh}}


def decode_steps(sweep, xs, ps, steps: int, device: str, wbytes: int, kv_per_seq: int) -> dict:
    """Milliseconds a decode step at batch 1 and at the batch, against the memory-bandwidth floor."""
    gbs, gbs_from = bandwidth(device)
    return {"ms_batch_1": decode_ms(sweep, xs[:1], ps[:1], steps, device),
            f"ms_batch_{len(xs)}": decode_ms(sweep, xs, ps, steps, device), "batch": len(xs),
            "steps_timed": steps, "bandwidth_gb_s": gbs, "bandwidth_from": gbs_from,
            "floor_ms": round(1000 * wbytes / (gbs * 1e9), 3) if gbs else None,
            "floor_ms_with_kv_at_batch": round(1000 * (wbytes + len(xs) * kv_per_seq) / (gbs * 1e9), 3)
            if gbs else None}


def hardware(device: str) -> dict:
    return {"device": device, "device_name": runs.device_name(device), "cpu": runs.cpu_name(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu_memory_gib": round(torch.cuda.get_device_properties(torch.device(device)).total_memory / GIB, 2)
            if device.startswith("cuda") else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, _ = build_config(args)
    sweep, label, build_s = build(args, cfg)
    vlm, items = sweep.vlm, sweep.items
    model = vlm.model
    model.generation_config.cache_implementation = None  # the baselines decode eagerly, as loaded
    device, dtype = str(vlm.device), vlm.text_dtype
    units = pipeline.make_units(cfg, items)[:args.units]
    n_prompt = vlm.prompt_tokens(sweep.prompts, sweep.images.pixels([0]))
    if cfg.batch_size:
        batch, why = cfg.batch_size, "--batch-size"
    else:
        limit = knee(n_prompt, cfg.max_new_tokens, compiled=False) if device.startswith("cuda") else None
        batch, why = pick_batch_size(model, n_prompt, cfg.max_new_tokens, device, None, len(units), knee=limit)
    print(f"{len(units)} units, {n_prompt} prompt tokens, batch {batch} ({why})", file=sys.stderr)
    base = baselines(sweep, units, batch, why, args.repeats, device)
    fn, many, many_s = base.pop("fn"), base.pop("many"), base.pop("many_s")

    xs = sweep.images.pixels([u.item for u in units[:batch]])
    ps = [sweep.prompts[u.item] for u in units[:batch]]
    steps = max(cfg.max_new_tokens, 8)
    wbytes = weight_bytes(model)
    result = {
        "hardware": hardware(device),
        "model": {"model": label, "class": type(model).__name__,
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "weights_gib": round(wbytes / GIB, 4), "dtype": str(dtype).split(".")[-1],
                  "vision_dtype": models.vision_dtype_of(model),
                  "random_weights": bool(args.random_weights), "build_or_load_s": round(build_s, 2)},
        "work": {"units": len(units), "items": len(items), "attack": plain(cfg)["attack"], "repeats": args.repeats,
                 "epsilons": cfg.epsilons, "trials": cfg.trials, "max_new_tokens": cfg.max_new_tokens,
                 "prompt_tokens": n_prompt, "prompt_format": vlm.prompt_format},
        **{k: v for k, v in base.items() if k != "backoff"},
        "decode": "eager (dynamic cache, nothing compiled), both baselines",
        "decode_step": decode_steps(sweep, xs, ps, steps, device, wbytes,
                                    sample_bytes(model.config, n_prompt, cfg.max_new_tokens, dtype)["kv_cache"]),
        "peak_memory_note": "GPU: torch max_memory_allocated per pass" if device.startswith("cuda")
        else "CPU: the process's peak resident set, all passes together",
        "versions": runs.versions(), "git_commit": runs.git_commit(),
        "command": " ".join(["experiments/benchmark.py"] + sys.argv[1:] if argv is None else
                            ["experiments/benchmark.py"] + list(argv)),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    target = TARGET_SPEEDUP["cuda" if device.startswith("cuda") else "cpu"]
    result["target"] = {"speedup_at_least": target, "met": result["speedup"] >= target}
    if cfg.max_memory:
        result["budget"] = budget_pass(model, n_prompt, cfg, device, args, units, fn)
    if cfg.static_cache:
        try:
            result["static_cache"] = static_pass(sweep, device, units, batch, fn, many_s,
                                                 steps, xs, ps, many, n_prompt)
        except Exception as e:  # noqa: BLE001 - a compile failure must not lose the figures above
            result["static_cache"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    runs.atomic_write_json(args.out, result)
    print(table(result))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def budget_pass(model, n_prompt, cfg, device, args, units, fn) -> dict:
    """A few batches at the size picked under --max-memory, and their peak memory."""
    batch, why = pick_batch_size(model, n_prompt, cfg.max_new_tokens, device, cfg.max_memory)
    work = units[:batch * args.budget_batches]
    reset_peak(device)
    backoff = Backoff()
    _, seconds = timed_sweep(fn, work, batch, backoff, device)
    peak = peak_gib(device)
    limit = parse_memory(cfg.max_memory) / GIB
    return {"max_memory": cfg.max_memory, "batch_size": batch, "chosen_by": why, "units": len(work),
            "samples_per_s": round(len(work) / seconds, 3), "peak_memory_gib": peak,
            "oom_backoff_depth": backoff.depth,
            "within_budget": peak <= limit if device.startswith("cuda") else None}


def static_pass(sweep, device, units, batch, fn, eager_s, steps, xs, ps, eager, n_prompt) -> dict:
    """The batched pass again on the compiled path (a static KV cache, compiled on CUDA), then the
    model is put back on the eager path."""
    path = "compiled" if device.startswith("cuda") else "static"
    # one cache length covers the run (the null control's extra padding too) and decode_ms's
    # `steps` tokens: one shape, one compile
    sweep.vlm.use(Decoding(batch, "the benchmark's", path, "--static-cache",
                           max_cache_len=n_prompt + attacks.NULL_PAD + steps))
    try:
        sync(device)
        t = time.perf_counter()
        fn(units[:batch])  # compiles on CUDA
        sync(device)
        first_s = time.perf_counter() - t
        records, seconds = timed_sweep(fn, units, batch, Backoff(), device, pad=True)
        step = decode_ms(sweep, xs, ps, steps, device)
    finally:
        sweep.vlm.use(Decoding(batch, "", "eager", ""))
    agree = agreement(eager, records, tie_gaps(sweep, units, eager, records))
    return {"same_answers_as_eager": agree["same_answers"], "max_token_entropy_diff": agree["max_token_entropy_diff"],
            "agreement_with_eager": agree, "path": path,
            "first_batch_s": round(first_s, 2), "seconds": round(seconds, 3),
            "samples_per_s": round(len(units) / seconds, 3), "speedup_over_eager_batched":
            round(eager_s / seconds, 2), f"ms_per_decode_step_batch_{len(xs)}": step,
            "compiled": device.startswith("cuda")}


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def table(r: dict) -> str:
    hw, one, many, ds = r["hardware"], r["one_at_a_time"], r["batched"], r["decode_step"]
    floor = f"{ds['floor_ms']} ms ({ds['bandwidth_gb_s']} GB/s, {ds['bandwidth_from']})" \
        if ds["floor_ms"] is not None else ds["bandwidth_from"]
    rows = [("", "one at a time", f"batched ({many['batch_size']})"),
            ("samples/s", f"{one['samples_per_s']:.3f}", f"{many['samples_per_s']:.3f}"),
            ("seconds", f"{one['seconds']:.2f}", f"{many['seconds']:.2f}"),
            ("ms / decode step", _ms(ds["ms_batch_1"]), _ms(ds["ms_batch_" + str(ds["batch"])])),
            ("peak memory GiB", f"{one['peak_memory_gib']:.2f}", f"{many['peak_memory_gib']:.2f}")]
    lines = [f"{hw['device_name']}, {hw['torch_threads']} torch threads; {r['model']['model']} "
             f"({r['model']['parameters'] / 1e6:.1f} M parameters, {r['model']['dtype']}); "
             f"{r['work']['units']} units, {r['work']['prompt_tokens']} prompt tokens, "
             f"{r['work']['max_new_tokens']} new tokens"]
    lines += [f"{a:<18}{b:>16}{c:>16}" for a, b, c in rows]
    lines.append(f"speedup {r['speedup']}x (target >= {r['target']['speedup_at_least']}x: "
                 f"{'met' if r['target']['met'] else 'NOT met'}); same answers "
                 f"{r['agreement']['same_answers']}/{r['agreement']['of']}")
    lines.append(f"memory-bandwidth floor per decode step: {floor}")
    if "budget" in r:
        b = r["budget"]
        lines.append(f"under {b['max_memory']}: batch {b['batch_size']}, peak {b['peak_memory_gib']} GiB, "
                     f"{b['samples_per_s']} samples/s")
    if "static_cache" in r and "error" in r["static_cache"]:
        lines.append(f"static cache failed: {r['static_cache']['error']}")
    elif "static_cache" in r:
        s, a = r["static_cache"], r["static_cache"]["agreement_with_eager"]
        within = "n/a" if a["max_token_entropy_diff"] is None else f"{a['max_token_entropy_diff']:.1e}"
        lines.append(f"{s['path']} path: {s['samples_per_s']} samples/s ({s['speedup_over_eager_batched']}x "
                     f"the eager batched pass; first batch {s['first_batch_s']} s); against eager: same answers "
                     f"{a['same_answers']}/{a['of']}, near-ties {a['near_ties']}, other differences "
                     f"{a['other_differences']}, token entropies within {within} nats "
                     f"({'agree' if a['agree'] else 'DISAGREE'})")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
