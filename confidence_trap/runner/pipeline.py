"""The pipeline every entry point calls: plan (check everything), prepare (load), run (sweep and
analyse). The command line, the benchmark and the tests call it in process.

    from confidence_trap.runner import pipeline
    from confidence_trap.runner.config import Config
    result = pipeline.run(Config(model="tiny", out="/tmp/run"))
    result.summary["by_epsilon"]["0.3"]["mean_delta"], result.generated

plan(cfg) checks every name and input (model, attacks and their parameters, images or dataset
columns, the output folder's earlier config) before any model loads or any file is written;
prepare(plan) loads the model (one confidence_trap.models.vlm.VLM: everything the run asks of
it) and builds the Sweep (confidence_trap/runner/sweep.py); run(cfg) does both, then runs what
--out does not hold yet in fixed batches (resumable, split over processes by
confidence_trap/runner/distributed.py), merges, writes run.json and analyses
(confidence_trap/runner/analyze.py). When --out already holds every unit of a finished run,
nothing loads: re-analysis only. The batch and the decode path (compiled or eager,
--deterministic) come from confidence_trap/models/decoding.py; on a static-cache path the last
partial batch is padded with repeats of its own units, whose records are dropped, so the run
keeps one shape (not with --samples, whose sampling would draw differently in a longer batch).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

import attacks
from confidence_trap import models
from confidence_trap.errors import InputError
from confidence_trap.models.batching import Backoff, is_oom
from confidence_trap.models.decoding import repeatable
from confidence_trap.models.images import load_image
from confidence_trap.runner import distributed, runs
from confidence_trap.runner.analyze import analyze_run
from confidence_trap.runner.config import Config, default_view_value, result_view
from confidence_trap.runner.inputs import DatasetImages, LazyPixels, Pixels
from confidence_trap.runner.sweep import (Sweep, batch_spans, clean_answers, make_units, run_batch, tail_start,
                                         unit_key)
from confidence_trap.tasks.datasets import load_task, open_dataset, select_rows
from confidence_trap.tasks.imagesets import Item, resolve_items

__all__ = ["Plan", "Result", "Pixels", "Sweep", "plan", "prepare", "run", "describe", "make_units",
           "run_batch", "unit_key"]


@dataclass
class Plan:
    cfg: Config
    model: models.ModelPlan  # source, device, dtypes, prompt format: what will load
    world: distributed.World
    items: list
    images: object         # PIL images, one per item, or DatasetImages for a dataset run
    view: dict             # what a resumed run must agree on
    data_info: dict | None = None  # a dataset run's source (confidence_trap.tasks.datasets.TaskData.info)

    @property
    def source(self) -> str:
        return self.model.source

    @property
    def device(self) -> str:
        return self.model.device

    @property
    def fmt(self) -> str:
        return self.model.prompt_format


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
    return models.check_device(distributed.device_for(distributed.world(), cfg.device))


def plan(cfg: Config, check_out: bool = True) -> Plan:
    """Every check that needs no model: raises InputError (one line) before anything is written.
    check_out=False skips the --out folder (the benchmark writes none)."""
    if cfg.static_cache and (cfg.deterministic or not cfg.compile):
        raise InputError(f"--static-cache forces the static cache (compiled on CUDA); "
                         f"{'--deterministic' if cfg.deterministic else '--no-compile'} rules it out: give one of them")
    world = distributed.world()  # one process of one unless launched by accelerate/torchrun
    mp = models.plan(cfg.model, cfg.revision, plan_device(cfg), cfg.dtype, cfg.vision_dtype, cfg.prompt_format)
    data_info = None
    if cfg.task:  # a benchmark dataset: columns, split and subset checked here, images later
        items, images, data_info, task_fmt = dataset_items(cfg)
        if cfg.prompt_format is None and task_fmt and mp.original_ids:
            mp = dataclasses.replace(mp, prompt_format=task_fmt)  # LLaVA's own benchmark scripts' conversation
    else:
        items = resolve_items(cfg.images, cfg.prompt, "scenes" if mp.source == models.TINY_DIR else "photos")
        images = [load_image(it.path) for it in items]
    name = lambda d: str(d).split(".")[-1]  # noqa: E731
    view = result_view(cfg, {"model": runs.model_label(mp.source), "dtype": name(mp.dtype),
                             "vision_dtype": name(mp.vision_dtype), "prompt_format": mp.prompt_format,
                             "device_type": mp.device.split(":")[0]})
    if check_out and (world.is_main or not cfg.fresh):  # --fresh clears --out once, in rank 0
        runs.check_out(cfg.out, view, cfg.fresh and world.is_main, default_view_value)
    return Plan(cfg, mp, world, items, images, view, data_info)


def dataset_items(cfg: Config):
    """(items, DatasetImages, the data's info, the task's prompt format) of a --task run."""
    task = load_task(cfg.task)
    data = open_dataset(cfg.dataset, cfg.split, task)
    rows = data.rows(select_rows(data, cfg.limit, cfg.seed))
    items = [Item(r.key, None, r.query, tuple(r.references) or None, task.metric,
                  (("dataset", data.dataset), ("split", data.split), ("id", r.id),
                   ("category", r.category), ("metric", task.metric))) for r in rows]
    return items, DatasetImages(data, [r.index for r in rows]), data.info(), task.prompt_format


def prepare(p: Plan) -> Sweep:
    """Load the model and build the Sweep of the plan."""
    if p.device == "cpu":
        models.fit_cpu_threads()
    vlm = models.load_plan(p.model, p.cfg.revision)
    size, mean = vlm.image_size, vlm.image_mean
    images = (LazyPixels(p.images, size, mean, p.device) if isinstance(p.images, DatasetImages)
              else Pixels(p.images, size, mean, p.device))
    return Sweep(vlm, p.cfg, p.items, [vlm.prompt(it.question) for it in p.items], images)


def choose_batch(p: Plan, sweep, n_units: int, log=None):
    """The run's batch and decode path (confidence_trap.models.decoding.choose): --batch-size, else what the run
    being resumed used, else the smaller of what fits and the knee; compiled where it pays."""
    cfg, vlm = p.cfg, sweep.vlm
    stored = {} if cfg.fresh else runs.read_info(cfg.out)
    n_prompt = vlm.prompt_tokens(sweep.prompts, sweep.images.pixels([0]))
    # a pass with more left padding runs at a longer length: one cache length covers it
    n_prompt += max([a.pad_left for a in attacks.passes() if getattr(cfg, a.turned_off_by)], default=0)
    # the prompt protocol keeps the logits of every prompt position instead of the new tokens'
    new = cfg.max_new_tokens if cfg.protocol == "answer" else n_prompt
    d = vlm.choose_decoding(p.device, n_units, n_prompt, new, cfg, stored, p.world.size,
                            log=log if p.world.is_main else None, generates=cfg.protocol == "answer")
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
    try:
        return analyze_run(out)
    except ValueError as e:
        raise InputError(str(e)) from None


def open_out(p: Plan) -> set:
    """Get --out ready (cleared with --fresh, a torn last line cut; the folder itself is made only
    once the model has loaded, so a failed load leaves none behind) and return the unit keys already
    generated there (records.jsonl and any shards)."""
    world, out = p.world, p.cfg.out
    if world.is_main:
        if p.cfg.fresh:
            runs.clear_out(out)
        runs.read_records(os.path.join(out, "records.jsonl"), repair=True)  # before any process reads it
    distributed.start(world)
    distributed.barrier(world)
    return runs.done_keys(out, world)


def run_info(p: Plan, sweep: Sweep, d) -> dict:
    """run.json as a run starts: config, model, machine, versions, the batch and decode path."""
    model, about = sweep.vlm.model, sweep.vlm.info()
    return runs.collect(p.cfg, p.source, p.device, {
        "result_view": p.view, "revision": getattr(model, "config_revision", None) or p.cfg.revision,
        "model_class": about["model_class"], "checkpoint": p.model.checkpoint, "parameters": about["parameters"],
        "dtype": p.view["dtype"], "vision_dtype": about["vision_dtype"],
        "scored_vocab_size": about["scored_vocab_size"], "prompt_format": p.fmt, "batch_size": d.batch,
        # the processor's normalisation: figure 7 maps the normalised clamp back to pixels with it
        "image_mean": [float(v) for v in sweep.vlm.image_mean], "image_std": [float(v) for v in sweep.vlm.image_std],
        "decode": d.info(), "processes": p.world.size, **({"data": p.data_info} if p.data_info else {})})


def generate(p: Plan, sweep: Sweep, d, units: list, keys: list, done: set, info: dict, log,
             progress: bool) -> tuple[int, Backoff]:
    """Every batch of this process's share not in --out yet, appended to its records file.
    Returns (units generated, the back-off that ran them)."""
    world, out, batch = p.world, p.cfg.out, d.batch
    spans = [span for i, span in enumerate(batch_spans(units, batch)) if world.owns(i)]
    mine = [i for s, e in spans for i in range(s, e)]
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
            log(sweep.vlm.fall_back(d, e))
        if world.is_main:
            info["decode"] = d.info()
            runs.write_info(out, info)
        return backoff(lambda piece: run_batch(sweep, piece), work)

    with repeatable(d), runs.RecordWriter(runs.shard_path(out, world)) as writer:
        if sweep.needs_loss:  # the clean answers gradient attacks teacher-force, for every batch
            sweep.clean.update(clean_answers(runs.read_records(os.path.join(out, "records.jsonl")),
                                             p.items, sweep.vlm))
        for start, end in spans:
            chunk = units[start:end]
            missing = [keys[start + j] not in done for j in range(len(chunk))]
            if not any(missing):
                continue
            work = pad_units(chunk, batch) if d.static and not p.cfg.samples else chunk
            for rec, new in zip(records_of(work)[:len(chunk)], missing):
                if new:
                    writer.write(rec)
                    bar.update(1)
            writer.sync()
    bar.close()
    return todo, backoff


def run(cfg: Config, log=None, progress: bool = True, changed: dict | None = None) -> Result:
    """The whole run into cfg.out; see the module docstring. `log` gets one-line messages;
    `changed` (the flags that differ from the defaults) is logged once every check has passed."""
    t0 = time.time()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    p = plan(cfg)
    if changed and p.world.is_main:
        log("config: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    if cfg.deterministic:  # cuBLAS reads it when it starts, before the first matmul
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    world, out = p.world, cfg.out
    done = open_out(p)
    units = make_units(cfg, p.items)
    keys = [unit_key(u, p.items) for u in units]
    todo_all = sum(k not in done for k in keys)
    if todo_all == 0 and "wall_time_s" in runs.read_info(out):
        return reanalyse(p, units, keys, runs.read_info(out))
    sweep = prepare(p)
    runs.make_out(out)  # only now: a model that fails to load leaves no folder behind
    d = choose_batch(p, sweep, tail_start(units), log)  # evened out over the units before the null control's
    sweep.vlm.use(d)
    info = {}
    if world.is_main:
        log(f"batch size {d.batch} ({d.why}); decoding {d.path} ({d.path_why})")
        info = run_info(p, sweep, d)
        runs.write_info(out, info)
    t_gen = time.time()
    todo, backoff = generate(p, sweep, d, units, keys, done, info, log, progress)
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
    answers = (info.get("config") or {}).get("protocol", "answer") == "answer"
    if nf["count"] and answers:  # FP16 overflow: these records are excluded from every statistic
        # (a prompt-protocol record has no answer entropy for the summary's answer statistics)
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
