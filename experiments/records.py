"""records.jsonl: one JSON object per generation, appended as produced.

Each record has at least:
    image        str   image key (path relative to the repo or to --images, or a scene id)
    question     str   the question asked (before any prompt template)
    prompt       str   the exact text handed to the processor
    attack       str   "none" for the clean generation, else the attack name ("proxy", ...)
    epsilon      float 0.0 for clean; the L-inf budget in [0,1] pixel units otherwise
                       (None for corruptions, which carry `severity` 1..5 instead)
    trial        int   perturbation trial (0 for clean)
    seed         int   the seed of this generation's perturbation (the run seed for clean)
    answer       str   decoded answer, special tokens removed, stripped
    token_entropies list[float|None]  nats, one per counted token (None where logits non-finite)
    mean_entropy float|None  mean over the finite token entropies (None when none is finite)
    n_tokens     int   counted tokens: up to and including the first end-of-sequence token
    n_nonfinite  int   counted tokens whose logits held inf or nan
    references   list[str]  (only where the image has reference answers)
    correct      bool       (only where the image has reference answers)
Probes beyond entropy add their own keys (see probes/).

The file is the run's memory: a rerun reads it, skips every unit already there, and appends the
rest. A torn last line (a run killed mid-write) is dropped and cut off the file.
"""
from __future__ import annotations

import json
import os

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
    """Append records one line at a time, flushed and fsynced, so a kill loses at most one line."""

    def __init__(self, path: str):
        self.path = path
        self._f = open(path, "a", encoding="utf-8")

    def write(self, rec: dict) -> None:
        self._f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
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
