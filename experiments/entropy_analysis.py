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
from experiments import runinfo  # noqa: E402

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


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if False else None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    cfg, changed = build_config(p.parse_args(argv))
    t0 = time.time()

    import torch

    from models import TINY_DIR, check_device, load, parse_dtype, resolve
    from models.images import input_size, load_image, to_model_input
    from models.prompts import build_prompt, default_format
    from experiments.imagesets import resolve_items
    from experiments.sweep import attack_name, make_units, run_batch, unit_key

    # Everything the user can get wrong is checked before --out is touched.
    source = resolve(cfg.model)
    device = check_device(cfg.device)
    dtype = parse_dtype(cfg.dtype, device)
    items = resolve_items(cfg.images, cfg.prompt, "scenes" if source == TINY_DIR else "photos")
    images = [load_image(it.path) for it in items]
    attack_name(cfg)
    fmt = cfg.prompt_format or default_format(source)
    view = result_view(cfg, {"model": runinfo.model_label(source), "dtype": str(dtype).split(".")[-1],
                             "prompt_format": fmt, "device_type": device.split(":")[0]})
    check_out(cfg.out, view, cfg.fresh)
    if changed:
        print("config: " + ", ".join(f"{k}={v}" for k, v in changed.items()), file=sys.stderr)

    model, processor = load(cfg.model, device=device, dtype=dtype, revision=cfg.revision)
    size = input_size(processor)
    pixels = torch.stack([to_model_input(im, size, processor.image_processor.image_mean)
                          for im in images]).to(device)
    del images
    prompts = [build_prompt(processor, it.question, fmt) for it in items]

    os.makedirs(os.path.join(cfg.out, "figures"), exist_ok=True)
    path = os.path.join(cfg.out, "records.jsonl")
    done = {record_key(r) for r in read_records(path, repair=True)}
    units = make_units(cfg, items)
    batch = cfg.batch_size or runinfo.read(cfg.out).get("batch_size") or 8
    info = runinfo.collect(cfg, source, model, device, dtype, fmt, view, batch)
    runinfo.write(cfg.out, info)

    from tqdm import tqdm

    todo = sum(unit_key(u, items) not in done for u in units)
    bar = tqdm(total=len(units), initial=len(units) - todo, desc="generations", unit="gen",
               disable=None)
    with RecordWriter(path) as writer:
        for start in range(0, len(units), batch):
            chunk = units[start:start + batch]
            missing = [unit_key(u, items) not in done for u in chunk]
            if not any(missing):
                continue
            for rec, new in zip(run_batch(model, processor, cfg, items, chunk, pixels, prompts), missing):
                if new:
                    writer.write(rec)
                    bar.update(1)
    bar.close()

    from experiments.analyze import analyze_run

    info = runinfo.finish(info, t0, device)
    runinfo.write(cfg.out, info)
    summary = analyze_run(cfg.out)
    print(f"wrote {cfg.out}/records.jsonl, summary.json, entropy_report.txt, figures/ "
          f"({info['wall_time_s']:.1f} s)", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    try:
        return run(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
