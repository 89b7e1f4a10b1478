"""The pipeline every entry point calls: plan (check everything), prepare (load), run (sweep and
analyse). The command line, the benchmark and the tests call it in process.

    from confidence_trap.runner import pipeline
    from confidence_trap.runner.config import Config
    result = pipeline.run(Config(model="tiny", out="/tmp/run"))
    result.summary["by_epsilon"]["0.3"]["mean_delta"], result.generated

plan(cfg) checks every name and input (model, attack and its parameters, images or dataset
columns, the output folder's earlier config) before any model loads or any file is written;
prepare(plan) loads the model and builds the Sweep (confidence_trap/runner/sweep.py); run(cfg) does both,
then generates what --out does not hold yet in fixed batches (resumable, split over processes by
confidence_trap/runner/distributed.py), merges, writes run.json and analyses (experiments/analyze.py).
When --out already holds every generation of a finished run, nothing loads: re-analysis only.
The batch and the decode path (compiled or eager, --deterministic) come from confidence_trap/models/decoding.py;
on a static-cache path the last partial batch is padded with repeats of its own units, whose
records are dropped, so the run keeps one shape (not with --samples, whose sampling would draw
differently in a longer batch).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from confidence_trap.models import parse_dtype
from confidence_trap.errors import InputError

from confidence_trap.runner import distributed, runs
from confidence_trap.runner.config import Config, default_view_value, result_view
from confidence_trap.runner.inputs import DatasetImages, LazyPixels, Pixels
from confidence_trap.runner.sweep import NULL_PAD, Sweep, make_units, run_batch, unit_key

__all__ = ["Plan", "Result", "Pixels", "Sweep", "plan", "prepare", "run", "describe", "make_units",
           "run_batch", "unit_key", "parse_dtype"]


@dataclass
class Plan:
    cfg: Config
    source: str            # what from_pretrained takes
    world: distributed.World
    device: str
    dtype: object          # torch.dtype
    vision_dtype: object   # torch.dtype
    fmt: str               # prompt format
    items: list
    images: object         # PIL images, one per item, or DatasetImages for a dataset run
    view: dict             # what a resumed run must agree on
    data_info: dict | None = None  # a dataset run's source (confidence_trap.tasks.datasets.TaskData.info)
    checkpoint: str = ""   # what the checkpoint is, in words (confidence_trap/models/identify.py)


@dataclass
class Result:
    out: str
    summary: dict
    info: dict
    units: int             # generations the run is made of
    generated: int         # generations this call made (0: everything was already in --out)
    messages: list = field(default_factory=list)
    loaded: bool = True    # whether the model was loaded (not for a finished run's re-analysis)


def plan_device(cfg: Config) -> str:
    """The device this process runs on: cuda:LOCAL_RANK under a launcher, else --device."""
    from confidence_trap.models import check_device

    return check_device(distributed.device_for(distributed.world(), cfg.device))


def plan(cfg: Config, check_out: bool = True) -> Plan:
    """Every check that needs no model: raises InputError (one line) before anything is written.
    check_out=False skips the --out folder (the benchmark writes none)."""
    from confidence_trap.models import TINY_DIR, preflight, vision_dtype_for
    from confidence_trap.models.identify import llava_1_5_evidence
    from confidence_trap.models.images import load_image
    from confidence_trap.models.prompts import original_ids

    from confidence_trap.tasks.imagesets import resolve_items

    source = preflight(cfg.model, cfg.revision)  # a wrong --model is named as such
    if cfg.static_cache and (cfg.deterministic or not cfg.compile):
        raise InputError(f"--static-cache forces the static cache (compiled on CUDA); "
                         f"{'--deterministic' if cfg.deterministic else '--no-compile'} rules it out: give one of them")
    world = distributed.world()  # one process of one unless launched by accelerate/torchrun
    device = plan_device(cfg)
    dtype = parse_dtype(cfg.dtype, device)
    llava, said = llava_1_5_evidence(source, cfg.revision)  # by its files, not its folder's name
    vdtype = vision_dtype_for(cfg.vision_dtype, source, device, dtype, cfg.revision)
    fmt = cfg.prompt_format or ("llava_v1" if llava else "chat_template")
    data_info = None
    if cfg.task:  # a benchmark dataset: columns, split and subset checked here, images later
        items, images, data_info, task_fmt = dataset_items(cfg)
        if cfg.prompt_format is None and task_fmt and original_ids(fmt):
            fmt = task_fmt  # LLaVA's own benchmark scripts' conversation, for LLaVA-1.5 models
    else:
        items = resolve_items(cfg.images, cfg.prompt, "scenes" if source == TINY_DIR else "photos")
        images = [load_image(it.path) for it in items]
    name = lambda d: str(d).split(".")[-1]  # noqa: E731
    view = result_view(cfg, {"model": runs.model_label(source), "dtype": name(dtype),
                             "vision_dtype": name(vdtype), "prompt_format": fmt,
                             "device_type": device.split(":")[0]})
    if check_out and (world.is_main or not cfg.fresh):  # --fresh clears --out once, in rank 0
        runs.check_out(cfg.out, view, cfg.fresh and world.is_main, default_view_value)
    return Plan(cfg, source, world, device, dtype, vdtype, fmt, items, images, view, data_info,
                f"{'LLaVA-1.5' if llava else 'not LLaVA-1.5'} ({said})")


def dataset_items(cfg: Config):
    """(items, DatasetImages, the data's info, the task's prompt format) of a --task run."""
    from confidence_trap.tasks.imagesets import Item
    from confidence_trap.tasks.datasets import load_task, open_dataset, select_rows

    task = load_task(cfg.task)
    data = open_dataset(cfg.dataset, cfg.split, task)
    rows = data.rows(select_rows(data, cfg.limit, cfg.seed))
    items = [Item(r.key, None, r.query, tuple(r.references) or None, task.metric,
                  (("dataset", data.dataset), ("split", data.split), ("id", r.id),
                   ("category", r.category), ("metric", task.metric))) for r in rows]
    return items, DatasetImages(data, [r.index for r in rows]), data.info(), task.prompt_format


def prepare(p: Plan):
    """Load the model and build the Sweep of the plan."""
    from confidence_trap.models import load
    from confidence_trap.models.images import input_size
    from confidence_trap.models.prompts import build_prompt, original_ids
    from confidence_trap.models.vocab import scored_vocab

    cfg = p.cfg
    if p.device == "cpu":
        from confidence_trap.models import fit_cpu_threads

        fit_cpu_threads()
    model, processor = load(cfg.model, device=p.device, dtype=p.dtype, revision=cfg.revision,
                            vision_dtype=p.vision_dtype)
    size, mean = input_size(processor), processor.image_processor.image_mean
    images = (LazyPixels(p.images, size, mean, p.device) if isinstance(p.images, DatasetImages)
              else Pixels(p.images, size, mean, p.device))
    prompts = [build_prompt(processor, it.question, p.fmt) for it in p.items]
    return Sweep(model, processor, cfg, p.items, prompts, images, original_ids(p.fmt),
                 scored_vocab(model, processor))


def choose_batch(p: Plan, sweep, n_units: int, log=None):
    """The run's batch and decode path (confidence_trap.models.decoding.choose): --batch-size, else what the run
    being resumed used, else the smaller of what fits and the knee; compiled where it pays."""
    from confidence_trap.models.batching import prompt_tokens
    from confidence_trap.models.decoding import choose

    cfg = p.cfg
    stored = {} if cfg.fresh else runs.read_info(cfg.out)
    n_prompt = prompt_tokens(sweep.processor, sweep.prompts, sweep.images.pixels([0]), sweep.original_ids)
    if cfg.null_control:  # its batches run with NULL_PAD more left padding: one cache length covers them
        n_prompt += NULL_PAD
    d = choose(sweep.model, p.device, n_units, n_prompt, cfg.max_new_tokens, cfg, stored, p.world.size,
               log=log if p.world.is_main else None)
    d.batch = distributed.agree_min(p.world, d.batch)
    return d


def pad_units(chunk: list, size: int) -> list:
    """A last partial batch filled up to `size` with repeats of its own units (their records are
    dropped): the same prompts, so the same padded length, and no new shape to compile."""
    return chunk + [chunk[i % len(chunk)] for i in range(size - len(chunk))]


def reanalyse(p: Plan, units: list, keys: list, info: dict) -> Result:
    """A finished run asked again: no weights load, the records are analysed afresh."""
    world, out = p.world, p.cfg.out
    if world.is_main and runs.shard_paths(out):
        runs.merge(out, keys)
    distributed.stop(world)
    if not world.is_main:
        return Result(out, {}, info, len(units), 0, loaded=False)
    return Result(out, analyse(out), info, len(units), 0, loaded=False)


def analyse(out: str) -> dict:
    from confidence_trap.runner.analyze import analyze_run

    try:
        return analyze_run(out)
    except ValueError as e:
        raise InputError(str(e)) from None


def run(cfg: Config, log=None, progress: bool = True, changed: dict | None = None) -> Result:
    """The whole run into cfg.out; see the module docstring. `log` gets one-line messages;
    `changed` (the flags that differ from the defaults) is logged once every check has passed."""
    from tqdm import tqdm

    from confidence_trap.models import vision_dtype_of
    from confidence_trap.models.batching import Backoff, is_oom
    from confidence_trap.models.decoding import apply, fall_back, repeatable

    from confidence_trap.runner.sweep import clean_answers

    t0 = time.time()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    p = plan(cfg)
    if changed and p.world.is_main:
        log("config: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    if cfg.deterministic:  # cuBLAS reads it when it starts, before the first matmul
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    world, out = p.world, cfg.out
    path = os.path.join(out, "records.jsonl")
    if world.is_main:
        if cfg.fresh:
            runs.clear_out(out)
        runs.read_records(path, repair=True)  # cut a torn last line before any process reads it
    distributed.start(world)
    distributed.barrier(world)
    done = runs.done_keys(out, world)  # records.jsonl and any shards
    units = make_units(cfg, p.items)
    keys = [unit_key(u, p.items) for u in units]
    todo_all = sum(k not in done for k in keys)
    if todo_all == 0 and "wall_time_s" in runs.read_info(out):
        return reanalyse(p, units, keys, runs.read_info(out))
    sweep = prepare(p)
    runs.make_out(out)  # only now: a model that fails to load leaves no folder behind
    d = choose_batch(p, sweep, len(units), log)
    batch = d.batch
    apply(sweep.model, d)
    info = {}
    if world.is_main:
        log(f"batch size {batch} ({d.why}); decoding {d.path} ({d.path_why})")
        info = runs.collect(cfg, p.source, p.device, {
            "result_view": p.view, "revision": getattr(sweep.model, "config_revision", None) or cfg.revision,
            "model_class": type(sweep.model).__name__, "checkpoint": p.checkpoint,
            "parameters": sum(t.numel() for t in sweep.model.parameters()),
            "dtype": p.view["dtype"], "vision_dtype": vision_dtype_of(sweep.model),
            "scored_vocab_size": sweep.vocab.size, "prompt_format": p.fmt, "batch_size": batch,
            "decode": d.info(), "processes": world.size, **({"data": p.data_info} if p.data_info else {})})
        runs.write_info(out, info)

    starts = [s for i, s in enumerate(range(0, len(units), batch)) if world.owns(i)]
    mine = [i for s in starts for i in range(s, min(s + batch, len(units)))]
    todo = sum(keys[i] not in done for i in mine)
    bar = tqdm(total=len(mine), initial=len(mine) - todo, unit="gen", disable=None if progress else True,
               desc="generations" + (f" (rank {world.rank})" if world.size > 1 else ""))
    backoff = Backoff(log)  # halves a batch that runs out of CUDA memory

    def records_of(work):
        try:
            return backoff(lambda piece: run_batch(sweep, piece), work)
        except Exception as e:  # noqa: BLE001 - only a static-cache path falls back, and only once
            if not d.static or is_oom(e) or isinstance(e, InputError):
                raise
            log(fall_back(sweep.model, d, e))
        if world.is_main:
            info["decode"] = d.info()
            runs.write_info(out, info)
        return backoff(lambda piece: run_batch(sweep, piece), work)

    t_gen = time.time()
    with repeatable(d), runs.RecordWriter(runs.shard_path(out, world)) as writer:
        if sweep.attack.needs_loss:  # the clean answers gradient attacks teacher-force, for every batch
            sweep.clean.update(clean_answers(runs.read_records(path), p.items, sweep.model, sweep.processor))
        for start in starts:
            chunk = units[start:start + batch]
            missing = [keys[start + j] not in done for j in range(len(chunk))]
            if not any(missing):
                continue
            work = pad_units(chunk, batch) if d.static and not cfg.samples else chunk
            for rec, new in zip(records_of(work)[:len(chunk)], missing):
                if new:
                    writer.write(rec)
                    bar.update(1)
            writer.sync()
    bar.close()
    generation_s = time.time() - t_gen
    distributed.barrier(world)  # every share is written
    if not world.is_main:
        distributed.stop(world)
        return Result(out, {}, info, len(units), todo)
    if world.size > 1 or runs.shard_paths(out):
        runs.merge(out, keys)
    distributed.stop(world)
    if backoff.depth:
        info["oom_backoff_depth"] = backoff.depth
    info = runs.finish(info, t0, p.device)
    info.update(generation_s=round(generation_s, 2), generated=todo_all)
    runs.write_info(out, info)
    return Result(out, analyse(out), info, len(units), todo_all)


def describe(result: Result) -> list[str]:
    """What the run did, in words, for the end of the command's output."""
    out, info = result.out, result.info
    lines = []
    nf = result.summary.get("nonfinite", {"count": 0})
    if nf["count"]:  # FP16 overflow: these records are excluded from every statistic
        shown = "; ".join(f"{r['image']} {r['attack']} ε={r['epsilon']} trial {r['trial']}"
                          for r in nf["records"][:5])
        more = f"; and {nf['count'] - 5} more" if nf["count"] > 5 else ""
        lines.append(f"warning: {nf['count']} of {result.summary['meta']['n_records']} generations had "
                     f"non-finite logits and are left out of the statistics ({shown}{more}); "
                     f"see the report's list")
    if result.generated:
        done = result.units - result.generated
        lines.append(f"generated {result.generated} of {result.units} generations"
                     + (f" ({done} were already in {out}/records.jsonl)" if done else "")
                     + f" in {info.get('wall_time_s', 0):.1f} s")
    else:
        when = str(info.get("finished") or info.get("started") or "an earlier run")[:10]
        commit = f", git {info['git_commit'][:7]}" if info.get("git_commit") else ""
        loaded = "" if result.loaded else ", no weights loaded"
        lines.append(f"nothing to generate: all {result.units} generations were already in "
                     f"{out}/records.jsonl (the run of {when}{commit}); re-analysed them{loaded}. To "
                     f"generate them again: the same command with --fresh, or another --out")
    lines.append(f"wrote {out}/summary.json, entropy_report.txt, figures/ from {out}/records.jsonl")
    return lines
