"""How many generations to run at once, and what to do when that turns out to be too many.

    batch, why = pick_batch_size(model, prompt_tokens=631, new_tokens=32, device="cuda",
                                 max_memory="14.5GiB", n_units=368, knee=knee(631, 32))
    backoff = Backoff()
    records = backoff(lambda piece: run_batch(..., piece, ...), chunk)   # halves on CUDA OOM

On a GPU the batch is the smaller of the largest that fits and the knee of the throughput curve.
What fits: the free memory (or, with `max_memory`, the budget left beside the weights already
loaded) over an estimate of one sequence's memory,
    KV cache    layers × 2 × kv_heads × head_dim × dtype bytes × (prompt + new tokens)
    logits      new tokens × vocab × 4 bytes × LOGIT_COPIES  (float32 raw logits kept per step,
                their [B,T,V] stack, and the probes' float32 temporaries)
    activations the prefill's transient peak: tokens × (6·hidden + 3·intermediate) × dtype bytes
                plus heads × tokens² × dtype bytes × 2 (attention scores, where SDPA falls back)
times SAFETY. For LLaVA-1.5-7B in FP16 (596 + 32 tokens) that is 0.52 GiB a sequence, against
0.43-0.51 GiB measured on an H200 (LLAVA_NOTES.md); under a T4-sized 14.5 GiB budget it gives 2.
The knee (knee()): a sample's time at batch B is about a + c/B, where c = new tokens × one decode
step (memory bound, so about the same at any batch) and a = prompt tokens × the prefill's time a
token (compute bound). Fitted to the H200 curve of the compiled decode (../shared measurements of
2026-12-04: 631 prompt + 32 new tokens, 16 -> 20.1 samples/s, 64 -> 26.1): a = 34.5 ms (55 µs a
prompt token, about 14 GFLOP a token at 260 TFLOP/s) and c = 0.244 s, i.e. 7.6 ms a step, which
agrees with the 7.7 ms measured apart at batch 1. Past B = 8c/a doubling the batch gains under
6 % ((1 + 1/8) / (1 + 1/16)), so that B, rounded up to a multiple of 8, is the knee: 64 for the
study grid compiled; eager (20.3 ms a step at batch 1) it is 152, and with 128 new tokens 232
compiled. c/a scales with a GPU's FLOP/s over its bandwidth, which is within about 1.5× on an
A100, H100, H200 or T4, so one knee serves them; where memory is short (a T4) what fits decides.
A short run is the exception: where it needs at most FEW_BATCHES batches at the knee, it takes the
fewest batches that fit instead. Each batch carries a fixed cost beside its samples (on the H200
a batch's first pass took 1.3-2.9 s longer than its repeat, results/gpu_throughput.json) that a
run of a few batches cannot spread, while past the knee a bigger batch costs no more a sample:
the study grid (368 units) ran at 13.97 samples/s as 3 batches of 123 and at 20.12 as 2 of 184
(results/gpu_study.json; results/gpu_study_b184.json, a second session).
On a CPU the batch is CPU_BATCH (the fastest on the embedded model, see experiments/benchmark.py),
fewer if the estimate says RAM is short. Either way the batches are then evened out, so a sweep
of 168 units at a limit of 122 runs as 2 × 84, not 122 + 46.

The batch a run starts with is stored in run.json and reused on resume: batch composition
(left padding, kernel choice) moves the last float digits, so a resumed run must cut the units
exactly as the first did. When a batch still runs out of CUDA memory, Backoff splits it into
halves (then quarters, ...) by position, runs the pieces one after another and keeps that depth
for the rest of the run. The records are those of the same units at the smaller size, in the
same order; a run that backed off may therefore differ from an uninterrupted one in the last
digits of its floats (on CPU, where no back-off happens, runs are bit-for-bit repeatable).
"""
from __future__ import annotations

import gc
import math
import re
import sys

from confidence_trap.errors import InputError

