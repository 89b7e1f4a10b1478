"""The batch and the decode path on a GPU (confidence_trap/models/decoding.py, models/batching.knee), decided on
LLaVA-1.5-7B's shapes on the meta device; and, run on CPU through the pipeline: the padded last
batch, the fallback from a failing static-cache path, --deterministic in run.json, and a resume
of a finished run that loads no weights."""
import json
import os
from types import SimpleNamespace

import pytest
import torch

from confidence_trap.models.batching import GIB, balanced, knee, pick_batch_size
from test_batching import _run  # the two photos, one ε, three trials: the same run both files check
from confidence_trap.models.batching import weight_bytes
from confidence_trap.models.decoding import COMPILE_S, STEP_SAVED_S, choose, compile_pays, step_saved

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT, NEW = 631, 32     # the study grid: 55 text + 576 image tokens, 32 new tokens
STUDY = 368               # its units: 16 items × (clean, blank, 4 ε × 5 trials, repeat)
H200_FREE = 118 * GIB     # what was free beside the weights on the H200
OK = lambda device: (True, "")  # noqa: E731 - compiling available


def cfg(**kw):
    base = dict(compile=True, deterministic=False, static_cache=False, batch_size=None, max_memory=None,
                samples=0)
    return SimpleNamespace(**{**base, **kw})


def test_the_knee_follows_the_measured_curve():
    # a + c/B fitted to the compiled H200 curve: 16 -> 20.1 samples/s, 64 -> 26.1
    c, a = NEW * 7.7e-3, 0.0345
    assert 1 / (a + c / 16) == pytest.approx(20.1, rel=0.03) and 1 / (a + c / 64) == pytest.approx(26.1, rel=0.03)
    assert knee(PROMPT, NEW) == 64                          # 8 c / a = 57, up to a multiple of 8
    gain = (a + c / 64) / (a + c / 128)                      # doubling past the knee
    assert gain < 1.06
    assert knee(PROMPT, NEW, compiled=False) == 152          # the eager step is 2.6x longer
    assert knee(PROMPT, 128) == 232 and knee(PROMPT, 4) == 8  # longer answers, bigger knee
    assert all(k % 8 == 0 and 8 <= k <= 256 for k in (knee(10, 1000), knee(10 ** 6, 1)))


def test_batch_is_the_knee_where_memory_allows_and_what_fits_where_not(llava_7b):
    b, why = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", available=H200_FREE, knee=64)
    assert b == 64 and "knee" in why
    b, why = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", available=20 * GIB, knee=64)
    assert 20 <= b < 64 and "largest that fits" in why      # memory is shorter than the knee
    # the T4 budget: 14.5 GiB beside 13.16 GiB of weights leaves room for 1-2, knee or not
    b, why = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", max_memory="14.5GiB", available=H200_FREE, knee=64)
    assert b in (1, 2) and "budget" in why
    d = choose(llava_7b, "cuda", STUDY, PROMPT, NEW, cfg(max_memory="14.5GiB"), available=OK, free_bytes=H200_FREE)
    assert d.batch in (1, 2)


def test_a_short_run_takes_the_fewest_batches_that_fit(llava_7b):
    """At most FEW_BATCHES batches at the knee: each batch's fixed cost cannot be spread, so the
    run is cut into as few batches as fit; a longer run, or less memory, keeps the knee's rule."""
    from confidence_trap.models.batching import FEW_BATCHES

    fits, _ = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", available=H200_FREE)
    short = FEW_BATCHES * 152 - 8                                      # 4 batches at the knee
    b, why = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", n_units=short, available=H200_FREE, knee=152)
    assert b == balanced(fits, short) and b > 152 and "fewest batches" in why
    b, why = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", n_units=5 * 152, available=H200_FREE, knee=152)
    assert b == 152 and "knee" in why                                   # 5 batches: the knee's rule
    b, why = pick_batch_size(llava_7b, PROMPT, NEW, "cuda", n_units=100, available=20 * GIB, knee=152)
    assert b < 100 and "largest that fits" in why                      # memory decides, as before


