"""Each attack through `experiments/entropy_analysis.py` on a tiny random Llava, on CPU: a natural
corruption sweep (records carry severity, not ε) and true-gradient PGD; and the YAML presets."""
import argparse
import json
import os

import pytest

from confidence_trap.runner.config import Config, add_arguments, build_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENE = os.path.join(REPO, "data", "scenes", "scene_000.png")


def preset(path, *flags):
    p = argparse.ArgumentParser()
    add_arguments(p)
    return build_config(p.parse_args(["--config", os.path.join(REPO, path), *flags]))[0]


def test_the_study_and_small_eps_presets_load():
    study = preset("configs/study.yaml")
    assert (study.model, study.epsilons, study.trials, study.attack) == ("llava-1.5-7b", [0.1, 0.2, 0.3, 0.5], 5, ["proxy"])
    small = preset("configs/small_eps.yaml")
    assert small.epsilons == pytest.approx([1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255])
    assert (small.model, small.trials, small.attack) == (study.model, study.trials, study.attack)
    assert small.out != Config().out  # its own folder: never mixed with the study's records
    pgd = preset("configs/small_eps.yaml", "--attack", "pgd", "--objective", "ce")
    assert (pgd.attack, pgd.objective, pgd.epsilons) == (["pgd"], "ce", small.epsilons)


@pytest.mark.slow  # two whole runs through the CLI: the slow tier
def test_corruption_and_pgd_sweeps_run_end_to_end(tiny_ckpt, tmp_path):
    from confidence_trap.cli import main

    common = ["--model", tiny_ckpt, "--images", SCENE, "--prompt", "Describe the image.", "--trials", "1",
              "--max-new-tokens", "4", "--device", "cpu"]
    assert main(common + ["--attack", "pgd", "--objective", "entropy_max", "--epsilons", "4/255", "0.1",
                          "--steps", "3", "--out", str(tmp_path / "pgd")]) == 0
    assert main(common + ["--attack", "corruption:gaussian_noise", "--severities", "1", "3",
                          "--out", str(tmp_path / "corruption")]) == 0

    records = [json.loads(line) for line in open(tmp_path / "pgd" / "records.jsonl")]
    assert [(r["attack"], r["epsilon"]) for r in records] == [
        ("none", 0.0), ("blank", 0.0), ("pgd:entropy_max", pytest.approx(4 / 255)), ("pgd:entropy_max", 0.1),
        ("repeat", 0.0)]
    assert all("severity" not in r and len(r["answer_ids"]) == r["n_tokens"] for r in records)
    assert json.load(open(tmp_path / "pgd" / "run.json"))["config"]["objective"] == "entropy_max"

    # every generation is recorded before the analysis step, so check the records first
    records = [json.loads(line) for line in open(tmp_path / "corruption" / "records.jsonl")]
    assert [(r["attack"], r["epsilon"], r.get("severity")) for r in records] == [
        ("none", 0.0, None), ("blank", 0.0, None), ("corruption:gaussian_noise", None, 1),
        ("corruption:gaussian_noise", None, 3), ("repeat", 0.0, None)]
    assert all(isinstance(r["severity"], int) for r in records[2:4])
    assert all(r["mean_entropy"] is not None and r["n_tokens"] >= 1 for r in records)
    assert json.load(open(tmp_path / "corruption" / "run.json"))["config"]["severities"] == [1, 3]
    summary = json.load(open(tmp_path / "corruption" / "summary.json"))
    block = summary["by_attack"]["corruption:gaussian_noise"]
    assert block["grouped_by"] == "severity" and sorted(block["by_epsilon"]) == ["1", "3"]
    assert block["by_epsilon"]["3"]["n"] == 1


def test_blank_is_a_photo_of_padding_through_the_same_pixel_path():
    """The prior pass's image = what confidence_trap.models.images makes of an image of nothing but the padding
    colour; after CLIP's normalization it is near zero, not zero (Idefics3 drops all-zero images)."""
    import torch
    from PIL import Image

    import attacks
    from confidence_trap.models.images import CLIP_MEAN, to_model_input

    x = torch.rand(2, 3, 24, 24)
    got = attacks.get("blank").apply(x.clone(), [0.0, 0.0], None, {"image_mean": CLIP_MEAN})
    pad = Image.new("RGB", (7, 5), tuple(int(m * 255) for m in CLIP_MEAN))
    assert torch.equal(got[1], to_model_input(pad, 24, CLIP_MEAN))
    normalized = (got - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / 0.27
    assert 0 < float(normalized.abs().max()) < 0.05
    assert torch.equal(attacks.get("repeat").apply(x, [0.0, 0.0], None, {}), x)
    assert "blank" not in attacks.names(perturbations=True) and "blank" in attacks.names()
