"""The run folder: records.jsonl, run.json, the shards of a multi-process run, and resume.

    check_out("results", view, fresh=False)      # refuse to mix two configs in one folder
    with RecordWriter("results/records.jsonl") as w: w.write(record)
    records = read_records("results/records.jsonl")
    done = done_keys("results", world)           # units already generated, in any shard

records.jsonl holds one JSON object per unit, appended as produced and flushed (a kill loses at
most the line being written; each batch is fsynced). Each record has at least:
    image        str   image key (path relative to the repo or to --images), or
                       "DATASET:SPLIT:ID" for a dataset row (then also dataset, split, id, category)
    question     str   the question asked (before any prompt template)
    prompt       str   the exact text handed to the tokenizer
    attack       str   "none" for the clean unit, else the attack's record name ("pgd:entropy_min")
    attack_name  str   the attack's registered name ("pgd", "blank", "repeat"; "none" for clean)
    level_kind   str   what its level is, from the attack registry: "epsilon", "severity" or "none"
                       (clean, the passes, original_clamp)
    epsilon      float 0.0 for clean and the passes; the level ε (pixel units for most attacks,
                       σ = ε/10 in normalized units for original_*); None without one (a
                       severity, which `severity` 1..5 carries instead, or no level)
    trial        int   perturbation trial (0 for clean)
    seed         int   the seed of this unit's perturbation (the run seed for clean)
    (and what the attack's entry adds: `sigma` for original_*)
A run of the answer protocol (the default) measures the greedy answer:
    answer       str   decoded answer, special tokens removed, stripped
    token_entropies list[float|None]  nats, one per counted token (None where logits non-finite)
    n_tokens     int   counted tokens: up to and including the first end-of-sequence token
    n_nonfinite  int   counted tokens whose logits held inf or nan
    answer_ids   list[int]  the counted generated tokens
    (every "logits" probe of probes/__init__.py, mean_entropy first: the mean over the finite
    token entropies; with --samples the sampled ones and their answers)
    references   list[str]  and  correct  bool|float   (only where references exist)
A run of the prompt protocol (the study's code) has none of those; it carries every "prompt"
probe (prompt_entropy and its split by position) with n_positions and n_image_positions.
A rerun reads the file, skips every unit already there and appends the rest. A torn last line
(a run killed mid-write) is dropped and cut off. A multi-process run appends to
records.rank{r}.jsonl, merged in canonical unit order at the end (confidence_trap/runner/distributed.py).

run.json holds the whole config, the model, the machine, library versions, git commit and
timing; it is written when a run starts (so a resumed run can check its config) and when it ends.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import re
import subprocess
import sys
import time

from confidence_trap.runner.config import plain

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARD = "records.rank{}.jsonl"
OUTPUT_FILES = ("records.jsonl", "run.json", "summary.json", "entropy_report.txt")


# --- records ------------------------------------------------------------------------------

def record_key(rec: dict) -> tuple:
    """The identity of a unit of work: the same key is never generated twice."""
    eps = rec.get("epsilon")
    return (rec["image"], rec["question"], rec["attack"], None if eps is None else float(eps),
            rec.get("severity"), int(rec["trial"]))


def read_records(path: str, repair: bool = False) -> list[dict]:
    """Read records.jsonl; drop a torn last line (and truncate it away when `repair`)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    records, good_bytes = [], 0
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            good_bytes += len(line) + (1 if i < len(lines) - 1 else 0)
            continue
        try:
            records.append(json.loads(line))
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError where the cut split a character
            if i >= len(lines) - 2 and not any(l.strip() for l in lines[i + 1:]):
                break  # torn tail: the last write was cut short
            raise ValueError(f"{path}: line {i + 1} is not valid JSON (not a torn last line)")
        good_bytes += len(line) + 1
    if repair and good_bytes < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_bytes)
    elif repair and good_bytes > len(data):  # the last record is whole but its newline was cut off
        with open(path, "ab") as f:
            f.write(b"\n")
    return records