# On CPU: the embedded model's sweep ran fastest at about this size on one thread
# (experiments/benchmark.py --batch-size N).
CPU_BATCH = 64
MAX_BATCH = 256      # beyond this a decode step is compute bound: nothing left to gain
FEW_BATCHES = 4      # a run this short at the knee takes the fewest batches that fit (docstring)
# The knee's inputs (see the module docstring), H200, LLaVA-1.5-7B in FP16:
DECODE_STEP_S = {"compiled": 7.7e-3, "eager": 20.3e-3}   # s a decode step at batch 1, benchmark_gpu*.json
PREFILL_S_PER_TOKEN = 0.0345 / 631                         # the fit's a over the study grid's 631 tokens
KNEE_RATIO = 8                                             # B = 8 c / a: doubling past it gains < 6 %
SAFETY = 1.2         # the estimate's margin over what was measured
LOGIT_COPIES = 8
GIB = 2 ** 30
_UNITS = {"": GIB, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "t": 1e12, "tb": 1e12, "kib": 2 ** 10, "mib": 2 ** 20, "gib": GIB, "tib": 2 ** 40}


def parse_memory(text) -> int:
    """'14.5GiB', '15GB', '14848MiB', 14.5 (GiB) -> bytes."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise InputError(f"--max-memory {text!r}: write an amount such as 14.5GiB, 15GB or 14848MiB")
        value, unit = float(m.group(1)), m.group(2).lower()
    if value <= 0:
        raise InputError(f"--max-memory must be positive, got {text!r}")
    return int(value * _UNITS[unit])


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"


def _dtype_bytes(dtype) -> int:
    import torch

    return torch.empty((), dtype=dtype).element_size()


def sample_bytes(config, prompt_tokens: int, new_tokens: int, dtype) -> dict:
    """Estimated memory of one sequence in a batch, in bytes, by part; "total" has the margin."""
    text = getattr(config, "text_config", config)
    vision = getattr(config, "vision_config", None)
    size = _dtype_bytes(dtype)
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    tokens = prompt_tokens + new_tokens
    kv = text.num_hidden_layers * 2 * kv_heads * head_dim * size * tokens

    def prefill(n, hidden, intermediate, n_heads):
        return n * (6 * hidden + 3 * intermediate) * size + n_heads * n * n * size * 2

    act = prefill(prompt_tokens, text.hidden_size, text.intermediate_size, heads)
    if vision is not None:
        n_vision = (vision.image_size // vision.patch_size) ** 2 + 1
        act = max(act, prefill(n_vision, vision.hidden_size, vision.intermediate_size,
                               vision.num_attention_heads))
    logits = new_tokens * text.vocab_size * 4 * LOGIT_COPIES
    parts = {"kv_cache": kv, "logits": logits, "activations": act}
    parts["total"] = int(SAFETY * sum(parts.values()))
    return parts


def weight_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def available_bytes(device: str) -> int:
    """Free memory where the batch will live: the GPU's free memory, or the machine's RAM."""
    if str(device).startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device))
        return int(free - 0.05 * total)  # the allocator's fragmentation and cuBLAS workspaces
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: trust CPU_BATCH


def balanced(batch: int, n_units: int | None, world_size: int = 1) -> int:
    """The smallest batch that needs no more batches than `batch` does (a multiple of world_size)."""
    if not n_units:
        return batch
    n_batches = -(-n_units // batch)
    n_batches = -(-n_batches // world_size) * world_size
    return max(1, -(-n_units // n_batches))


def knee(prompt_tokens: int, new_tokens: int, compiled: bool = True) -> int:
    """The batch past which doubling gains under 6 % on a GPU (module docstring), a multiple of 8."""
    c = new_tokens * DECODE_STEP_S["compiled" if compiled else "eager"]
    a = max(prompt_tokens, 1) * PREFILL_S_PER_TOKEN
    return int(min(MAX_BATCH, max(8, 8 * math.ceil(KNEE_RATIO * c / a / 8))))


def pick_batch_size(model, prompt_tokens: int, new_tokens: int, device: str, max_memory=None,
                    n_units: int | None = None, world_size: int = 1,
                    available: int | None = None, knee: int | None = None) -> tuple[int, str]:
    """The batch to run, and one line saying why. `available` overrides the measured free bytes;
    `knee` (on CUDA) caps the batch where more stops paying (knee())."""
    from .generation import text_dtype

    per = sample_bytes(model.config, prompt_tokens, new_tokens, text_dtype(model))["total"]
    room = available_bytes(device) if available is None else available
    why = f"{gib(room)} free"
    if max_memory is not None:
        budget = parse_memory(max_memory)
        in_use = weight_bytes(model)
        import torch

        if str(device).startswith("cuda") and torch.cuda.is_available():
            in_use = max(in_use, torch.cuda.memory_allocated(torch.device(device)))
        if budget - in_use < room:
            room, why = budget - in_use, f"{gib(budget)} budget - {gib(in_use)} in use"
    fits = max(1, int(room // per))
    if str(device).startswith("cuda"):
        batch = min(fits, MAX_BATCH, knee or MAX_BATCH)
        room_why = f"{why} / {gib(per)} per sequence"
        why = (f"the knee of the throughput curve, {knee} ({fits} would fit: {room_why})"
               if batch < min(fits, MAX_BATCH) else f"largest that fits: {room_why}")
        few, fewest = (-(-n_units // b) if n_units else 0 for b in (batch, min(fits, MAX_BATCH)))
        if 0 < few <= FEW_BATCHES and fewest < few:  # a short run: no batch's fixed cost to spare
            batch = min(fits, MAX_BATCH)
            why = (f"the fewest batches that fit, {fewest} instead of {few} at the knee {knee}, for a "
                   f"short run ({room_why})")
    else:
        batch = min(fits, CPU_BATCH)
        why = f"CPU default {CPU_BATCH}" + (f", cut to fit ({why} / {gib(per)} per sequence)"
                                             if fits < CPU_BATCH else "")
    if n_units:
        even = balanced(min(batch, n_units), n_units, world_size)
        if even != batch:
            k = -(-n_units // even)
            why += f"; evened out to {k} batch{'es' if k > 1 else ''} of <= {even} for {n_units} units"
        batch = even
    return batch, why


def prompt_tokens(processor, prompts: list[str], pixels, original_ids: bool = False) -> int:
    """The longest prompt's length in tokens, image tokens included, tokenised as generation
    tokenises it (original_ids: the original LLaVA's ids, confidence_trap.models.prompts)."""
    from .generation import encode

    distinct = list(dict.fromkeys(prompts))
    x = pixels[:1].detach().float().cpu().expand(len(distinct), -1, -1, -1)
    return int(encode(processor, distinct, x, "cpu", None, original_ids)["input_ids"].shape[1])


def halves(seq: list, depth: int) -> list[list]:
    """Cut `seq` in two (first half the larger), `depth` times over: up to 2**depth pieces."""
    if depth == 0 or len(seq) <= 1:
        return [seq]
    mid = (len(seq) + 1) // 2
    return halves(seq[:mid], depth - 1) + halves(seq[mid:], depth - 1)


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError)


