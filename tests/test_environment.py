"""The first hour on a new machine: sanity_check.py's checks and verdict, a broken torchvision that
neither breaks a run nor leaves a folder behind, no abbreviated flags, YAML errors with their line,
and a quick start that leaves the clone as it found it.

    python -m pytest tests/test_environment.py -q            # the fast tier
    python -m pytest tests/test_environment.py -q -m slow    # real processes, a fake torchvision, a clone

The broken torchvision is a package of that name on PYTHONPATH whose import raises what a build
for another torch raises (`RuntimeError: operator torchvision::nms does not exist`).
"""
from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from confidence_trap.errors import InputError
from confidence_trap.runner import environment
from confidence_trap.runner.sanity import main as sanity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NMS = "operator torchvision::nms does not exist"
CHECK_LINES = ("torch:", "transformers:", "torchvision:", "CUDA:", "TeX:", "hub cache:", "model:", "class:",
               "answer:", "entropy:", "verdict:")


@pytest.fixture
def broken_torchvision(tmp_path):
    """A folder to put on PYTHONPATH: `import torchvision` raises as a mismatched build does."""
    folder = tmp_path / "broken"
    (folder / "torchvision").mkdir(parents=True)
    (folder / "torchvision" / "__init__.py").write_text(f"raise RuntimeError({NMS!r})\n")
    return str(folder)


def env_with(path: str) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, path]), HF_HUB_OFFLINE="1",
                CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")


# --- sanity_check.py -------------------------------------------------------------------------

def test_sanity_check_on_tiny_prints_every_check_and_a_healthy_verdict(capsys):
    code = sanity(["--model", "tiny", "--device", "cpu", "--max-new-tokens", "3"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert code == 0, out
    for head in CHECK_LINES:
        assert sum(line.startswith(head) for line in lines) == 1, head
    verdict = next(line for line in lines if line.startswith("verdict:"))
    assert "healthy" in verdict and "PROBLEM" not in out


def test_sanity_check_states_the_originals_clean_entropy_for_llava_1_5(tmp_path, monkeypatch, capsys):
    """Offline with an empty cache the model cannot run here (exit 1, with the fix), and the line
    gives the original's own number for its own input, as theirs, and the command to measure it."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = sanity(["--model", "llava-1.5-7b", "--device", "cpu"])
    out = capsys.readouterr().out
    with open(os.path.join(REPO, "paper", "original_study.json"), encoding="utf-8") as f:
        theirs = json.load(f)["code"]
    original = next(line for line in out.splitlines() if line.startswith("original:"))
    assert f"{theirs['clean']:.4f} nats" in original and "theirs, not measured here" in original
    assert "data/original/llava_logo.png" in original and "'Describe this image in detail.'" in original
    assert "without a chat template" in original and "teacher-forced" in original
    assert original.endswith("python experiments/entropy_analysis.py --config configs/original.yaml")
    assert code == 1 and "hf download llava-hf/llava-1.5-7b-hf" in out and "not loaded" in out


def test_sanity_check_says_nothing_of_the_original_for_other_models(capsys):
    sanity(["--model", "tiny", "--device", "cpu", "--max-new-tokens", "1"])
    assert "original:" not in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--model", "llava-9"], "unknown model 'llava-9'"),
    (["--model", "tiny", "--max-new", "3"], "unrecognized arguments: --max-new 3"),
    (["--model", "tiny", "--dtype", "float8"], "unknown dtype 'float8'"),
    (["--model", "tiny", "--image", "missing.png"], "missing.png"),
])
def test_sanity_check_bad_input_is_one_line_and_exit_2(argv, words, capsys):
    code = sanity(argv)
    got = capsys.readouterr()
    assert code == 2 and got.out == "" and len(got.err.splitlines()) == 1 and words in got.err, got


def test_missing_tex_is_a_warning_with_its_fix_not_a_failure(monkeypatch, capsys):
    from confidence_trap.runner.sanity import verdict

    monkeypatch.setattr(environment.shutil, "which", lambda name: None)
    tex = environment.tex()
    assert tex.status == "warning" and "pdflatex" in tex.text and "apt-get install" in tex.fix
    assert verdict([environment.Check("torch", "ok", "2"), tex]) == 0
    assert f"fix TeX: {tex.fix}" in capsys.readouterr().out
    assert verdict([tex, environment.Check("model", "problem", "cannot load")]) == 1


def test_the_cuda_line_gives_the_gpu_and_its_memory(monkeypatch):
    """No GPU here: torch.cuda answers as on a Colab T4 (its sizes in bytes)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (14 * 2**30, 15 * 2**30))
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    check = environment.cuda("cuda")
    assert check.status == "ok" and check.text == ("CUDA 12.4, 1 GPU(s); cuda:0 Tesla T4, 15.0 GiB, "
                                                   "14.0 GiB free")


def test_the_torchvision_probe_names_a_broken_one(broken_torchvision, monkeypatch):
    """In a child process: the import that raises is reported, not raised."""
    monkeypatch.setenv("PYTHONPATH", broken_torchvision)
    assert environment.probe_torchvision() == ("broken", f"RuntimeError: {NMS}")
    check = environment.torchvision_check(("broken", f"RuntimeError: {NMS}"), None)
    assert check.status == "warning" and "pip uninstall torchvision" in check.fix
    needed = environment.torchvision_check(("broken", f"RuntimeError: {NMS}"), "Qwen2-VL")
    assert needed.status == "problem" and "Qwen2-VL" in needed.text and "torchvision" in needed.fix


# --- every command ----------------------------------------------------------------------------

def parser_calls():
    """(file, line, keywords) of every argparse.ArgumentParser(...) outside the tests."""
    for path in glob.glob(os.path.join(REPO, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, REPO)
        if rel.startswith(("tests", ".")):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "ArgumentParser", "add_parser"):
                yield rel, node.lineno, {k.arg: k.value for k in node.keywords}


def test_no_command_takes_an_abbreviated_flag():
    """`--epsilon 0.1` would otherwise be read silently as `--epsilons 0.1`."""
    calls = list(parser_calls())
    assert len(calls) >= 10
    for rel, line, keywords in calls:
        value = keywords.get("allow_abbrev")
        assert isinstance(value, ast.Constant) and value.value is False, f"{rel}:{line}"


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    from confidence_trap.runner.config import load_yaml

    path = tmp_path / "broken.yaml"
    path.write_text("trials: 2\nepsilons: [0.1, 0.3\nseed: 1\n")
    with pytest.raises(InputError) as e:
        load_yaml(str(path))
    said = str(e.value)
    assert str(path) in said and "line 3, column 5" in said and "from line 2" in said and "\n" not in said


# --- real processes -----------------------------------------------------------------------------

def analysis(out, *extra) -> list[str]:
    return [sys.executable, os.path.join(REPO, "experiments", "entropy_analysis.py"), "--model", "tiny",
            "--images", "data/scenes/scene_000.png", "--epsilons", "0.1", "--trials", "1",
            "--max-new-tokens", "4", "--out", str(out), *extra]


@pytest.mark.slow
def test_a_broken_torchvision_breaks_no_run(broken_torchvision, tmp_path):
    """The run works without it and says so in one line; the sanity check calls it a warning."""
    out = tmp_path / "run"
    r = subprocess.run(analysis(out), cwd=REPO, env=env_with(broken_torchvision), capture_output=True,
                       text=True, timeout=300)
    assert "Traceback" not in r.stderr
    if r.returncode == 0:
        assert len((out / "records.jsonl").read_text().splitlines()) == 4  # clean, blank, ε 0.1, repeat
        said = [line for line in r.stderr.splitlines() if NMS in line]
        assert len(said) == 1 and said[0].startswith("warning: torchvision") and "pip uninstall torchvision" in said[0]
    else:  # the other way the issue allows: one line that names torchvision, and no folder
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "torchvision" in r.stderr
        assert not out.exists()
    r = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "sanity_check.py"), "--model", "tiny",
                        "--max-new-tokens", "2"], cwd=REPO, env=env_with(broken_torchvision),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("torchvision:"))
    assert "warning" in line and NMS in line and "fix torchvision: `pip uninstall torchvision`" in r.stdout


