"""How a run's decode steps run, and at what batch: compiled or eager, fast or repeatable.

    d = choose(model, "cuda", n_units=368, prompt_tokens=643, new_tokens=32, cfg=cfg)
    d.batch, d.path, d.path_why   # 123, "eager", "the compile would not pay: 6 batches × ..."
    with repeatable(d):           # --deterministic: the process-wide settings, restored afterwards
        apply(model, d)           # every generate() of the run takes the path

The paths:
  compiled  CUDA: the static KV cache, whose decode step transformers' generate compiles by
            itself (torch.compile, mode reduce-overhead). The cache is sized once for the run
            (max_cache_len = its longest prompt, the null control's extra padding included, +
            max_new_tokens) and the last partial batch is padded (confidence_trap/runner/pipeline.py), so
            the run has one shape and compiles once.
  static    the static cache off CUDA, where transformers does not compile (--static-cache on a
            CPU: the tests' way through the compiled path's code).
  eager     the dynamic cache, nothing compiled.
The rule on CUDA: compiled where it pays, i.e. where the decode steps the run has at the compiled
batch save more than the compile costs:
    batches × max_new_tokens × saved  >=  shapes × COMPILE_S
with the H200's figures (../shared measurements of 2026-12-04): a compile takes 40-54 s per
shape (COMPILE_S = 54, the larger) and a compiled step saves 12.6 ms (eager 20.3 ms, compiled
7.7 ms at batch 1; 13.3 ms at batch 16): what compiling removes is launch overhead. So about
4,300 decode steps: with 32 new tokens 134 batches, with 128 (the default) 34. Where the weights
take longer than that to stream (the memory-bandwidth floor: weight bytes over the GPU's
bandwidth, BANDWIDTH_GB_S), both steps run at the floor and less is saved:
saved = max(20.3 ms, floor) - max(7.7 ms, floor), which is nothing on a T4 (44 ms for the 7B).
max_new_tokens is the most a batch can take; trained weights often stop sooner, so the rule
leans towards compiling. shapes is 2 with --samples (the K answers per unit are another batch
size), else 1. The study grid (368 units, 32 new tokens, 6 batches) stays eager; a benchmark's
thousands of rows compile. `--static-cache` forces the compiled path; `--no-compile` and
`--deterministic` rule it out. Where compiling is unavailable (no triton) the run says so in
one line and stays eager; where it fails, the pipeline falls back to eager with one line
(fall_back) and run.json says so.

--deterministic (repeatable): eager attention in every layer (model.set_attn_implementation
("eager")), eager decode, torch.use_deterministic_algorithms(True, warn_only=True), cuDNN
deterministic, CUBLAS_WORKSPACE_CONFIG=:4096:8. Measured on an H200 (drift_bisect.log): with SDPA
two passes of one batch differ by up to 4e-4 nats a token (15/16 same answers), with eager
attention they repeat bit for bit; deterministic algorithms alone did not help (27/32). Its cost
is what scripts/gpu_checks.sh measures (gpu_throughput.json: eager_attention; gpu_determinism.json).
It is off by default: it gives up the compiled path and SDPA, and every run measures its own
noise floor instead (the null control), so that no conclusion rests on the last digits.
"""
from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass

# a decode step at batch 1 (benchmark_gpu*.json): batching's knee reads the same figures
from confidence_trap.models.batching import DECODE_STEP_S as STEP_S
from confidence_trap.models.batching import knee, pick_batch_size, weight_bytes

COMPILE_S = 54.0
STEP_SAVED_S = STEP_S["eager"] - STEP_S["compiled"]
CUBLAS_WORKSPACE = ":4096:8"
# Peak memory bandwidth, GB/s, by device name (first match wins).
BANDWIDTH_GB_S = [(r"H200", 4800), (r"H100 NVL", 3900), (r"H100 PCIe", 2000), (r"H100", 3350),
                  (r"A100.*80GB.*PCIe", 1935), (r"A100.*80GB", 2039), (r"A100", 1555),
                  (r"\bL4\b", 300), (r"\bT4\b", 320)]


