"""scripts/gpu_checks.sh --dry-run: every step of the GPU script on CPU at tiny widths, exit 0,
each JSON file written without a failure in it; and its report on a run that got nowhere."""
import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ("gpu_memory.json", "gpu_memory_fp16_vision.json", "gpu_throughput.json", "gpu_study.json",
         "gpu_determinism.json", "gpu_checks.json")


def errors(data, where=""):
    """Every {"error": ...} or {"skipped": ...} left in a JSON tree, with where it is."""
    if isinstance(data, dict):
        found = [f"{where}: {data[k]}" for k in ("error", "skipped") if k in data]
        return found + [e for k, v in data.items() for e in errors(v, f"{where}/{k}")]
    if isinstance(data, list):
        return [e for i, v in enumerate(data) for e in errors(v, f"{where}/{i}")]
    return []


def test_the_report_of_a_run_that_got_nowhere_still_writes_and_says_so(tmp_path, capsys):
    from scripts.gpu_report import main

    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "steps.tsv").write_text("cache\t1\t3.5\t\nstudy\t124\t150.0\ttimed out after 150 s\n")
    assert main([str(tmp_path / "work"), str(tmp_path / "out")]) == 0
    checks = json.loads((tmp_path / "out" / "gpu_checks.json").read_text())
    assert checks["failed"] == ["cache", "study"] and checks["steps"][1]["note"].startswith("timed out")
    assert json.loads((tmp_path / "out" / "gpu_determinism.json").read_text())["deterministic"]["identical"] is False
    printed = capsys.readouterr().out
    assert "step study: rc 124" in printed and "samples/s" in printed


@pytest.mark.slow  # about two minutes: five CLI processes and the in-process measurements
def test_the_dry_run_runs_every_step_on_cpu(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, GPU_CHECKS_WORK=str(tmp_path / "work"))
    r = subprocess.run(["bash", os.path.join(REPO, "scripts", "gpu_checks.sh"), "--dry-run", str(out)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = {n: json.loads((out / n).read_text()) for n in FILES}
    steps = [s["name"] for s in data["gpu_checks.json"]["steps"]]
    assert steps == ["cache", "study", "resume", "original", "determinism", "measure"]
    assert data["gpu_checks.json"]["failed"] == []
    assert not [e for n in FILES for e in errors(data[n], n)]
    t = data["gpu_throughput.json"]
    assert t["model"]["prompt_format"] == "llava_v1" and t["model"]["scored_vocab_size"] == 32000
    assert t["model"]["checkpoint"].startswith("LLaVA-1.5")   # told by its files in the hub cache
    assert t["compiled"]["4"]["agreement_with_eager"]["agree"] and t["eager"]["4"]["repeat_identical"]
    study = data["gpu_study.json"]
    assert study["decode"]["path"] == "eager" and study["samples_per_s"] > 0
    assert study["resume_loaded_no_weights"] is True
    det = data["gpu_determinism.json"]
    assert det["deterministic"]["identical"] and det["deterministic"]["decode"]["deterministic"]
    assert "two identical runs, deterministic: byte-identical True" in r.stdout
    # the study's own protocol on the 7B's geometry: 11 ids, the image expanded to 576 features
    o = data["gpu_checks.json"]["original"]
    assert (o["n_positions"], o["n_image_positions"], o["records"]) == (586, 576, 5)  # clean, noise, clamp, noise alone, repeat
    assert set(o["clamp_delta"]) == {"prompt_entropy", "prompt_entropy_image", "prompt_entropy_text", "prompt_entropy_last"}
