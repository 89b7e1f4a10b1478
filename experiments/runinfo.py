"""run.json: the whole config, the model, the machine, library versions, git commit, timing.

Written when a run starts (so a resumed run can check its config) and again when it ends.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

from experiments.records import atomic_write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(out: str, strict: bool = False) -> dict:
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


def write(out: str, info: dict) -> None:
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
    import numpy
    import torch
    import transformers

    v = {"python": platform.python_version(), "torch": torch.__version__,
         "transformers": transformers.__version__, "numpy": numpy.__version__}
    try:
        import accelerate

        v["accelerate"] = accelerate.__version__
    except ImportError:
        pass
    return v


def collect(cfg, source, model, device, dtype, fmt, view, batch_size) -> dict:
    import torch

    from models import vision_dtype_of

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    return {
        "config": dataclasses.asdict(cfg), "result_view": view,
        "model": cfg.model, "model_id": model_label(source),
        "revision": getattr(model, "config_revision", None) or cfg.revision,
        "model_class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype).split(".")[-1], "vision_dtype": vision_dtype_of(model),
        "device": device, "device_name": device_name(device),
        "prompt_format": fmt, "batch_size": batch_size, "versions": versions(),
        "git_commit": git_commit(), "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def finish(info: dict, t0: float, device: str) -> dict:
    import torch

    info = dict(info, wall_time_s=round(time.time() - t0, 2),
                finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if device.startswith("cuda"):
        info["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**30, 3)
    return info