def test_compiled_where_it_pays(llava_7b):
    assert compile_pays(134, 32) and not compile_pays(133, 32)     # 54 s / (32 × 12.6 ms) = 133.9
    assert compile_pays(34, 128) and not compile_pays(34, 128, shapes=2)
    assert COMPILE_S / STEP_SAVED_S == pytest.approx(4286, abs=1)
    # the study grid: 6 batches of 62 -> the compile would not pay; eager, and 3 batches at its own
    # knee make a short run, which takes the fewest batches that fit (2 of 184) instead
    d = choose(llava_7b, "cuda", STUDY, PROMPT, NEW, cfg(), available=OK, free_bytes=H200_FREE)
    assert d.path == "eager" and "would not pay" in d.path_why and d.max_cache_len is None
    assert d.batch == 184 and "fewest batches that fit, 2 instead of 3" in d.why
    # a benchmark-sized run: thousands of units at the compiled knee, one cache length for all
    d = choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(), available=OK, free_bytes=H200_FREE)
    assert d.path == "compiled" and d.max_cache_len == PROMPT + 128 and d.batch <= 232
    assert choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(compile=False), available=OK,
                  free_bytes=H200_FREE).path == "eager"
    forced = choose(llava_7b, "cuda", STUDY, PROMPT, NEW, cfg(static_cache=True), available=OK,
                    free_bytes=H200_FREE)
    assert forced.path == "compiled" and forced.batch == balanced(64, STUDY) == 62
    # --batch-size wins, and the rule counts its batches
    d = choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(batch_size=7), available=OK, free_bytes=H200_FREE)
    assert d.batch == 7 and d.path == "compiled"


def test_where_the_weights_stream_slower_than_launches_nothing_is_saved(llava_7b):
    w = weight_bytes(llava_7b)
    assert step_saved(w, "NVIDIA H200") == pytest.approx(STEP_SAVED_S) == step_saved(w, "unknown GPU")
    assert step_saved(w, "NVIDIA A100-PCIE-40GB") == pytest.approx(20.3e-3 - w / 1555e9)  # floor 9.1 ms
    assert step_saved(w, "Tesla T4") == 0                                                  # floor 44 ms
    big = dict(available=OK, free_bytes=H200_FREE)
    assert choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(), gpu="NVIDIA H200", **big).path == "compiled"
    d = choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(), gpu="Tesla T4", **big)
    assert d.path == "eager" and "0.0 ms saved" in d.path_why


def test_a_resumed_run_keeps_its_batch_and_path(llava_7b):
    stored = {"batch_size": 48, "decode": {"path": "compiled"}}
    d = choose(llava_7b, "cuda", STUDY, PROMPT, NEW, cfg(), stored, available=OK, free_bytes=H200_FREE)
    assert (d.batch, d.path) == (48, "compiled") and "resumed" in d.path_why


def test_without_compiling_a_run_says_so_once_and_decodes_eagerly(llava_7b):
    said = []
    d = choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(), available=lambda device: (False, "no triton"),
               free_bytes=H200_FREE, log=said.append)
    assert d.path == "eager" and "no triton" in d.path_why
    assert len(said) == 1 and "\n" not in said[0] and "no triton" in said[0]
    assert "largest that fits" in d.why      # the eager knee (602 with 128 tokens) is past what fits


def test_deterministic_is_eager_with_eager_attention(llava_7b):
    d = choose(llava_7b, "cuda", 20000, PROMPT, 128, cfg(deterministic=True), available=OK, free_bytes=H200_FREE)
    assert (d.path, d.attention, d.deterministic) == ("eager", "eager", True)
    assert d.info()["settings"]["use_deterministic_algorithms"] == "warn_only"
    assert choose(llava_7b, "cpu", 8, PROMPT, NEW, cfg(), free_bytes=10 ** 12).path == "eager"


# --- through the pipeline, on CPU -------------------------------------------------------------

def _spy(monkeypatch):
    import confidence_trap.models.vlm as sweep  # VLM.generate calls this module's generate

    sizes, real = [], sweep.generate  # (batch, cache implementation, static cache length)

    def spy(model, processor, pixels, prompts, *a, **k):
        out = real(model, processor, pixels, prompts, *a, **k)
        # the static cache transformers made for the call (its length; one length, one shape)
        sizes.append((pixels.shape[0], model.generation_config.cache_implementation,
                      getattr(model, "_previous_max_cache_length", None)))
        return out

    monkeypatch.setattr(sweep, "generate", spy)
    return sizes


