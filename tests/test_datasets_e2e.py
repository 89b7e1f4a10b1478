"""Benchmark datasets end to end on the embedded model: a local POPE-layout and a local VQA-layout
dataset (drawn scenes, built here; nothing downloads) through experiments/entropy_analysis.py's
main(): records name their rows, scores and summaries by category equal a recomputation from the
records, --limit subsets are seeded and stratified, a resumed run equals an uninterrupted one, and
bad input is one line, exit 2, nothing written."""
import json
import os

import pytest

from confidence_trap.tasks.scoring import pope_metrics, vqa_accuracy
from confidence_trap.cli import main
from confidence_trap.tasks.scene_datasets import build_pope, build_vqa
from confidence_trap.tasks.datasets import load_task, open_dataset, select_rows

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POPE = os.path.join(REPO, "configs", "tasks", "pope.yaml")
VQA = os.path.join(REPO, "configs", "tasks", "vqav2.yaml")
TINY = ["--model", "tiny", "--epsilons", "0.3", "--trials", "1", "--max-new-tokens", "12"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    return {"pope": build_pope(root / "pope", 24), "vqa": build_vqa(root / "vqa", 12, layout="parquet")}


def records(out) -> list[dict]:
    with open(os.path.join(out, "records.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def summary(out) -> dict:
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def pope_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pope") / "run"
    assert main([*TINY, "--task", POPE, "--dataset", data["pope"], "--limit", "12", "--batch-size", "12",
                 "--out", str(out)]) == 0
    return str(out)


def test_pope_records_name_their_rows_and_are_scored_as_pope_scores(pope_run, data):
    recs = records(pope_run)
    task = load_task(POPE)
    d = open_dataset(data["pope"], None, task)
    chosen = select_rows(d, 12, 0)
    rows = {r.key: r for r in d.rows(chosen)}
    assert {r["image"] for r in recs} == set(rows) and len(recs) == 4 * 12  # clean, blank, one ε, repeat
    for r in recs:
        row = rows[r["image"]]
        assert (r["dataset"], r["split"], r["id"], r["category"]) == (d.dataset, "test", row.id, row.category)
        assert r["question"] == row.question + task.prompt_suffix and r["references"] == list(row.references)
        assert r["correct"] == pope_metrics([r["answer"]], r["references"])["accuracy"]


def test_pope_summary_by_category_equals_a_recomputation(pope_run):
    s, recs = summary(pope_run), records(pope_run)
    clean = [r for r in recs if r["attack"] == "none"]
    want = pope_metrics([r["answer"] for r in clean], [r["references"][0] for r in clean])
    assert s["clean"]["pope"] == want
    cats = sorted({r["category"] for r in recs})
    assert sorted(s["by_category"]) == cats == ["adversarial", "popular", "random"]
    for c in cats:
        sub = [r for r in recs if r["category"] == c]
        got = s["by_category"][c]
        assert got["clean"]["n"] == sum(r["attack"] == "none" for r in sub)
        adv = [r for r in sub if r["attack"] == "proxy"]
        entry = got["by_attack"]["proxy"]["by_epsilon"]["0.3"]
        assert entry["n"] == len(adv)
        assert entry["pope"] == pope_metrics([r["answer"] for r in adv], [r["references"][0] for r in adv])
        assert entry["accuracy_perturbed"] == pytest.approx(sum(r["correct"] for r in adv) / len(adv))


def test_limit_is_a_seeded_stratified_subset(data):
    d = open_dataset(data["pope"], None, load_task(POPE))
    a, b, other = select_rows(d, 12, 0), select_rows(d, 12, 0), select_rows(d, 12, 1)
    assert a == b and a != other
    counts = {c: sum(d.categories[i] == c for i in a) for c in set(d.categories)}
    assert counts == {"adversarial": 4, "popular": 4, "random": 4}


def test_vqa_records_are_scored_by_vqa_accuracy_and_summarised_by_answer_type(data, tmp_path):
    out = tmp_path / "vqa"
    assert main([*TINY, "--task", VQA, "--dataset", data["vqa"], "--out", str(out)]) == 0
    recs, s = records(out), summary(out)
    assert len(recs) == 4 * 12 and all(len(r["references"]) == 10 for r in recs)
    for r in recs:
        assert r["correct"] == pytest.approx(vqa_accuracy(r["answer"], r["references"]))
    clean = [r["correct"] for r in recs if r["attack"] == "none"]
    assert s["clean"]["accuracy"] == pytest.approx(sum(clean) / len(clean))
    assert sorted(s["by_category"]) == sorted({r["category"] for r in recs})


def test_a_resumed_dataset_run_equals_an_uninterrupted_one(pope_run, data, tmp_path, monkeypatch):
    import confidence_trap.runner.pipeline as pipeline

    out = tmp_path / "resumed"
    real, calls = pipeline.run_batch, []

    def once(sweep, units):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(sweep, units)

    monkeypatch.setattr(pipeline, "run_batch", once)
    argv = [*TINY, "--task", POPE, "--dataset", data["pope"], "--limit", "12", "--batch-size", "12",
            "--out", str(out)]
    assert main(argv) == 130
    monkeypatch.setattr(pipeline, "run_batch", real)
    assert 0 < len(records(out)) < 24
    assert main(argv) == 0
    with open(out / "records.jsonl", "rb") as a, open(os.path.join(pope_run, "records.jsonl"), "rb") as b:
        assert a.read() == b.read()


@pytest.mark.parametrize("case, words", [
    ("unknown column", ["has no column 'label'", "its columns: id"]),
    ("empty split", ["is empty"]),
    ("limit too large", ["--limit 99 is larger than"]),
    ("unknown split", ["no split 'val'", "test"]),
    ("hub offline", ["not in the local Hugging Face cache", "--dataset DIR"]),
    ("dataset without a task", ["--dataset needs --task"]),
])
def test_bad_dataset_input_is_one_line_exit_2_nothing_written(data, tmp_path, capsys, monkeypatch, case, words):
    out = tmp_path / "out"
    args = {"--task": POPE, "--dataset": data["pope"]}
    if case == "unknown column":
        bad = tmp_path / "bad.yaml"
        bad.write_text(open(POPE).read().replace("answer: answer", "answer: label"))
        args["--task"] = str(bad)
    elif case == "empty split":
        empty = build_pope(tmp_path / "empty", 3)
        from datasets import load_from_disk

        d = load_from_disk(empty)
        d["test"] = d["test"].select([])
        d.save_to_disk(str(tmp_path / "empty2"))
        args["--dataset"] = str(tmp_path / "empty2")
    elif case == "limit too large":
        args["--limit"] = "99"
    elif case == "unknown split":
        args["--split"] = "val"
    elif case == "hub offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        args["--dataset"] = "lmms-lab/POPE"
    elif case == "dataset without a task":
        del args["--task"]
    argv = [*TINY, *[x for kv in args.items() for x in kv], "--out", str(out)]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert not out.exists()
