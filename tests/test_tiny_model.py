"""The embedded tiny LLaVA (models/tiny-llava): it trains, it loads offline, it sees, it is
small, and it is unsure where its scenes are ambiguous (the testbed the study needs)."""
import json
import os
import random
import subprocess
import sys

import pytest

from confidence_trap.tasks.scenes import QUESTION_TYPES, draw_scene, phrasings, questions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(REPO, "models", "tiny-llava")
TRAIN = os.path.join(FOLDER, "train.py")
# Fresh scenes from seeds used neither in training (train.py's --seed) nor in training.json's
# eval (10001).
TEST_SEED, TEST_SCENES = 4242, 240
AMBIGUOUS_SEED, AMBIGUOUS_SCENES = 4243, 120
# What the exact grammar (the first embedded model's scenes) must still get right, per type.
# ~240-330 questions a type: a binomial standard error of at most 1.4 points at 95%.
EXACT_FLOORS = {"count": 0.95, "color": 0.95, "shape": 0.95, "describe": 0.85}
TINY_SPEC = {"image_size": 32, "vision_hidden": 32, "vision_layers": 2, "vision_heads": 2,
             "text_hidden": 48, "text_layers": 1, "text_heads": 2, "text_intermediate": 96}


def prompt(processor, question):
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(conversation, add_generation_prompt=True)


@pytest.fixture(scope="module")
def tiny_llava():
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    os.environ["HF_HUB_OFFLINE"] = "1"
    processor = AutoProcessor.from_pretrained(FOLDER)
    model = LlavaForConditionalGeneration.from_pretrained(FOLDER).eval()
    return model, processor


@pytest.mark.slow
def test_training_script_lowers_the_loss(tmp_path):
    out = tmp_path / "tiny"
    cmd = [sys.executable, TRAIN, "--out", str(out), "--steps", "60", "--vision-steps", "20",
           "--batch-size", "8", "--pool-scenes", "128", "--eval-scenes", "3", "--log-every", "10",
           "--spec", json.dumps(TINY_SPEC)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    run = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "training.json").read_text())
    losses = [p["loss"] for p in report["loss_curve"]]
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0], losses
    assert report["steps"] == 60 and report["seed"] == load_train_module().parse_args([]).seed
    assert set(report["eval"]["per_type"]) == set(QUESTION_TYPES)
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "README.md"):
        assert (out / name).exists(), name


