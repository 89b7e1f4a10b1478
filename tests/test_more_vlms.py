"""Architectures beyond Llava through the same pipeline: tiny random Idefics3 (SmolVLM), LLaVA-NeXT
and Qwen2-VL checkpoints built here, each family's torch pixel layout against its own image
processor, and `experiments/entropy_analysis.py --model <folder>` end to end on CPU."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from confidence_trap.models import MODELS, resolve
from confidence_trap.models.architectures import DYNAMIC_SIDE, pixel_layout
from confidence_trap.models.checkpoint import CHAT_TEMPLATE, CLIP_MEAN, CLIP_STD, _with_bos, build_tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENE = os.path.join(REPO, "data", "scenes", "scene_000.png")
CORPUS = ["How many shapes are there? one two three", "What color is the circle? red blue",
          "USER: ASSISTANT: User: Assistant:"]
SMALL_TEXT = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024)


# --- tiny checkpoints: a small tokenizer, the architecture's own image processor, small sizes -----

def idefics3_parts(splitting=True):
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    return Idefics3ImageProcessorPil(size={"longest_edge": 32}, max_image_size={"longest_edge": 16},
                                     do_image_splitting=splitting, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def build_idefics3(folder):
    """SmolVLM's architecture (Idefics3): 32-px images split into 2x2 tiles of 16 plus a global view."""
    from transformers import GenerationConfig, Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor

    tok = build_tokenizer(CORPUS, 400)
    tok.add_special_tokens({"additional_special_tokens": [
        "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>",
        *[f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]]})
    template = ("{% for message in messages %}{{ message['role'] | capitalize }}:"
                "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>"
                "{% else %}{{ item['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
                "{% if add_generation_prompt %}Assistant:{% endif %}")
    processor = Idefics3Processor(image_processor=idefics3_parts(), tokenizer=tok, image_seq_len=4,
                                  chat_template=template)
    eou = tok.convert_tokens_to_ids("<end_of_utterance>")
    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=16, patch_size=4),
        text_config=dict(SMALL_TEXT, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                         eos_token_id=eou, pad_token_id=tok.pad_token_id),
        scale_factor=2, image_token_id=tok.convert_tokens_to_ids("<image>"), pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=eou, pad_token_id=tok.pad_token_id, do_sample=False)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


def llava_next_parts():
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    return LlavaNextImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16},
                                      image_grid_pinpoints=[[16, 32], [32, 16], [32, 32]],
                                      image_mean=CLIP_MEAN, image_std=CLIP_STD)


def build_llava_next(folder):
    """LLaVA-NeXT's anyres: a 32-px image as a 16-px base view and 2x2 tiles of 16."""
    from transformers import GenerationConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

    tok = _with_bos(build_tokenizer(CORPUS, 400))
    processor = LlavaNextProcessor(image_processor=llava_next_parts(), tokenizer=tok, patch_size=4,
                                   vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    config = LlavaNextConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=16, patch_size=4,
                           projection_dim=32),
        text_config=dict(SMALL_TEXT, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        image_grid_pinpoints=[[16, 32], [32, 16], [32, 32]], image_seq_length=16,
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-2,
        vision_feature_select_strategy="default", pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlavaNextForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                               do_sample=False)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


QWEN_TOKENS = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def qwen2_vl_parts():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(size={"shortest_edge": 16 * 16, "longest_edge": 32 * 32},
                                    patch_size=4, merge_size=2, temporal_patch_size=2)


def qwen2_vl_model(tok):
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = tok.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                          "rope_theta": 10000.0},
                         bos_token_id=tok.bos_token_id, eos_token_id=ids("<|im_end|>"),
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, patch_size=4,
                           spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=ids("<|im_end|>"), pad_token_id=tok.pad_token_id,
                                               do_sample=False)
    return model


def qwen2_vl_tokenizer():
    tok = build_tokenizer(CORPUS, 400)
    tok.add_special_tokens({"additional_special_tokens": QWEN_TOKENS})
    return tok


def build_qwen2_vl(folder):
    """Qwen2-VL: a 32-px image in 4-px patches, merged 2x2. Its processor needs torchvision."""
    from transformers import Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = qwen2_vl_tokenizer()
    template = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
                "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
                "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ item['text'] }}{% endif %}"
                "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    processor = Qwen2VLProcessor(image_processor=qwen2_vl_parts(), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=template)
    qwen2_vl_model(tok).save_pretrained(folder)
    processor.save_pretrained(folder)


# --- layouts against the processors ------------------------------------------------------------

