"""Measure the Confidence Trap: token entropy of a VLM's answers, clean against perturbed.

    python experiments/entropy_analysis.py --model tiny        # embedded model, offline, CPU, seconds
    python experiments/entropy_analysis.py                     # LLaVA-1.5-7B, FP16 on the GPU
    python experiments/entropy_analysis.py --config configs/small_eps.yaml --out runs/small_eps

Writes into --out (default results/): records.jsonl (one line per generation, appended as
produced), run.json (config, model, versions, timing), summary.json, entropy_report.txt and
figures/. Run the same command again to resume; --fresh starts over.
Entropy Delta Δ = H_adv − H_clean, H = mean token entropy (nats) of the greedy answer; ε is an
L-inf budget in [0,1] pixel units at the model's input resolution (ε = 0.3 ≈ 77/255).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from models.errors import InputError  # noqa: E402
from experiments.config import Config, add_arguments, build_config, result_view  # noqa: E402
from experiments.records import RecordWriter, atomic_write_json, read_records, record_key  # noqa: E402
from experiments import distributed, runinfo  # noqa: E402

OUTPUT_FILES = ("records.jsonl", "run.json", "summary.json", "entropy_report.txt")


def check_out(out: str, view: dict, fresh: bool) -> None:
    """Refuse to mix two configs in one --out; --fresh clears this script's own files."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out} exists and is not a folder")
    records = os.path.join(out, "records.jsonl")
    if fresh:
        for name in OUTPUT_FILES:
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
        return
    if not os.path.exists(records) or os.path.getsize(records) == 0:
        return
    old = runinfo.read(out).get("result_view")
    if old is None:
        raise InputError(f"{records} exists but {out}/run.json does not say its config: "
                         "use --fresh to start over or another --out")
    diff = [f"{k}: {old.get(k)!r} -> {view.get(k)!r}" for k in sorted(set(old) | set(view))
            if old.get(k) != view.get(k)]
    if diff:
        raise InputError(f"{out} holds a run with another config ({'; '.join(diff)}); "
                         "use --fresh to start over or another --out")
    try:  # a torn last line is fine (the run repairs it); damage anywhere else is not
        for rec in read_records(records):
            record_key(rec)
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{records} is damaged ({e}); use --fresh to start over or another --out") from None


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if False else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)

    def refuse(message):  # argparse would print its whole usage block; a bad flag gets one line
        raise InputError(f"{message} (see --help)")

    p.error = refuse
    cfg, changed = build_config(p.parse_args(argv))
    t0 = time.time()

    import torch

    from models import TINY_DIR, check_device, load, parse_dtype, preflight
    from models.images import input_size, load_image, to_model_input
    from models.prompts import build_prompt, default_format
    from experiments.imagesets import resolve_items
    from experiments.sweep import attack_name, clean_answers, make_units, run_batch, unit_key
    from models.batching import Backoff, pick_batch_size, prompt_tokens

    # Everything the user can get wrong is checked before --out is touched.
    source = preflight(cfg.model, cfg.revision)  # a wrong --model is named as such
    world = distributed.world()  # one process of one unless launched by accelerate/torchrun
    device = check_device(distributed.device_for(world, cfg.device))
    dtype = parse_dtype(cfg.dtype, device)
    items = resolve_items(cfg.images, cfg.prompt, "scenes" if source == TINY_DIR else "photos")
    images = [load_image(it.path) for it in items]
    attack_name(cfg)
    fmt = cfg.prompt_format or default_format(source)
    from models import vision_dtype_for

    vdtype = vision_dtype_for(cfg.vision_dtype, source, device, dtype)
    view = result_view(cfg, {"model": runinfo.model_label(source), "dtype": str(dtype).split(".")[-1],
                             "vision_dtype": str(vdtype).split(".")[-1],
                             "prompt_format": fmt, "device_type": device.split(":")[0]})
    if world.is_main or not cfg.fresh:  # --fresh clears --out once, in rank 0
        check_out(cfg.out, view, cfg.fresh and world.is_main)
    stored_batch = None if cfg.fresh else runinfo.read(cfg.out).get("batch_size")
    if changed and world.is_main:
        print("config: " + ", ".join(f"{k}={v}" for k, v in changed.items()), file=sys.stderr)

    model, processor = load(cfg.model, device=device, dtype=dtype, revision=cfg.revision,
                            vision_dtype=cfg.vision_dtype)
    from models.prompts import original_ids
    from models.vocab import scored_vocab

    text = {"original_ids": original_ids(fmt), "vocab": scored_vocab(model, processor)}
    if cfg.static_cache:  # every generate() of the run; on CUDA it compiles the decode step
        model.generation_config.cache_implementation = "static"
    size = input_size(processor)
    pixels = torch.stack([to_model_input(im, size, processor.image_processor.image_mean)
                          for im in images]).to(device)
    del images
    prompts = [build_prompt(processor, it.question, fmt) for it in items]

    try:
        os.makedirs(os.path.join(cfg.out, "figures"), exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write to --out {cfg.out}: {e.strerror or e}") from None
    path = os.path.join(cfg.out, "records.jsonl")
    if world.is_main:
        read_records(path, repair=True)  # cut a torn last line before any process reads the file
        if cfg.fresh:
            distributed.clear_shards(cfg.out)
    distributed.start(world)
    distributed.barrier(world)
    done = distributed.done_keys(cfg.out, world)  # records.jsonl and any shards
    units = make_units(cfg, items)
    # Fixed batches, reused on resume: batch composition moves the last float digits.
    batch, why = cfg.batch_size, "--batch-size"
    if batch is None and stored_batch:
        batch, why = stored_batch, f"as the run being resumed ({cfg.out}/run.json)"
    if batch is None:
        batch, why = pick_batch_size(model, prompt_tokens(processor, prompts, pixels),
                                     cfg.max_new_tokens, device, cfg.max_memory, len(units), world.size)
        batch = distributed.agree_min(world, batch)
    # A rerun with nothing left to generate keeps run.json as the run that made the records.
    finished = all(unit_key(u, items) in done for u in units) and "wall_time_s" in runinfo.read(cfg.out)
    if world.is_main:
        print(f"batch size {batch} ({why})", file=sys.stderr)
        info = runinfo.collect(cfg, source, model, device, dtype, fmt, view, batch)
        info["scored_vocab_size"] = text["vocab"].size
        info["processes"] = world.size
        if finished:
            info = runinfo.read(cfg.out)
        else:
            runinfo.write(cfg.out, info)

    from tqdm import tqdm

    starts = [s for i, s in enumerate(range(0, len(units), batch)) if world.owns(i)]
    mine = [u for s in starts for u in units[s:s + batch]]
    todo = sum(unit_key(u, items) not in done for u in mine)
    bar = tqdm(total=len(mine), initial=len(mine) - todo, unit="gen", disable=None,
               desc="generations" + (f" (rank {world.rank})" if world.size > 1 else ""))
    backoff = Backoff()  # halves a batch that runs out of CUDA memory
    # the clean answers that gradient attacks teacher-force, shared by every batch
    clean = clean_answers(read_records(path), items, model, processor) if cfg.attack == "pgd" else {}
    with RecordWriter(distributed.shard_path(cfg.out, world)) as writer:
        for start in starts:
            chunk = units[start:start + batch]
            missing = [unit_key(u, items) not in done for u in chunk]
            if not any(missing):
                continue
            records = backoff(lambda piece: run_batch(model, processor, cfg, items, piece, pixels,
                                                      prompts, clean, text), chunk)
            for rec, new in zip(records, missing):
                if new:
                    writer.write(rec)
                    bar.update(1)
    bar.close()
    distributed.barrier(world)  # every share is written
    if not world.is_main:
        distributed.stop(world)
        return 0
    if world.size > 1 or distributed.shard_paths(cfg.out):
        distributed.merge(cfg.out, [unit_key(u, items) for u in units])
    distributed.stop(world)
    if backoff.depth:
        info["oom_backoff_depth"] = backoff.depth

    from experiments.analyze import AnalysisInputError, analyze_run

    if not finished:
        info = runinfo.finish(info, t0, device)
        runinfo.write(cfg.out, info)
    try:
        summary = analyze_run(cfg.out)
    except AnalysisInputError as e:
        raise InputError(str(e)) from None
    nf = summary["nonfinite"]
    if nf["count"]:  # FP16 overflow: these records are excluded from every statistic
        shown = "; ".join(f"{r['image']} {r['attack']} ε={r['epsilon']} trial {r['trial']}"
                          for r in nf["records"][:5])
        more = f"; and {nf['count'] - 5} more" if nf["count"] > 5 else ""
        print(f"warning: {nf['count']} of {summary['meta']['n_records']} generations had "
              f"non-finite logits and are left out of the statistics ({shown}{more}); "
              f"see the report's list", file=sys.stderr)
    print(f"wrote {cfg.out}/records.jsonl, summary.json, entropy_report.txt, figures/ "
          f"({info['wall_time_s']:.1f} s)", file=sys.stderr)
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
