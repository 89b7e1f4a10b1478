"""Memory-aware batching: the estimate against LLAVA_NOTES' measured figures, the choice, the OOM
back-off (a fake generate that runs out of memory above a size), and the static KV cache."""
import json
import os

import pytest
import torch

from confidence_trap.models.batching import (CPU_BATCH, GIB, Backoff, balanced, halves, parse_memory,
                             pick_batch_size, sample_bytes, weight_bytes)
from confidence_trap.errors import InputError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT_7B = 20 + 576   # LLAVA_NOTES' measured runs: 20 text + 576 image tokens, 32 new tokens
# LLAVA_NOTES, H200, FP16, random weights: batch -> peak GiB; the weights alone are 13.16 GiB
MEASURED_PEAK = {1: 13.5, 4: 14.9, 16: 20.1, 32: 29.4}


def test_parse_memory():
    assert parse_memory("14.5GiB") == int(14.5 * GIB)
    assert parse_memory("15GB") == 15 * 10 ** 9
    assert parse_memory("14848 MiB") == 14848 * 2 ** 20
    assert parse_memory(14.5) == int(14.5 * GIB)
    for bad in ("lots", "14.5 parsecs", "-3GiB", "0"):
        with pytest.raises(InputError):
            parse_memory(bad)


def test_estimate_covers_what_was_measured_on_the_7b(llava_7b):
    parts = sample_bytes(llava_7b.config, PROMPT_7B, 32, torch.float16)
    # layers × 2 × kv_heads × head_dim × 2 bytes × tokens = 0.5 MiB a token
    assert parts["kv_cache"] == 32 * 2 * 32 * 128 * 2 * (PROMPT_7B + 32)
    weights = weight_bytes(llava_7b)
    assert weights / GIB == pytest.approx(13.16, abs=0.01)
    for batch, peak in MEASURED_PEAK.items():
        # the estimate never promises less than was measured ...
        assert weights + batch * parts["total"] >= peak * GIB, batch
    # ... nor wastes much: within 1.2 GiB + 30 % of the measured per-sequence cost
    per_measured = (MEASURED_PEAK[32] * GIB - weights) / 32
    assert parts["total"] < 1.3 * per_measured


def test_choice_under_a_t4_budget_and_on_an_h100(llava_7b):
    b, why = pick_batch_size(llava_7b, PROMPT_7B, 32, "cuda", max_memory="14.5GiB", available=70 * GIB)
    assert b == 2 and "budget" in why
    per_real = (MEASURED_PEAK[32] * GIB - weight_bytes(llava_7b)) / 32   # measured, worst
    assert (weight_bytes(llava_7b) + b * per_real) / GIB <= 14.5
    b, why = pick_batch_size(llava_7b, PROMPT_7B, 32, "cuda", available=66 * GIB)
    assert 100 <= b <= 130 and "fits" in why
    # the default sweep (8 photos × 21) runs as two even batches, not 12x + the rest
    b, why = pick_batch_size(llava_7b, PROMPT_7B, 32, "cuda", available=66 * GIB, n_units=168)
    assert b == 84 and "evened" in why
    assert pick_batch_size(llava_7b, PROMPT_7B, 32, "cuda", available=0)[0] == 1


def test_cpu_takes_the_fixed_batch_unless_ram_is_short(llava_7b):
    assert pick_batch_size(llava_7b, PROMPT_7B, 32, "cpu", available=10 ** 15)[0] == CPU_BATCH
    b, why = pick_batch_size(llava_7b, PROMPT_7B, 32, "cpu", available=3 * GIB)
    assert 1 <= b < CPU_BATCH and "cut to fit" in why


def test_balanced_batches():
    assert balanced(122, 168) == 84
    assert balanced(32, 336) == 31          # 11 batches either way
    assert balanced(8, 6) == 6
    assert balanced(100, 168, world_size=2) == 84
    assert balanced(50, 168, world_size=2) == 42   # 4 batches, 2 a process
    assert balanced(16, None) == 16


def test_halves_are_deterministic_and_cover_in_order():
    seq = list(range(11))
    assert halves(seq, 0) == [seq]
    assert halves(seq, 1) == [list(range(6)), list(range(6, 11))]
    for depth in range(5):
        pieces = halves(seq, depth)
        assert [x for p in pieces for x in p] == seq
        assert halves(seq, depth) == pieces
    assert all(len(p) == 1 for p in halves(seq, 4))