class Backoff:
    """Run a batch through `fn`; on CUDA out-of-memory split it into halves and try again.

    `depth` (how many times each batch is halved) only grows, so the pieces a batch is cut
    into depend on the batch and the depth alone. fn(list of units) -> list of results.
    """

    def __init__(self, log=None):
        self.depth = 0
        self.log = log or (lambda msg: print(msg, file=sys.stderr))

    def __call__(self, fn, units: list) -> list:
        while True:
            pieces = halves(list(units), self.depth)
            try:
                return [out for piece in pieces for out in fn(piece)]
            except Exception as e:  # noqa: BLE001 - anything but an OOM goes straight back up
                if not is_oom(e) or max(len(p) for p in pieces) == 1:
                    raise
            # out of the except block, so the traceback's frames (and their tensors) are gone
            self.depth += 1
            gc.collect()
            _empty_cache()
            size = max(len(p) for p in halves(list(units), self.depth))
            self.log(f"out of memory on a batch of {max(len(p) for p in pieces)}: running "
                     f"pieces of <= {size} from here on (records of a run that backed off may "
                     f"differ in the last float digits from an uninterrupted one)")


def _empty_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["CPU_BATCH", "Backoff", "balanced", "halves", "knee", "parse_memory", "pick_batch_size",
           "prompt_tokens", "sample_bytes", "weight_bytes"]