def _llava_parts():
    from confidence_trap.models.checkpoint import TinyLlavaSpec, build_processor

    return build_processor(_with_bos(build_tokenizer(CORPUS, 300)), TinyLlavaSpec()).image_processor


PARTS = {"llava": _llava_parts, "qwen2_vl": qwen2_vl_parts, "idefics3": idefics3_parts,
         "idefics3_no_split": lambda: idefics3_parts(splitting=False), "llava_next": llava_next_parts}
# which view each family resamples from x (PIL on 8-bit pixels there, antialiased bicubic here)
RESAMPLED = {"idefics3": -1, "llava_next": 0}


@pytest.mark.parametrize("name", list(PARTS))
def test_the_torch_layout_is_the_processors_own(name):
    ip = PARTS[name]()
    layout = pixel_layout(ip)
    s = layout.side
    noise = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    smooth = F.interpolate(torch.rand(2, 3, 3, 3, generator=torch.Generator().manual_seed(1)),
                           size=(s, s), mode="bilinear", align_corners=True)
    # Processors that round-trip through PIL floor x to 8 bits: at most 1/255 before normalizing.
    quantum = 1 / 255 / min(ip.image_std) + 1e-5
    for x, check_resampled in ((noise, False), (smooth, True)):
        ours = layout.pixel_values(x)
        images = [[im] for im in x] if layout.family == "tiles" else list(x)  # one image per sample
        theirs = ip(images=images, return_tensors="pt", **layout.processor_kwargs)["pixel_values"]
        assert ours.shape == theirs.shape
        views = list(range(ours.shape[1])) if ours.dim() == 5 else [None]
        for v in views:
            a, b = (ours, theirs) if v is None else (ours[:, v], theirs[:, v])
            resampled = name in RESAMPLED and v == range(ours.shape[1])[RESAMPLED[name]]
            if resampled and check_resampled:
                assert (a - b).abs().mean() < 0.05, (name, v)
            elif not resampled:
                tol = 1e-5 if name in ("llava", "qwen2_vl") else quantum
                assert (a - b).abs().max() <= tol, (name, v, float((a - b).abs().max()))


def test_input_sizes_follow_each_familys_geometry():
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (Qwen2VLImageProcessorPil,
                                                                             smart_resize)
    from confidence_trap.models.images import input_size

    class P:  # input_size takes a processor; only its image_processor is read
        def __init__(self, ip):
            self.image_processor = ip

    qwen = Qwen2VLImageProcessorPil()  # Qwen2-VL-2B's defaults: min 56², max 28²·1280 pixels
    assert input_size(P(qwen)) == smart_resize(DYNAMIC_SIDE, DYNAMIC_SIDE, 28, 56 * 56, 28 * 28 * 1280)[0] == 448
    assert input_size(P(qwen2_vl_parts())) == 32  # capped by max_pixels 32², on the 8-px grid
    smol = Idefics3ImageProcessorPil(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512})
    assert input_size(P(smol)) == 2048  # SmolVLM-256M: 4x4 tiles of 512 + the global view
    assert input_size(P(idefics3_parts(splitting=False))) == 16
    pinpoints = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]  # llava-v1.6-mistral
    assert input_size(P(LlavaNextImageProcessorPil(image_grid_pinpoints=pinpoints))) == 672
    assert input_size(P(_llava_parts())) == 32


def test_the_registry_names_well_known_checkpoints():
    for name, hub_id in {"llava-next-7b": "llava-hf/llava-v1.6-mistral-7b-hf",
                         "qwen2-vl-2b": "Qwen/Qwen2-VL-2B-Instruct",
                         "smolvlm-256m": "HuggingFaceTB/SmolVLM-256M-Instruct"}.items():
        assert MODELS[name] == hub_id and resolve(name) == hub_id
    assert len(set(MODELS.values())) == len(MODELS)


# --- whole models ------------------------------------------------------------------------------

BUILDERS = {"idefics3": build_idefics3, "llava_next": build_llava_next}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folders = {}
    for name, build in BUILDERS.items():
        folders[name] = str(tmp_path_factory.mktemp(name))
        build(folders[name])
    return folders


@pytest.fixture(params=list(BUILDERS))
def ckpt(request, ckpts):
    return ckpts[request.param]