@dataclass
class Decoding:
    batch: int
    why: str                    # why this batch
    path: str                   # "compiled", "static" or "eager"
    path_why: str
    deterministic: bool = False
    attention: str | None = None      # set for --deterministic ("eager"); None: as loaded
    max_cache_len: int | None = None  # the static cache's length, one for the whole run
    fallback: str | None = None       # why the compiled path was left, if it was

    @property
    def static(self) -> bool:
        return self.path in ("compiled", "static")

    def info(self) -> dict:
        """run.json's "decode" block."""
        out = asdict(self)
        out.pop("batch"), out.pop("why")
        if self.deterministic:
            out["settings"] = {"use_deterministic_algorithms": "warn_only", "cudnn_deterministic": True,
                               "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
        return out


def table_bandwidth(name: str) -> float | None:
    """GB/s of a GPU by its name (torch.cuda.get_device_name), None when not in the table."""
    for pattern, gbs in BANDWIDTH_GB_S:
        if re.search(pattern, name):
            return float(gbs)
    return None


def step_saved(weight_bytes: int, gpu_name: str | None) -> float:
    """Seconds a compiled decode step saves over an eager one on this GPU (module docstring);
    a GPU not in the table is taken to be fast enough that the floor does not matter."""
    gbs = table_bandwidth(gpu_name or "")
    floor = weight_bytes / (gbs * 1e9) if gbs else 0.0
    return max(STEP_S["eager"], floor) - max(STEP_S["compiled"], floor)


def compile_pays(n_batches: int, new_tokens: int, shapes: int = 1, saved: float = STEP_SAVED_S) -> bool:
    return saved > 0 and n_batches * new_tokens * saved >= shapes * COMPILE_S


def compile_available(device: str) -> tuple[bool, str]:
    """Whether generate can compile on `device`, and if not why (one phrase)."""
    if not str(device).startswith("cuda"):
        return False, "not on CUDA"
    try:
        from torch.utils._triton import has_triton
    except ImportError:  # a torch without the helper: let the compile itself tell
        return True, ""
    return (True, "") if has_triton() else (False, "torch.compile needs triton, which is not installed")


def _n_batches(n_units: int, batch: int) -> int:
    return max(1, math.ceil(n_units / max(batch, 1)))


def gpu_name(device: str) -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    except Exception:  # noqa: BLE001 - no name: the rule takes the H200's figures
        return None


def choose(model, device: str, n_units: int, prompt_tokens: int, new_tokens: int, cfg,
           stored: dict | None = None, world_size: int = 1, available=compile_available,
           free_bytes: int | None = None, log=None, gpu: str | None = None, generates: bool = True) -> Decoding:
    """The batch and the path of a run (module docstring). `stored`: the run.json of the run
    being resumed, whose batch and path a resumed run keeps (batch composition and kernels move
    the last float digits). `log` gets the one-line notice when compiling is unavailable; `gpu`
    names the GPU the rule's floor is for (default: the device's own). generates=False: a run of
    forward passes only (the prompt protocol), which has no decode step to compile; new_tokens
    is then the logit rows a sequence keeps, for the memory estimate."""
    cuda = str(device).startswith("cuda")
    shapes = 2 if getattr(cfg, "samples", 0) else 1
    off = "--deterministic" if cfg.deterministic else "--no-compile" if not cfg.compile else None
    stored = stored or {}

    def batch_for(compiled: bool) -> tuple[int, str]:
        if cfg.batch_size is not None:
            return cfg.batch_size, "--batch-size"
        if stored.get("batch_size"):
            return stored["batch_size"], "as the run being resumed (run.json)"
        limit = knee(prompt_tokens, new_tokens, compiled) if cuda else None
        return pick_batch_size(model, prompt_tokens, new_tokens, device, cfg.max_memory, n_units,
                               world_size, free_bytes, knee=limit)

    def done(batch, why, path, path_why):
        return Decoding(batch, why, path, path_why, deterministic=cfg.deterministic,
                        attention="eager" if cfg.deterministic else None,
                        max_cache_len=prompt_tokens + new_tokens if path != "eager" else None)

    if not generates:
        return done(*batch_for(False), "eager", "no decoding: forward passes only (--protocol prompt)")
    if off:
        return done(*batch_for(False), "eager", f"{off}")
    if not cuda:
        if cfg.static_cache:
            return done(*batch_for(True), "static", "--static-cache (no compile off CUDA)")
        return done(*batch_for(False), "eager", "not on CUDA")
    ok, reason = available(device)
    if not ok:
        if log:
            log(f"compiled decoding unavailable ({reason}): decoding eagerly")
        return done(*batch_for(False), "eager", f"compiled decoding unavailable: {reason}")
    prior = (stored.get("decode") or {}).get("path")
    if prior:
        return done(*batch_for(prior == "compiled"), prior, "as the run being resumed (run.json)")
    batch, why = batch_for(True)
    n = _n_batches(n_units, batch * world_size)
    steps = f"{n} batch{'es' if n > 1 else ''} × {new_tokens} new tokens"
    if cfg.static_cache:
        return done(batch, why, "compiled", f"--static-cache ({steps})")
    saved = step_saved(weight_bytes(model), gpu or gpu_name(device))
    rule = f"{steps} × {saved * 1e3:.1f} ms saved a step vs {shapes} × {COMPILE_S:.0f} s of compiling"
    if compile_pays(n, new_tokens, shapes, saved):
        return done(batch, why, "compiled", f"the compile pays: {rule}")
    batch, why = batch_for(False)
    return done(batch, why, "eager", f"the compile would not pay: {rule}")


def apply(model, d: Decoding) -> None:
    """Put the path on the model: every generate() of the run follows generation_config."""
    gc = model.generation_config
    if d.attention:
        model.set_attn_implementation(d.attention)
    gc.cache_implementation = "static" if d.static else None
    gc.max_cache_len = d.max_cache_len if d.static else None


def fall_back(model, d: Decoding, error: BaseException) -> str:
    """Leave the compiled path after `error`; returns the one-line notice."""
    first = (str(error).strip().splitlines() or [""])[0][:200]
    d.fallback = f"{type(error).__name__}: {first}"
    d.path, d.path_why, d.max_cache_len = "eager", f"compiled decoding failed ({d.fallback})", None
    apply(model, d)
    try:  # drop what the failed compile left behind
        import torch._dynamo

        torch._dynamo.reset()
    except Exception:  # noqa: BLE001 - a cleanup, not a step that can fail the run
        pass
    return f"compiled decoding failed ({d.fallback}): decoding eagerly from here on"


@contextmanager
def repeatable(d: Decoding):
    """--deterministic's process-wide settings for the run, restored afterwards."""
    if not d.deterministic:
        yield
        return
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)  # read when cuBLAS starts
    was = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
           torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = was[2], was[3]


__all__ = ["BANDWIDTH_GB_S", "COMPILE_S", "STEP_SAVED_S", "Decoding", "apply", "choose", "compile_available",
           "compile_pays", "fall_back", "repeatable", "step_saved", "table_bandwidth"]
