"""The benchmark: runs on a tiny checkpoint and on a random-weight build of a config, writes its
JSON with both throughputs; the 7B config has LLaVA-1.5-7B's shapes; the bandwidth table."""
import json
import os

import pytest
import torch

from confidence_trap.runner.benchmark import main, table_bandwidth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_7B = os.path.join(REPO, "configs", "llava-1.5-7b.json")


def test_7b_config_has_llava_1_5_7b_shapes():
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    with open(CONFIG_7B) as f:
        config = LlavaConfig.from_dict(json.load(f))
    assert (config.image_token_id, config.pad_token_id, config.text_config.vocab_size) == (32000, 32001, 32064)
    assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-2, "default")
    with torch.device("meta"):
        model = LlavaForConditionalGeneration._from_config(config, dtype=torch.float16)
    n = sum(p.numel() for p in model.parameters())
    assert n == pytest.approx(7.063e9, rel=1e-3)  # LLAVA_NOTES: 6.739 B + 0.304 B + 0.021 B
    assert sum(p.numel() for p in model.model.multi_modal_projector.parameters()) == pytest.approx(0.021e9, rel=0.01)
    assert (config.vision_config.image_size // config.vision_config.patch_size) ** 2 == 576


@pytest.mark.parametrize("name, gbs", [("Tesla T4", 320), ("NVIDIA L4", 300), ("NVIDIA L40S", None),
                                       ("NVIDIA A100-SXM4-80GB", 2039), ("NVIDIA A100-PCIE-40GB", 1555),
                                       ("NVIDIA H100 80GB HBM3", 3350), ("NVIDIA H200", 4800)])
def test_bandwidth_table(name, gbs):
    assert table_bandwidth(name) == gbs


def _check(result, units):
    one, many = result["one_at_a_time"], result["batched"]
    assert one["batch_size"] == 1 and many["batch_size"] >= 1
    assert one["samples_per_s"] > 0 and many["samples_per_s"] > 0
    assert result["speedup"] == pytest.approx(many["samples_per_s"] / one["samples_per_s"], rel=0.02)
    assert result["work"]["units"] == units == result["agreement"]["of"]
    assert result["hardware"]["cpu"] and result["hardware"]["cores"] >= 1
    assert "CPU" in result["hardware"]["device_name"]
    ms = result["decode_step"]["ms_batch_1"]  # null when the machine's noise drowns the difference
    assert (ms is None or ms > 0) and result["decode_step"]["floor_ms"] > 0


@pytest.mark.slow
def test_benchmark_on_a_tiny_checkpoint_writes_both_throughputs(peaky_ckpt, tmp_path, capsys, monkeypatch):
    import confidence_trap.models.vlm as sweep  # VLM.generate calls this module's generate

    caches, real = [], sweep.generate

    def spy(model, *a, **k):
        caches.append(model.generation_config.cache_implementation)
        return real(model, *a, **k)

    monkeypatch.setattr(sweep, "generate", spy)
    out = tmp_path / "bench.json"
    assert main(["--model", peaky_ckpt, "--device", "cpu", "--units", "7", "--max-new-tokens", "3",
                 "--trials", "1", "--batch-size", "4", "--static-cache", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    _check(result, 7)
    # the baselines (2 warm-up calls, 7 one at a time, 2 batches) and their decode-step timing
    # never see the static cache; from the static pass on, every call does
    first = caches.index("static")
    assert first >= 11 and set(caches[:first]) == {None} and set(caches[first:]) == {"static"}
    assert result["agreement"]["same_answers"] == 7
    static = result["static_cache"]
    assert static["samples_per_s"] > 0 and static["compiled"] is False and static["path"] == "static"
    agree = static["agreement_with_eager"]
    assert agree["same_answers"] == 7 and agree["agree"] and agree["max_token_entropy_diff"] < 1e-4
    printed = capsys.readouterr().out
    assert "samples/s" in printed and "speedup" in printed and "near-ties 0" in printed


@pytest.mark.slow
def test_benchmark_builds_random_weights_from_a_config(tmp_path):
    with open(CONFIG_7B) as f:
        small = json.load(f)
    # LLaVA-1.5's geometry and vocabulary (the stand-in is llava-hf's own processor), small widths
    small["vision_config"].update(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                  num_attention_heads=2)
    small["text_config"].update(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2)
    (tmp_path / "small.json").write_text(json.dumps(small))
    out = tmp_path / "bench.json"
    assert main(["--random-weights", str(tmp_path / "small.json"), "--device", "cpu", "--units", "4",
                 "--max-new-tokens", "3", "--trials", "1", "--images",
                 os.path.join(REPO, "data", "photos", "rocket.jpg"), "--batch-size", "2",
                 "--max-memory", "64GiB", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    _check(result, 4)
    assert result["model"]["random_weights"] and result["work"]["prompt_format"] == "llava_v1"
    assert result["work"]["prompt_tokens"] > 576  # the image's 576 tokens and the real tokenizer's text
    assert result["budget"]["batch_size"] >= 1 and result["budget"]["peak_memory_gib"] > 0


def test_agreement_counts_near_ties_apart_from_real_differences():
    from confidence_trap.runner.agreement import ENTROPY_TOL, agreement, first_difference

    assert first_difference([1, 2, 3], [1, 2, 3]) is None and first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) == 2

    def rec(ids, ents):
        return {"answer_ids": ids, "token_entropies": ents, "mean_entropy": sum(ents) / len(ents)}

    ref = [rec([1, 2, 3], [0.5, 0.4, 0.3]), rec([4, 5], [1.0, 0.9]), rec([6, 7], [2.0, 1.0])]
    other = [rec([1, 2, 3], [0.5, 0.4, 0.3 + ENTROPY_TOL / 2]), rec([4, 8], [1.0, 0.9]), rec([6, 9], [2.0, 3.0])]
    a = agreement(ref, other, [None, 0.01, 0.9])
    assert (a["same_answers"], a["near_ties"], a["other_differences"], a["agree"]) == (1, 1, 1, False)
    assert a["max_token_entropy_diff"] == pytest.approx(2.0)   # compared up to the first difference
    a = agreement(ref[:2], other[:2], [None, 0.01])
    assert a["agree"] and a["max_token_entropy_diff"] == pytest.approx(ENTROPY_TOL / 2)
    assert not agreement(ref[:2], other[:2], None)["agree"]   # without the gaps a difference is a difference


def test_tie_gaps_teacher_force_the_step_where_answers_part(tiny_ckpt):
    from confidence_trap.runner import pipeline
    from confidence_trap.runner.agreement import tie_gaps
    from confidence_trap.runner.config import Config

    cfg = Config(model=tiny_ckpt, device="cpu", images=[os.path.join(REPO, "data", "photos", "coffee.jpg")],
                 epsilons=[0.3], trials=1, max_new_tokens=4)
    sweep = pipeline.prepare(pipeline.plan(cfg, check_out=False))
    units = pipeline.make_units(cfg, sweep.items)
    ref = pipeline.run_batch(sweep, units)
    other = [dict(r, answer_ids=list(r["answer_ids"])) for r in ref]
    t = 1
    out = sweep.vlm.generate(sweep.images.pixels([0]), [sweep.prompts[0]], 4)
    step = out.logits[0, t]
    runner_up = int(step.topk(2).indices[1])
    other[0]["answer_ids"][t] = runner_up
    gaps = tie_gaps(sweep, units, ref, other)
    assert gaps[1:] == [None] * (len(units) - 1)
    assert gaps[0] == pytest.approx(float(step.max() - step[runner_up]), abs=1e-4)