def test_the_attack_reaches_the_model_in_float_pixels(ckpt):
    """A perturbation below one 8-bit step survives into pixel_values, unrounded and normalized."""
    from confidence_trap.models import load
    from confidence_trap.models.generation import encode
    from confidence_trap.models.prompts import build_prompt

    model, processor = load(ckpt, device="cpu")
    layout = pixel_layout(processor)
    s = layout.side
    x = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    delta = 0.3 / 255 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))
    prompt = build_prompt(processor, "How many shapes are there?", "chat_template")
    a = encode(processor, [prompt], x, "cpu", torch.float32)
    b = encode(processor, [prompt], x + delta, "cpu", torch.float32)
    assert torch.equal(a["input_ids"], b["input_ids"])
    std = torch.tensor(processor.image_processor.image_std).view(3, 1, 1)
    expect = layout.pixel_values(x + delta) - layout.pixel_values(x)
    assert torch.allclose(b["pixel_values"] - a["pixel_values"], expect, atol=1e-5)
    # the tiles hold x itself: the first tile's change is δ/std exactly (rounded away by 8-bit PIL)
    first = 1 if layout.family == "anyres" else 0
    tile = (b["pixel_values"] - a["pixel_values"])[0, first]
    m = tile.shape[-1]
    assert torch.allclose(tile, delta[0, :, :m, :m] / std, atol=1e-5)


def analysis_command(model: str, out, *extra) -> list[str]:
    return [sys.executable, os.path.join(REPO, "experiments", "entropy_analysis.py"), "--model", model,
            "--images", SCENE, "--prompt", "How many shapes are there?", "--epsilons", "8/255",
            "--trials", "1", "--steps", "2", "--max-new-tokens", "4", "--out", str(out),
            "--device", "cpu", *extra]


def test_entropy_analysis_runs_end_to_end_with_true_gradient_pgd(ckpts, tmp_path):
    from confidence_trap.cli import main

    for name, folder in ckpts.items():
        assert main(analysis_command(folder, tmp_path / name, "--attack", "pgd", "--objective", "ce")[2:]) == 0, name
        out = tmp_path / name
        records = [json.loads(line) for line in open(out / "records.jsonl")]
        assert [r["attack"] for r in records] == ["none", "blank", "pgd:ce", "repeat"]
        assert records[2]["epsilon"] == pytest.approx(8 / 255)
        for r in records:
            assert 1 <= r["n_tokens"] <= 4 and len(r["answer_ids"]) == r["n_tokens"]
            assert all(e is not None and 0 <= e <= math.log(2000) for e in r["token_entropies"])
        assert json.load(open(out / "run.json"))["model_class"].startswith(
            {"idefics3": "Idefics3", "llava_next": "LlavaNext"}[name])


def test_the_gradient_reaches_the_pixels_through_qwen2_vl():
    """Qwen2-VL's patch layout and M-RoPE under the objective (its processor needs torchvision,
    so the prompt's tokens are laid out here as the processor lays them out)."""
    from attacks.pgd import pgd_gradient
    from confidence_trap.runner.objectives import Objective

    tok = qwen2_vl_tokenizer()
    model = qwen2_vl_model(tok)
    layout = pixel_layout(qwen2_vl_parts())
    s, ids = layout.side, tok.convert_tokens_to_ids
    n_image = (s // 4) ** 2 // 4  # patches merged 2x2
    prompt = (tok("<|im_start|>user\n")["input_ids"] + [ids("<|vision_start|>")] + [ids("<|image_pad|>")] * n_image
              + [ids("<|vision_end|>")] + tok("How many?<|im_end|>\n<|im_start|>assistant\n")["input_ids"])
    answer = tok("one two")["input_ids"] + [ids("<|im_end|>")]
    input_ids = torch.tensor([prompt + answer[:-1]])
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
              "mm_token_type_ids": (input_ids == ids("<|image_pad|>")).long(),  # 1: image, 0: text
              "image_grid_thw": torch.tensor([[1, s // 4, s // 4]])}
    loss = Objective("entropy_min", model, layout, inputs, answer)
    x = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    loss(x).backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).float().mean() > 0.9
    assert all(p.grad is None for p in model.parameters())
    x_adv = pgd_gradient(x.detach(), 4 / 255, loss, steps=3, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 4 / 255 + 1e-6 and float(loss(x_adv)) < float(loss(x.detach()))


def test_qwen2_vl_end_to_end(tmp_path):
    pytest.importorskip("torchvision", reason="transformers' Qwen2-VL processor needs torchvision")
    folder = str(tmp_path / "qwen")
    build_qwen2_vl(folder)
    out = tmp_path / "run"
    done = subprocess.run(analysis_command(folder, out, "--attack", "pgd"), cwd=REPO, capture_output=True,
                          text=True, timeout=240, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(open(out / "records.jsonl").readlines()) == 2
