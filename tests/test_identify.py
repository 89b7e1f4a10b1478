"""A LLaVA-1.5 checkpoint is told by its config.json and tokenizer, whatever its folder is called:
in a neutral-named folder and in a Hugging Face cache snapshot it gets llava_v1, CLIP in float32
on CUDA and the 32000-row scored vocabulary, exactly as llava-hf/llava-1.5-7b-hf; a folder named
like LLaVA-1.5 that holds something else does not."""
import json
import os
import shutil

import pytest
import torch

from confidence_trap.models import vision_dtype_for
from confidence_trap.models.identify import llava_1_5_evidence
from confidence_trap.models.prompts import default_format

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "llava-1.5-7b-hf-processor")
CONFIG_7B = os.path.join(REPO, "configs", "llava-1.5-7b.json")
PHOTO = os.path.join(REPO, "data", "photos", "rocket.jpg")


@pytest.fixture
def llava7b(tmp_path):
    """llava-hf's processor files and LLaVA-1.5-7B's config.json, no weights, in /tmp/.../llava7b."""
    folder = tmp_path / "llava7b"
    shutil.copytree(FIXTURE, folder)
    shutil.copy(CONFIG_7B, folder / "config.json")
    return str(folder)


def _decisions(source):
    return (default_format(source), vision_dtype_for("auto", source, "cuda", torch.float16),
            vision_dtype_for("auto", source, "cpu", torch.float32))


def test_a_neutral_folder_gets_what_llava_hf_gets(llava7b):
    ok, why = llava_1_5_evidence(llava7b)
    assert ok and "clip_vision_model 336 px / 14" in why and "32000 pieces" in why
    assert _decisions(llava7b) == _decisions("llava-hf/llava-1.5-7b-hf") == ("llava_v1", torch.float32, torch.float32)


def test_the_plan_decides_before_any_load(llava7b, tmp_path, monkeypatch):
    import confidence_trap.models as models
    from confidence_trap.runner import pipeline
    from confidence_trap.runner.config import Config

    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("plan() loaded the model"))
    p = pipeline.plan(Config(model=llava7b, device="cpu", images=[PHOTO], out=str(tmp_path / "o")))
    assert p.fmt == "llava_v1" and p.model.checkpoint.startswith("LLaVA-1.5")


def test_the_files_decide_not_the_name(llava7b, tiny_ckpt, tmp_path):
    # a folder named like LLaVA-1.5 holding the tiny test Llava (CLIP at 32 px, a small BPE vocabulary)
    impostor = tmp_path / "llava-1.5-7b-hf"
    shutil.copytree(tiny_ckpt, impostor)
    assert _decisions(str(impostor)) == ("chat_template", torch.float16, torch.float32)
    # LLaVA-1.5's config over another tokenizer, and its tokenizer over another config
    other_tok = tmp_path / "mixed-a"
    shutil.copytree(tiny_ckpt, other_tok)
    shutil.copy(CONFIG_7B, other_tok / "config.json")
    assert not llava_1_5_evidence(str(other_tok))[0]
    config = json.loads(open(CONFIG_7B).read())
    config["vision_config"]["image_size"] = 224
    (tmp_path / "llava7b" / "config.json").write_text(json.dumps(config))
    ok, why = llava_1_5_evidence(llava7b)
    assert not ok and "224 px" in why


def test_a_hub_cache_snapshot_loads_as_llava_1_5(tmp_path, monkeypatch):
    """The shrunk 7B (LLaVA-1.5's geometry and tokenizer, tiny widths) cached under a neutral hub
    id: recognised from the snapshot, loaded offline, scored over 32000 rows."""
    import huggingface_hub.constants as hub

    from confidence_trap.models import load
    from confidence_trap.models.checkpoint import random_llava, save_to_hub_cache, shrunk
    from confidence_trap.models.vocab import scored_vocab

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    model, processor = random_llava(shrunk(CONFIG_7B), "cpu", torch.float32)
    save_to_hub_cache(model, processor, "someone/vlm-7b", str(tmp_path / "hub"))
    assert _decisions("someone/vlm-7b") == ("llava_v1", torch.float32, torch.float32)
    assert default_format("someone/not-cached") == "chat_template"   # nothing on disk: its name
    loaded, proc = load("someone/vlm-7b", device="cpu")
    assert scored_vocab(loaded, proc).size == 32000 and loaded.get_output_embeddings().weight.shape[0] == 32064