def load_train_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_llava_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_packed_batches_equal_single_prompts():
    """Training packs a scene's questions after one shared image prefix; each answer must see
    exactly what the pipeline's single-question prompt gives it."""
    from dataclasses import replace

    import torch
    from confidence_trap.models.checkpoint import build_llava

    train = load_train_module()
    spec = replace(train.SPEC, **TINY_SPEC)
    model, processor = build_llava(None, corpus=[train.SYSTEM] + train.all_question_texts(), spec=spec, seed=1)
    pool = train.ScenePool(processor, spec, 6, random.Random(3))
    batch = pool.batch(random.Random(0), 3)
    targets, weights = batch.pop("patch_targets"), batch.pop("label_weights")
    assert targets.shape == (3, (spec.image_size // spec.patch_size) ** 2, 4)
    with torch.no_grad():
        packed = model(**batch)
        total, count, per_question = 0.0, 0, []
        for row in range(3):
            n_real = int((batch["input_ids"][row] != processor.tokenizer.pad_token_id).sum())
            prefix = len(pool.prefix)
            starts = [i for i in range(prefix, n_real) if batch["position_ids"][row, i] == prefix]
            for start, end in zip(starts, starts[1:] + [n_real]):
                ids = torch.tensor(pool.prefix + batch["input_ids"][row, start:end].tolist())[None]
                labels = torch.tensor([-100] * prefix + batch["labels"][row, start:end].tolist())[None]
                # the block is exactly what the processor makes of the single-question prompt
                text = processor.decode(ids[0, prefix:])
                question, answer = text.split(" ASSISTANT: ")
                assert ids[0].tolist() == pool.sequence(question, answer.replace("</s>", ""))[0]
                single = model(input_ids=ids, pixel_values=batch["pixel_values"][row:row + 1],
                               attention_mask=torch.ones_like(ids), labels=labels)
                scored = (labels[0, prefix:] != -100).roll(-1)  # positions that predict an answer token
                torch.testing.assert_close(packed.logits[row, start:end][scored],
                                           single.logits[0, prefix:][scored], atol=1e-4, rtol=1e-4)
                n = int((labels != -100).sum())
                total, count = total + single.loss.item() * n, count + n
                per_question.append(single.loss.item())
    assert abs(packed.loss.item() - total / count) < 1e-4
    # the training loss weighs every question the same, whatever its answer's length
    weighted = train.weighted_answer_loss(packed.logits, batch["labels"], weights).item()
    assert abs(weighted - sum(per_question) / len(per_question)) < 1e-4


def test_saved_pipeline_matches_llava_hf(tiny_llava):
    model, processor = tiny_llava
    assert model.config.model_type == "llava"
    assert processor.image_processor.do_pad
    assert prompt(processor, "Describe the image.") == "USER: <image>\nDescribe the image. ASSISTANT:"


def answer(model, processor, images, questions_, max_new_tokens=32):
    """The pipeline's own path: [0,1] input pixels, the chat-template prompt, batched greedy
    generation with raw logits, mean token entropy up to and including </s>."""
    import torch

    from confidence_trap.models.generation import generate
    from confidence_trap.models.images import input_size, to_model_input
    from confidence_trap.models.prompts import build_prompt
    from probes.entropy import mean_token_entropy

    size = input_size(processor)
    pixels = torch.stack([to_model_input(im, size, processor.image_processor.image_mean) for im in images])
    prompts = [build_prompt(processor, q, "chat_template") for q in questions_]
    answers, entropies = [], []
    for i in range(0, len(prompts), 128):
        out = generate(model, processor, pixels[i:i + 128], prompts[i:i + 128], max_new_tokens=max_new_tokens)
        answers += out.answers
        entropies += mean_token_entropy(out.logits, out.mask).tolist()
    return answers, entropies


def auroc(negatives, positives):
    """P(a positive's score exceeds a negative's), ties half."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(negatives) * len(positives))


def drawn_items(seed, n, ambiguity):
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        image, shapes = draw_scene(rng, size=rng.choice((64, 96, 128, 224)), ambiguity=ambiguity)
        items += [(qtype, image, question, phrasings(qtype, ref)) for qtype, question, ref in questions(shapes)]
    return items


@pytest.mark.slow
def test_exact_grammar_still_answered(tiny_llava):
    """Scenes of the first grammar (four exact colours, 20-30% sizes), drawn afresh, are answered
    as the first embedded model answered them: >= 95% on count, colour, shape, >= 85% describe."""
    model, processor = tiny_llava
    items = drawn_items(TEST_SEED, TEST_SCENES, 0.0)
    got, _ = answer(model, processor, [im for _, im, _, _ in items], [q for _, _, q, _ in items])
    for qtype in QUESTION_TYPES:
        rows = [(q, ref, g) for (t, _, q, ref), g in zip(items, got) if t == qtype]
        wrong = [r for r in rows if r[2] not in r[1]]
        assert len(rows) >= 200, (qtype, len(rows))
        assert 1 - len(wrong) / len(rows) >= EXACT_FLOORS[qtype], (qtype, len(rows), wrong[:10])


def uncertainty_targets(got, entropies, refs):
    import numpy as np

    right = [g in r for g, r in zip(got, refs)]
    h = np.array(entropies)
    ok = np.array(right)
    return {"n": len(h), "accuracy": ok.mean(), "mean_entropy": h.mean(), "below_0.01": (h < 0.01).mean(),
            "auroc": auroc(h[ok].tolist(), h[~ok].tolist()) if ok.any() and (~ok).any() else None}


@pytest.mark.slow
def test_unsure_where_the_scene_is_ambiguous(tiny_llava):
    """Fresh scenes of the ambiguous grammar: the model is sometimes wrong, its entropy is off the
    floor, and higher entropy goes with wrong answers (as in a reasonably calibrated model)."""
    model, processor = tiny_llava
    items = drawn_items(AMBIGUOUS_SEED, AMBIGUOUS_SCENES, 1.0)
    got, entropies = answer(model, processor, [im for _, im, _, _ in items], [q for _, _, q, _ in items])
    t = uncertainty_targets(got, entropies, [ref for _, _, _, ref in items])
    assert t["n"] >= 400
    assert 0.70 <= t["accuracy"] <= 0.97, t
    assert t["mean_entropy"] >= 0.1 and t["below_0.01"] <= 0.3, t
    assert t["auroc"] >= 0.65, t


@pytest.fixture(scope="module")
def bundled_answers(tiny_llava):
    """The committed model's clean answers to the quick start's default set, through the
    pipeline's path: (entries, right [bool], mean token entropies)."""
    from PIL import Image

    from confidence_trap.tasks.scoring import score

    model, processor = tiny_llava
    folder = os.path.join(REPO, "data", "scenes")
    entries = json.load(open(os.path.join(folder, "manifest.json")))
    images = [Image.open(os.path.join(folder, e["file"])).convert("RGB") for e in entries]
    got, entropies = answer(model, processor, images, [e["question"] for e in entries])
    right = [score(e["match"], g, e["answers"]) for g, e in zip(got, entries)]
    return entries, right, entropies


def test_bundled_scenes_are_a_testbed(bundled_answers):
    """The quick start's default set on the committed model: >= 200 pairs, clean mean token
    entropy >= 0.1 nats, accuracy 75-97%, and the AUROC of entropy for a wrong answer >= 0.65
    (issue 14's targets)."""
    import numpy as np

    entries, right, entropies = bundled_answers
    ok, h = np.array(right), np.array(entropies)
    assert len(entries) >= 200
    assert 0.75 <= ok.mean() <= 0.97, ok.mean()
    assert h.mean() >= 0.1, h.mean()
    assert auroc(h[ok].tolist(), h[~ok].tolist()) >= 0.65


def test_bundled_scenes_rarely_at_the_entropy_floor(bundled_answers):
    """At most 20% of the default set's clean answers under 0.01 nats (issue 14), so a fall in
    entropy has room to show on most pairs."""
    import numpy as np

    _, _, entropies = bundled_answers
    assert (np.array(entropies) < 0.01).mean() <= 0.2


def test_folder_is_small_and_documented():
    total = 0
    for root, dirs, files in os.walk(FOLDER):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    assert total <= 10 * 1024 * 1024, total
    report = json.load(open(os.path.join(FOLDER, "training.json")))
    for key in ("command", "seed", "steps", "total_wall_seconds", "machine", "eval"):
        assert key in report, key
    assert report["eval"]["ambiguity"] == 0 and report["eval_ambiguous"]["ambiguity"] == 1
    for qtype in QUESTION_TYPES:
        assert report["eval"]["per_type"][qtype]["accuracy"] >= EXACT_FLOORS[qtype], qtype
    u = report["eval_ambiguous"]["uncertainty"]["all"]
    assert u["mean_entropy"] >= 0.1 and u["auroc_wrong"] >= 0.65 and u["accuracy"] < 0.97, u
    card = open(os.path.join(FOLDER, "README.md")).read()
    assert f"{100 * u['accuracy']:.1f}%" in card and report["command"] in card
