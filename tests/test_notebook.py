"""The Colab notebook, executed headless on the CPU with tiny models (nbclient, kernel "python3").

    python -m pytest tests/test_notebook.py -q

The parameters cell (the first code cell, tagged "parameters") gets overrides appended, as
papermill would inject them; the kernel starts in the repository root, so the notebook finds the
project there and neither clones nor installs anything. ipykernel ships the "python3" kernel spec
in its wheel (share/jupyter/kernels/python3), so `pip install -r requirements-dev.txt` is enough.
"""
import json
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from confidence_trap.analysis.figures import FIGURE_NAMES as FIGURES
from confidence_trap.runner.runs import read_records, record_key

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "vlm_failure_modes.ipynb")


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def with_parameters(nb, **params):
    cell = first_code_cell(nb)
    cell.source += "\n\n# injected by tests/test_notebook.py\n" + "".join(
        f"{k} = {v!r}\n" for k, v in params.items())
    return nb


def execute(nb):
    NotebookClient(nb, kernel_name="python3", timeout=300, startup_timeout=120,
                   resources={"metadata": {"path": REPO}}).execute()
    return nb


def text_of(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                out.append(o.text)
            elif "data" in o and "text/plain" in o.data:
                out.append(o.data["text/plain"])
    return "".join(out).replace("\r\n", "\n")


def outputs_of(nb, cell_id):
    return next(c for c in nb.cells if c.get("id") == cell_id).outputs


def check_run(nb, out, n_records, original=True):
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    text = text_of(nb)
    assert "already here, nothing cloned" in text and "nothing installed" in text
    records = read_records(os.path.join(out, "records.jsonl"))
    assert len(records) == n_records
    assert len({record_key(r) for r in records}) == n_records  # no unit generated twice
    with open(os.path.join(out, "entropy_report.txt"), encoding="utf-8") as f:
        report = f.read()
    assert report.strip() and report.strip() in text  # the report is shown in full
    for name in FIGURES:
        assert os.path.exists(os.path.join(out, "figures", name))
    pngs = [o for o in outputs_of(nb, "figures") if "image/png" in o.get("data", {})]
    assert len(pngs) == len(FIGURES)
    table = [o for o in outputs_of(nb, "table") if "text/html" in o.get("data", {})]
    assert len(table) == 1 and "mean Δ" in table[0].data["text/html"]
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        run = json.load(f)
    assert run["device"] == "cpu" and f"This run: {run['model']}" in text
    assert f"{n_records} generations in {out}" in text
    # the original protocol ran first: our clean prompt entropy beside theirs, then its parts
    if original:
        assert "the original's: 4.8681 nats, theirs" in text and "clamp alone (σ = 0)" in text
    else:
        assert "the original protocol skipped" in text
    return text


def test_notebook_is_clean_and_parameterised():
    nb = read_notebook()
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and "Colab" in nb.cells[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.id
    params = first_code_cell(nb)
    assert "parameters" in params.metadata.get("tags", [])
    values = {}
    exec(params.source, {}, values)
    assert values["MODEL"] == "llava-1.5-7b" and values["EPSILONS"] == [0.1, 0.3]
    assert values["TRIALS"] == 5 and values["IMAGES"] is None and values["MAX_NEW_TOKENS"] == 128
    assert values["TASK"] is None and values["DATASET"] is None and values["LIMIT"] is None
    assert values["USE_DRIVE"] is False and values["PROJECT_DIR"] is None and values["SANITY_CHECK"]
    assert values["ORIGINAL"] is True and {"OUT", "ORIGINAL_OUT", "REPO_URL"} <= set(values)


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch):
    """The kernel and the scripts it starts inherit this: CPU even on a machine with a GPU."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.mark.slow
def test_notebook_runs_and_resumes(tiny_ckpt, tmp_path):
    out = str(tmp_path / "run")
    params = dict(MODEL=tiny_ckpt, EPSILONS=[0.1, 0.3], TRIALS=1, MAX_NEW_TOKENS=3,
                  IMAGES=["data/photos/astronaut.jpg", "data/photos/coffee.jpg"], OUT=out,
                  ORIGINAL_OUT=str(tmp_path / "original"))
    n_records = 2 * (1 + 1 + 2 * 1 + 1)  # per image: clean, blank, 2 ε × 1 trial, repeat
    first = execute(with_parameters(read_notebook(), **params))
    assert "answer:" in check_run(first, out, n_records)  # the sanity check ran
    with open(os.path.join(out, "records.jsonl"), "rb") as f:
        before = f.read()

    # Run all again, as after a disconnect (skipping the sanity check keeps the test short).
    second = execute(with_parameters(read_notebook(), **params, SANITY_CHECK=False))
    assert "sanity check skipped" in check_run(second, out, n_records)
    with open(os.path.join(out, "records.jsonl"), "rb") as f:
        assert f.read() == before  # resumed: nothing generated again, nothing appended


@pytest.mark.slow
def test_notebook_runs_embedded_model(tmp_path):
    out = str(tmp_path / "run")
    nb = execute(with_parameters(
        read_notebook(), MODEL="tiny", EPSILONS=[0.1, 0.3], TRIALS=1, MAX_NEW_TOKENS=3,
        IMAGES=["data/scenes/scene_000.png"], OUT=out, ORIGINAL_OUT=str(tmp_path / "original")))
    assert "answer:" in check_run(nb, out, 1 + 1 + 2 * 1 + 1)  # clean, blank, 2 ε, repeat


@pytest.mark.slow
def test_notebook_runs_a_benchmark_task(tmp_path):
    """TASK, DATASET and LIMIT: a local POPE-layout dataset (drawn scenes), a stratified subset."""
    from confidence_trap.tasks.scene_datasets import build_pope

    out, data = str(tmp_path / "run"), build_pope(tmp_path / "pope", 9)
    nb = execute(with_parameters(read_notebook(), MODEL="tiny", EPSILONS=[0.3], TRIALS=1, MAX_NEW_TOKENS=3,
                                 TASK="configs/tasks/pope.yaml", DATASET=data, LIMIT=6, OUT=out,
                                 ORIGINAL=False))
    check_run(nb, out, 6 * 4, original=False)  # clean, blank, one ε, repeat
    with open(os.path.join(out, "records.jsonl"), encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    assert {r["category"] for r in recs} == {"adversarial", "popular", "random"}
    assert all(r["dataset"] and r["metric"] == "pope" for r in recs)


def test_first_line_says_what_to_set_before_run_all():
    """A Colab user reads, above everything, the one thing to set: REPO_URL, whose placeholder is
    the one the parameters cell holds and the setup cell refuses to clone."""
    nb = read_notebook()
    first = nb.cells[0].source.splitlines()[0]
    assert nb.cells[0].cell_type == "markdown" and "Run all" in first and "`REPO_URL`" in first
    placeholder = re.search(r"`(<\w+>)`", first)[1]
    params = first_code_cell(nb).source
    assert re.search(rf'^REPO_URL = ".*{placeholder}.*"', params, re.M)
    assert any(f'"{placeholder}" in REPO_URL' in c.source for c in nb.cells if c.cell_type == "code")


def install_block(nb) -> str:
    """The setup cell's lines that decide whether to install the project itself."""
    setup = next(c for c in nb.cells if c.get("id") == "setup").source
    return setup[setup.index("def installed_from"):setup.index("if USE_DRIVE and ON_COLAB:")]


@pytest.mark.parametrize("where, on_colab, installs, said", [
    ("here", False, False, "this project is installed from"),
    ("other", False, False, "installed from another checkout"),
    ("other", True, True, "installing this project"),
    (None, False, True, "installing this project"),
    (None, True, True, "installing this project"),
])
def test_setup_never_repoints_a_working_install(where, on_colab, installs, said, tmp_path, monkeypatch, capsys):
    """Locally, an install from this checkout is left alone and so is one from another checkout
    (the scripts then import this one through PYTHONPATH); pip runs only where the package is not
    importable, or on Colab. The cell's own code, with the child process and pip stubbed."""
    import subprocess as real
    import sys
    import tempfile
    import types

    project, other = tmp_path / "project", tmp_path / "other"
    project.mkdir(), other.mkdir()
    found = {"here": str(project), "other": str(other), None: ""}[where]
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return real.CompletedProcess(cmd, 0, stdout=found + "\n" if "-c" in cmd else "", stderr="")

    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    names = dict(os=os, sys=sys, tempfile=tempfile, subprocess=types.SimpleNamespace(run=run),
                 PROJECT_DIR=str(project), ON_COLAB=on_colab)
    exec(install_block(read_notebook()), names)
    pip = [c for c in calls if "pip" in c]
    assert bool(pip) == installs and said in capsys.readouterr().out
    if where == "other" and not on_colab:
        assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(project), "/elsewhere"]
