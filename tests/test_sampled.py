"""--samples K: K sampled answers (semantic entropy) and K answers under small seeded shifts of the
same input (consistency entropy) per record; deterministic by seed on CPU; summarised like every
other probe."""
import json
import os

import pytest
import torch

from confidence_trap.cli import main
from probes.semantic import cluster_entropy

pytestmark = pytest.mark.slow  # three sampled runs: K answers and K nudged answers per record

ARGV = ["--model", "tiny", "--samples", "3", "--temperature", "1.5", "--epsilons", "0.3", "--trials", "1",
        "--max-new-tokens", "8"]


def records(out) -> list[dict]:
    with open(os.path.join(out, "records.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def scene_manifest(folder, n: int = 4) -> str:
    """n drawn scenes (the embedded model's grammar) with one known-answer question each."""
    import random

    from confidence_trap.tasks.scenes import draw_scene, questions

    rng, entries = random.Random(7), []
    for i in range(n):
        image, shapes = draw_scene(rng, size=96)
        image.save(os.path.join(folder, f"s{i}.png"))
        _, q, a = questions(shapes)[i % 2 * -1]  # count and describe questions, alternately
        entries.append({"file": f"s{i}.png", "question": q, "answers": [a], "match": "exact"})
    path = os.path.join(folder, "manifest.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f)
    return path


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampled")
    images = ["--images", scene_manifest(str(root))]
    outs = [root / "a", root / "b", root / "seed1"]
    assert main([*ARGV, *images, "--out", str(outs[0])]) == 0
    assert main([*ARGV, *images, "--out", str(outs[1])]) == 0
    assert main([*ARGV, *images, "--seed", "1", "--out", str(outs[2])]) == 0
    return outs


def test_a_sampled_run_is_deterministic_by_seed(sampled):
    a, b, other = (open(os.path.join(o, "records.jsonl"), "rb").read() for o in sampled)
    assert a == b
    sa = [r["samples"] for r in records(sampled[0])]
    so = [r["samples"] for r in records(sampled[2])]
    assert sa != so  # another seed samples other answers


def test_records_keep_the_answers_and_their_cluster_entropies(sampled):
    recs = records(sampled[0])
    for r in recs:
        assert len(r["samples"]) == 3 and len(r["perturbed_answers"]) == 3
        assert r["semantic_entropy"] == pytest.approx(cluster_entropy(r["samples"]))
        assert r["consistency_entropy"] == pytest.approx(cluster_entropy(r["perturbed_answers"]))
    assert any(r["semantic_entropy"] > 0 for r in recs)  # at temperature 1.5 some answers differ


def test_sampled_probes_are_summarised_like_the_others(sampled):
    with open(os.path.join(sampled[0], "summary.json"), encoding="utf-8") as f:
        s = json.load(f)
    e = s["by_epsilon"]["0.3"]
    for key in ("semantic_entropy", "consistency_entropy"):
        assert key in s["meta"]["probes"] and s["meta"]["probe_sign"][key] == 1
        assert set(e["probes"][key]) >= {"mean_delta", "ci95", "auroc_detect"}
        assert e["selective"][key]["n"] == e["n_with_references"]
        assert key in s["clean"]["selective"]


def test_the_nudge_is_a_small_whole_pixel_shift():
    from confidence_trap.runner.sources import shift

    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    moved = [shift(x, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(m.shape == x.shape for m in moved)
    assert any(not torch.equal(m, x) for m in moved)
    for m in moved:  # some whole-pixel offset (|dy|, |dx| <= 1 at 48 px) reproduces the interior
        assert any(torch.equal(m[..., 1:-1, 1:-1], x[..., 1 + dy:47 + dy, 1 + dx:47 + dx])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