@pytest.mark.slow
def test_qwen2_vl_without_a_working_torchvision_is_one_line_and_no_folder(broken_torchvision, tmp_path):
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    out = tmp_path / "run"
    argv = analysis(out)
    argv[argv.index("tiny")] = str(folder)
    r = subprocess.run(argv, cwd=REPO, env=env_with(broken_torchvision), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "Qwen2-VL's processor needs torchvision" in r.stderr and NMS in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_model_that_fails_to_load_leaves_no_folder(tmp_path):
    """--out is made once the model has loaded: a failed load leaves nothing behind."""
    folder = tmp_path / "damaged"
    shutil.copytree(os.path.join(REPO, "models", "tiny-llava"), folder)
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    out = tmp_path / "run"
    argv = analysis(out)
    argv[argv.index("tiny")] = str(folder)
    r = subprocess.run(argv, cwd=REPO, env=env_with(""), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and not out.exists(), r.stderr


# Other CPUs, here: OpenBLAS's AVX2 kernels (a CPU without AVX-512, as a Zen 2 EPYC) instead of
# the AVX-512 ones this machine picks, and numpy held to SSE (an old CPU). Before the analysis
# summed its bootstrap resamples elementwise, the first moved the ECE CIs' last digits (issue 28).
OTHER_CPUS = [pytest.param({"OPENBLAS_CORETYPE": "Haswell"}, id="AVX2 BLAS kernels"),
              pytest.param({"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL "
                            "AVX512_ICL AVX512_SPR X86_V4 AVX2 FMA3 F16C AVX X86_V3"}, id="numpy on SSE")]


@pytest.mark.slow
@pytest.mark.parametrize("setting", [pytest.param({}, id="this CPU"), *OTHER_CPUS, pytest.param(
    {"matplotlibrc": "font.family: serif\naxes.grid: True\nlines.linewidth: 3\n"}, id="a user's matplotlibrc")])
def test_the_quick_start_leaves_a_fresh_clone_clean(tmp_path, setting):
    """The README's quick start, run in a fresh clone of this tree (its files as they are now,
    committed), rewrites summary.json, the report and the figures from the committed records:
    `git status --porcelain` stays empty, on this CPU, with another CPU's BLAS kernels, and under
    a user's own matplotlib settings."""
    import re

    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        command = re.search(r"^pip install -e \. && (python experiments/entropy_analysis\.py .*)$", f.read(), re.M)[1]
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if os.path.isfile(os.path.join(REPO, rel)):
            os.makedirs(clone / os.path.dirname(rel), exist_ok=True)
            shutil.copy2(os.path.join(REPO, rel), clone / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "clone"]):
        subprocess.run(git + step, cwd=clone, check=True, capture_output=True)
    env = dict(env_with(""), PYTHONPATH=str(clone), **{k: v for k, v in setting.items() if k != "matplotlibrc"})
    if "matplotlibrc" in setting:
        (tmp_path / "mpl").mkdir()
        (tmp_path / "mpl" / "matplotlibrc").write_text(setting["matplotlibrc"])
        env["MPLCONFIGDIR"] = str(tmp_path / "mpl")
    argv = [sys.executable if w == "python" else w for w in command.split()]
    r = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "nothing to generate" in r.stderr  # the committed run, re-analysed
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == "", status