class FakeGenerate:
    """Runs out of CUDA memory on more than `limit` units at once."""

    def __init__(self, limit):
        self.limit, self.calls = limit, []

    def __call__(self, units):
        self.calls.append(len(units))
        if len(units) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [u * 10 for u in units]


def test_backoff_halves_until_it_fits_and_keeps_the_depth():
    logs = []
    backoff = Backoff(log=logs.append)
    fake = FakeGenerate(limit=3)
    assert backoff(fake, list(range(8))) == [u * 10 for u in range(8)]
    assert backoff.depth == 2 and len(logs) == 2 and "last float digits" in logs[0]
    assert fake.calls == [8, 4, 2, 2, 2, 2]
    fake.calls.clear()
    assert backoff(fake, list(range(8, 16))) == [u * 10 for u in range(8, 16)]
    assert fake.calls == [2, 2, 2, 2]   # the depth is kept: no second OOM


def test_backoff_gives_up_at_one_and_passes_other_errors():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        Backoff(log=lambda m: None)(FakeGenerate(limit=0), [1, 2, 3])

    def broken(units):
        raise ValueError("not a memory problem")

    backoff = Backoff(log=lambda m: None)
    with pytest.raises(ValueError):
        backoff(broken, [1, 2, 3, 4])
    assert backoff.depth == 0


# --- end to end, through the experiment ----------------------------------------------------

def _run(ckpt, out, *extra):
    from confidence_trap.cli import main

    args = ["--model", ckpt, "--images", os.path.join(REPO, "data", "photos", "chelsea.jpg"),
            os.path.join(REPO, "data", "photos", "coffee.jpg"), "--epsilons", "0.2",
            "--trials", "3", "--max-new-tokens", "3", "--out", str(out), *extra]
    assert main(args) == 0
    with open(os.path.join(out, "run.json")) as f:
        return open(os.path.join(out, "records.jsonl"), "rb").read(), json.load(f)


def test_oom_backoff_run_equals_a_run_at_the_smaller_batch(tiny_ckpt, tmp_path, monkeypatch, capsys):
    import confidence_trap.models.vlm as sweep  # VLM.generate calls this module's generate

    small, _ = _run(tiny_ckpt, tmp_path / "b5", "--batch-size", "5", "--no-null-control")
    real = sweep.generate

    def scarce(model, processor, pixels, prompts, *a, **k):
        if pixels.shape[0] > 5:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, processor, pixels, prompts, *a, **k)

    monkeypatch.setattr(sweep, "generate", scarce)
    # without the null control (whose repeats start a batch of their own) the 10 units are one batch
    backed, info = _run(tiny_ckpt, tmp_path / "b12", "--batch-size", "12", "--no-null-control")
    assert backed == small                           # the same pieces, the same bytes
    assert info["batch_size"] == 12 and info["oom_backoff_depth"] == 1   # resume cuts as before
    assert "out of memory on a batch of 10" in capsys.readouterr().err


def test_automatic_batch_is_printed_stored_and_reused(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "auto"
    records, info = _run(tiny_ckpt, out)
    assert info["batch_size"] == balanced(CPU_BATCH, 10)   # 2 images × (clean + blank + 3 trials); the repeats apart
    assert f"batch size {info['batch_size']} (CPU default" in capsys.readouterr().err
    lines = records.splitlines(keepends=True)
    with open(out / "records.jsonl", "wb") as f:      # lose the last three, then resume
        f.write(b"".join(lines[:-3]))
    again, info2 = _run(tiny_ckpt, out, "--max-memory", "1MiB")   # a budget cannot re-cut a run
    assert info2["batch_size"] == info["batch_size"] and again == records
    assert "as the run being resumed" in capsys.readouterr().err


def test_static_cache_gives_the_same_tokens_and_entropies(peaky_ckpt, tmp_path):
    eager, _ = _run(peaky_ckpt, tmp_path / "eager", "--batch-size", "4")
    static, info = _run(peaky_ckpt, tmp_path / "static", "--batch-size", "4", "--static-cache")
    assert info["config"]["static_cache"] is True
    a = [json.loads(line) for line in eager.splitlines()]
    b = [json.loads(line) for line in static.splitlines()]
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    for ra, rb in zip(a, b):
        assert ra.get("answer_ids") == rb.get("answer_ids")
        assert ra["token_entropies"] == pytest.approx(rb["token_entropies"], abs=1e-4)
