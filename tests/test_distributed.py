"""Scale-out: two CPU processes under accelerate write, shard by shard, the very records.jsonl one
process writes, resuming from what an earlier run left behind; the merge and the env parsing."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from confidence_trap.runner import distributed, runs
from confidence_trap.runner.distributed import World

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(REPO, "data", "photos")


def test_world_from_the_launchers_environment(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.world() == World(0, 1, 0)
    assert distributed.device_for(World(), None) is None          # as before: cuda if available
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert distributed.device_for(World(), None) == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    w = distributed.world()
    assert w == World(2, 3, 2) and not w.is_main
    assert [i for i in range(8) if w.owns(i)] == [2, 5]
    assert runs.shard_path("out", w) == os.path.join("out", "records.rank2.jsonl")
    assert runs.shard_path("out", World()) == os.path.join("out", "records.jsonl")


def _rec(image, trial, answer="a"):
    return json.dumps({"image": image, "question": "q", "attack": "proxy" if trial else "none",
                       "epsilon": 0.1 if trial else 0.0, "trial": trial, "answer": answer},
                      ensure_ascii=False)


def test_merge_orders_dedupes_and_copies_bytes(tmp_path):
    keys = [("x", "q", "none", 0.0, None, 0), ("x", "q", "proxy", 0.1, None, 1),
            ("x", "q", "proxy", 0.1, None, 2), ("y", "q", "none", 0.0, None, 0)]
    (tmp_path / "records.jsonl").write_text(_rec("x", 2, "é") + "\n", encoding="utf-8")
    (tmp_path / "records.rank0.jsonl").write_text(_rec("y", 0) + "\n" + _rec("x", 0) + "\n")
    (tmp_path / "records.rank1.jsonl").write_text(_rec("x", 2, "later") + "\n" + _rec("x", 1)
                                                  + "\n" + '{"image": "x", "tor')  # torn tail
    assert runs.merge(str(tmp_path), keys) == 4
    assert (tmp_path / "records.jsonl").read_text(encoding="utf-8").splitlines() == [
        _rec("x", 0), _rec("x", 1), _rec("x", 2, "é"), _rec("y", 0)]
    assert runs.shard_paths(str(tmp_path)) == []


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launcher():
    """accelerate launch, running torchrun's processes on the CPU; torchrun where it is missing."""
    try:
        import accelerate  # noqa: F401

        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port())]
    except ImportError:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(_free_port())]


ARGS = ["--images", os.path.join(PHOTOS, "chelsea.jpg"), os.path.join(PHOTOS, "coffee.jpg"),
        "--epsilons", "0.2", "--trials", "2",
        "--max-new-tokens", "3", "--batch-size", "2", "--device", "cpu"]


@pytest.mark.slow
def test_two_processes_write_the_records_one_process_writes(tiny_ckpt, tmp_path):
    from confidence_trap.cli import main

    one = tmp_path / "one"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each launched process: CPU matmuls round by thread count
    try:
        assert main(["--model", tiny_ckpt, "--out", str(one), *ARGS]) == 0
    finally:
        torch.set_num_threads(threads)
    expected = (one / "records.jsonl").read_bytes()
    lines = expected.splitlines(keepends=True)
    assert len(lines) == 10  # 2 images × (clean, blank, 2 trials, repeat): batches 0, 2, 4 to rank 0

    # An interrupted two-process run: records.jsonl from before, and rank 1's shard cut mid-line.
    two = tmp_path / "two"
    two.mkdir()
    (two / "records.jsonl").write_bytes(lines[0])
    (two / "records.rank1.jsonl").write_bytes(lines[2] + lines[3][:20])
    run_json = json.loads((one / "run.json").read_text())
    run_json["config"]["out"] = str(two)
    (two / "run.json").write_text(json.dumps(run_json))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO, HF_HUB_OFFLINE="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    r = subprocess.run(_launcher() + [os.path.join(REPO, "experiments", "entropy_analysis.py"),
                                      "--model", tiny_ckpt, "--out", str(two), *ARGS],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (two / "records.jsonl").read_bytes() == expected
    assert not list(two.glob("records.rank*"))
    info = json.loads((two / "run.json").read_text())
    assert info["processes"] == 2 and info["batch_size"] == 2
    assert (two / "summary.json").exists() and (two / "entropy_report.txt").exists()