def _records(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


def test_the_last_batch_is_padded_to_the_run_shape_and_its_repeats_dropped(peaky_ckpt, tmp_path, monkeypatch):
    from confidence_trap.runner import pipeline

    sizes = _spy(monkeypatch)
    padded, info = _run(peaky_ckpt, tmp_path / "padded", "--batch-size", "5", "--static-cache")
    assert [n for n, _, _ in sizes] == [5, 5, 5] and {c for _, c, _ in sizes} == {"static"}   # 12 units: 5+5+2 -> 5
    assert info["decode"]["path"] == "static"
    assert {n for _, _, n in sizes} == {info["decode"]["max_cache_len"]}   # the null control's padding fits too
    sizes.clear()
    monkeypatch.setattr(pipeline, "pad_units", lambda chunk, size: chunk)
    plain, _ = _run(peaky_ckpt, tmp_path / "plain", "--batch-size", "5", "--static-cache")
    assert [n for n, _, _ in sizes] == [5, 5, 2]
    a, b = _records(padded), _records(plain)
    # the same records, one per unit, in order; CPU matmuls round a 2-row batch differently from a
    # 5-row one in the last float digits, so the floats are compared to 1e-5, not bit for bit
    assert [(r["image"], r["attack"], r["trial"]) for r in a] == [(r["image"], r["attack"], r["trial"]) for r in b]
    assert len({(r["image"], r["attack"], r["trial"]) for r in a}) == 12
    assert padded.splitlines()[:10] == plain.splitlines()[:10]        # the full batches: byte for byte
    for ra, rb in zip(a, b):
        assert ra["answer_ids"] == rb["answer_ids"] and ra["answer"] == rb["answer"]
        assert ra["token_entropies"] == pytest.approx(rb["token_entropies"], rel=1e-5, abs=1e-6)


@pytest.mark.slow  # two more CLI runs
def test_a_padded_run_resumes_to_the_same_bytes(peaky_ckpt, tmp_path):
    import shutil

    whole, info = _run(peaky_ckpt, tmp_path / "whole", "--batch-size", "5", "--static-cache")
    out = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", out)
    with open(out / "records.jsonl", "wb") as f:   # lose the padded last batch and one more
        f.write(b"".join(whole.splitlines(keepends=True)[:7]))
    del info["wall_time_s"]                          # killed before it finished
    (out / "run.json").write_text(json.dumps(info))
    again, info2 = _run(peaky_ckpt, out, "--static-cache")
    assert again == whole and info2["batch_size"] == 5


@pytest.mark.slow  # two whole runs: the slow tier
def test_a_failing_static_cache_falls_back_to_eager_once(peaky_ckpt, tmp_path, monkeypatch, capsys):
    import confidence_trap.models.vlm as sweep  # VLM.generate calls this module's generate

    eager, _ = _run(peaky_ckpt, tmp_path / "eager", "--batch-size", "4")
    real, failed = sweep.generate, []

    def compile_fails(model, processor, pixels, prompts, *a, **k):
        if model.generation_config.cache_implementation == "static":
            failed.append(1)
            raise RuntimeError("BackendCompilerFailed: backend='inductor' raised:\nCompilationError: ...")
        return real(model, processor, pixels, prompts, *a, **k)

    monkeypatch.setattr(sweep, "generate", compile_fails)
    capsys.readouterr()
    records, info = _run(peaky_ckpt, tmp_path / "fell", "--batch-size", "4", "--static-cache")
    assert records == eager and len(failed) == 1          # the failed batch was redone eagerly
    assert json.loads((tmp_path / "eager" / "run.json").read_text())["decode"]["deterministic"] is False
    assert info["decode"]["path"] == "eager" and "BackendCompilerFailed" in info["decode"]["fallback"]
    notices = [line for line in capsys.readouterr().err.splitlines() if "decoding eagerly" in line]
    assert len(notices) == 1 and "BackendCompilerFailed" in notices[0]


def test_deterministic_is_recorded_and_restored(tiny_ckpt, tmp_path):
    _, info = _run(tiny_ckpt, tmp_path / "a", "--deterministic", "--batch-size", "4")
    d = info["decode"]
    assert d["deterministic"] is True and d["attention"] == "eager" and d["path"] == "eager"
    assert d["settings"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and info["config"]["deterministic"] is True
    assert not torch.are_deterministic_algorithms_enabled()        # the process is left as it was


def test_static_cache_with_no_compile_or_deterministic_is_refused(tiny_ckpt, tmp_path, capsys):
    from confidence_trap.cli import main

    for flag in ("--no-compile", "--deterministic"):
        assert main(["--model", tiny_ckpt, "--static-cache", flag, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and flag in err[0]
    assert not (tmp_path / "x").exists()


def test_a_finished_run_asked_again_loads_no_weights(tiny_ckpt, tmp_path, monkeypatch, capsys):
    import confidence_trap.models as models
    import transformers

    out = tmp_path / "run"
    records, info = _run(tiny_ckpt, out)
    (out / "summary.json").unlink()

    def no_load(*a, **k):
        raise AssertionError("weights were read")

    monkeypatch.setattr(models, "load", no_load)
    monkeypatch.setattr(transformers.AutoModelForImageTextToText, "from_pretrained", no_load)
    capsys.readouterr()
    again, info2 = _run(tiny_ckpt, out)
    assert again == records and info2 == info and (out / "summary.json").exists()
    assert "no weights loaded" in capsys.readouterr().err
    # an unfinished run with every record still loads: run.json must be written at its end
    del info["wall_time_s"]
    (out / "run.json").write_text(json.dumps(info))
    with pytest.raises(AssertionError, match="weights were read"):
        _run(tiny_ckpt, out)