class RecordWriter:
    """Append records one line at a time. Each line is flushed to the operating system as it is
    written, so a killed run (Ctrl-C, kill -9) loses at most the line being written; sync()
    (after each batch, and on close) also forces them to disk, against a power cut."""

    def __init__(self, path: str):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self._f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
        self._f.flush()

    def sync(self) -> None:
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self.sync()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def atomic_write_text(path: str, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


# --- shards of a multi-process run ---------------------------------------------------------

def shard_path(out: str, world) -> str:
    """Where this process appends its records: records.jsonl itself when it is alone."""
    if world.size == 1:
        return os.path.join(out, "records.jsonl")
    return os.path.join(out, SHARD.format(world.rank))


def shard_paths(out: str) -> list[str]:
    found = glob.glob(os.path.join(glob.escape(out), SHARD.format("*")))
    return sorted(p for p in found if re.fullmatch(r"records\.rank\d+\.jsonl", os.path.basename(p)))


def clear_shards(out: str) -> None:
    for p in shard_paths(out):
        os.remove(p)


def done_keys(out: str, world) -> set:
    """Keys of the units already in records.jsonl or in any shard (repairing this process's own)."""
    own = shard_path(out, world)
    keys = set()
    for path in [os.path.join(out, "records.jsonl")] + shard_paths(out):
        keys |= {record_key(r) for r in read_records(path, repair=path == own)}
    return keys


def _lines(path: str) -> list[bytes]:
    """The whole JSON lines of a records file (a torn last line is left out)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    tail = lines[-1]
    try:
        whole = bool(tail.strip()) and json.loads(tail) is not None
    except ValueError:
        whole = False
    return [line for line in lines[:-1] if line.strip()] + ([tail] if whole else [])


def merge(out: str, order: list[tuple]) -> int:
    """Write records.jsonl as records.jsonl + every shard, one line per unit, in `order`.

    `order` lists the unit keys (record_key) in canonical order; a key seen twice keeps its
    first line (records.jsonl first, then the shards by rank); records of keys not in `order`
    follow, as found. Lines are copied byte for byte. Returns the record count."""
    wanted, by_key, extra = set(order), {}, []
    for path in [os.path.join(out, "records.jsonl")] + shard_paths(out):
        for line in _lines(path):
            key = record_key(json.loads(line))
            if key in by_key:
                continue
            by_key[key] = line
            if key not in wanted:
                extra.append(line)
    lines = [by_key[k] for k in order if k in by_key] + extra
    atomic_write_text(os.path.join(out, "records.jsonl"),
                      "".join(line.decode("utf-8") + "\n" for line in lines))
    clear_shards(out)
    return len(lines)


# --- run.json -------------------------------------------------------------------------------

def read_info(out: str, strict: bool = False) -> dict:
    """OUT/run.json as a dict; {} when absent. A damaged file is {} too, or a ValueError when strict."""
    path = os.path.join(out, "run.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        if strict:
            raise ValueError(f"{path}: not readable as JSON ({e})") from None
        return {}
    if not isinstance(info, dict):
        if strict:
            raise ValueError(f"{path}: expected a JSON object")
        return {}
    return info


def write_info(out: str, info: dict) -> None:
    atomic_write_json(os.path.join(out, "run.json"), info)


def model_label(source: str) -> str:
    """Hub ids as they are; folders inside the repo relative to it, so run.json travels."""
    full = os.path.abspath(source)
    if os.path.isdir(source) and full.startswith(REPO + os.sep):
        return os.path.relpath(full, REPO).replace(os.sep, "/")
    return source


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({cpu_name()}, {os.cpu_count()} cores)"


def versions() -> dict:
    """The versions that decide the numbers, read from the installed packages' metadata (not by
    importing them: datasets alone takes a second to import)."""
    from importlib import metadata

    v = {"python": platform.python_version()}
    for name in ("torch", "transformers", "numpy", "accelerate", "datasets"):
        try:
            v[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return v


def collect(cfg, source: str, device: str, extra: dict) -> dict:
    """run.json at the start of a run: config, model, machine, versions, commit, command."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    return {"config": plain(cfg), "model": cfg.model, "model_id": model_label(source),
            "device": device, "device_name": device_name(device), "versions": versions(),
            "git_commit": git_commit(),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **extra}


def finish(info: dict, t0: float, device: str) -> dict:
    import torch

    info = dict(info, wall_time_s=round(time.time() - t0, 2), finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if device.startswith("cuda"):
        info["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, 3)
    return info


# --- resume ----------------------------------------------------------------------------------

def check_out(out: str, view: dict, fresh: bool, defaults=None) -> None:
    """Refuse to mix two configs in one --out (reads only; --fresh clears later, in clear_out).

    `defaults(key)` gives a result key's value in a run.json written before the key existed."""
    from confidence_trap.errors import InputError
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out} exists and is not a folder")
    made_in = os.path.abspath(out)  # the folder is made after the model loads: check it can be
    while not os.path.exists(made_in):
        made_in = os.path.dirname(made_in)
    if not os.path.isdir(made_in) or not os.access(made_in, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to --out {out}: {made_in} is not a writable folder")
    records = os.path.join(out, "records.jsonl")
    if fresh or not os.path.exists(records) or os.path.getsize(records) == 0:
        return
    old = read_info(out).get("result_view")
    if old is None:
        raise InputError(f"{records} exists but {out}/run.json does not say its config: "
                         "use --fresh to start over or another --out")
    default = defaults or (lambda key: None)
    diff = [f"{k}: {old.get(k, default(k))!r} -> {view.get(k)!r}" for k in sorted(set(old) | set(view))
            if old.get(k, default(k)) != view.get(k)]
    if diff:
        raise InputError(f"{out} holds a run with another config ({'; '.join(diff)}); "
                         "use --fresh to start over or another --out")
    try:  # a torn last line is fine (the run repairs it); damage anywhere else is not
        for rec in read_records(records):
            record_key(rec)
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{records} is damaged ({e}); use --fresh to start over or another --out") from None


def clear_out(out: str) -> None:
    """--fresh: remove this pipeline's own files (and shards) from --out, nothing else."""
    for name in OUTPUT_FILES:
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    clear_shards(out)


def make_out(out: str) -> None:
    from confidence_trap.errors import InputError

    try:
        os.makedirs(os.path.join(out, "figures"), exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write to --out {out}: {e.strerror or e}") from None
