"""Build Llava checkpoints offline: small trained-from-scratch ones, and a full-size stand-in.

    from confidence_trap.models.checkpoint import build_llava, random_llava, save_to_hub_cache, shrunk
    build_llava("/tmp/tiny-random", corpus=["How many shapes are there?"])
    model, processor = random_llava("configs/llava-1.5-7b.json", "cuda", torch.float16)
    model, processor = random_llava(shrunk("configs/llava-1.5-7b.json"), "cpu", torch.float32)
    save_to_hub_cache(model, processor, "llava-hf/llava-1.5-7b-hf", "/tmp/hf/hub")

build_llava: the tests use it to make random checkpoints; `models/tiny-llava/train.py` uses it to
make the embedded model before training it. The folder is a real Llava (CLIP vision tower,
projector, Llama decoder) with a byte-level BPE tokenizer and an image processor, saved with
`save_pretrained`, so it loads through exactly the code path of `llava-hf/llava-1.5-7b-hf`.
random_llava: the architecture of a config.json (LLaVA-1.5-7B's in configs/) with random weights,
built straight on the device, with llava-hf's own processor files and the real Llama-2 tokenizer
(tests/fixtures/llava-1.5-7b-hf-processor): what the GPU benchmark and memory check measure,
nothing downloaded. shrunk: the same geometry (336 px, patch 14, 576 image tokens, the 32064-row
vocabulary) at tiny widths, for CPU runs of the 7B's code path. save_to_hub_cache: a checkpoint
laid out as the Hugging Face cache holds a download, so that `--model llava-1.5-7b` loads it
offline through models.load, exactly as a user's downloaded copy.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, asdict

import torch

from .images import CLIP_MEAN, CLIP_STD

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAND_IN_PROCESSOR = os.path.join(REPO, "tests", "fixtures", "llava-1.5-7b-hf-processor")
# The llava-hf chat template, reduced to what a single-image, single-turn question needs.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %} "
    "{% elif message['role'] == 'assistant' %}ASSISTANT: "
    "{% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


@dataclass
class TinyLlavaSpec:
    """Sizes of a small Llava. The defaults make a random test checkpoint of about 1 MB."""

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 128
    vocab_size: int = 512
    max_positions: int = 512


def build_tokenizer(corpus, vocab_size=512):
    """A byte-level BPE tokenizer trained on `corpus` (any text still encodes, byte by byte)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    fast.add_bos_token = True
    return fast


def _with_bos(tokenizer):
    """Make the tokenizer prepend <s>, as Llama's does."""
    from tokenizers import processors

    bos = tokenizer.bos_token_id
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return tokenizer


def build_processor(tokenizer, spec: TinyLlavaSpec):
    from transformers import LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
        do_pad=True, image_mean=CLIP_MEAN, image_std=CLIP_STD,
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=spec.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer, spec: TinyLlavaSpec):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden, intermediate_size=4 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
        image_size=spec.image_size, patch_size=spec.patch_size, projection_dim=spec.vision_hidden,
        hidden_act="quick_gelu",
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate, num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads, num_key_value_heads=spec.text_heads,
        max_position_embeddings=spec.max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    n_patches = (spec.image_size // spec.patch_size) ** 2
    return LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=n_patches, vision_feature_layer=-2,
        vision_feature_select_strategy="default", projector_hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
    )


def build_llava(folder=None, corpus=("How many shapes are there?",), spec=None, seed=0):
    """Make a randomly initialised Llava and its processor; save them to `folder` if given.

    >>> model, processor = build_llava(None, corpus=["What color is the circle? red"])
    >>> model.config.model_type
    'llava'
    """
    from transformers import GenerationConfig, LlavaForConditionalGeneration

    spec = spec or TinyLlavaSpec()
    corpus = list(corpus) + ["USER: ASSISTANT:"]
    tokenizer = _with_bos(build_tokenizer(corpus, vocab_size=spec.vocab_size))
    processor = build_processor(tokenizer, spec)
    config = build_config(tokenizer, spec)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False,
    )
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    return model, processor


def spec_dict(spec: TinyLlavaSpec) -> dict:
    return asdict(spec)


def llava_config(path: str):
    """A LlavaConfig from a config.json (or a JSON file holding one under "config")."""
    import json

    from transformers import LlavaConfig

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return LlavaConfig.from_dict(data.get("config", data))


def random_llava(config, device, dtype, attention: str = "sdpa"):
    """(model, processor): `config` (a LlavaConfig or a path) with random weights on `device`,
    and the llava-hf/llava-1.5-7b-hf processor (real tokenizer and image settings)."""
    from transformers import AutoProcessor, GenerationConfig, LlavaForConditionalGeneration

    config = llava_config(config) if isinstance(config, str) else config
    processor = AutoProcessor.from_pretrained(STAND_IN_PROCESSOR)
    tok = processor.tokenizer
    torch.manual_seed(0)
    with torch.device(device):  # straight on the device: no float32 copy of a 7B model on the host
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation=attention)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id, do_sample=False)
    model.config_source = "random weights"
    return model.eval(), processor


def shrunk(config, hidden: int = 16, layers: int = 2, heads: int = 2):
    """`config` (a LlavaConfig or a path) with tiny widths and depths and everything else kept:
    image size, patch, vocabulary, special tokens."""
    config = llava_config(config) if isinstance(config, str) else config
    data = config.to_dict()
    data["vision_config"].update(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                                 num_attention_heads=heads)
    data["text_config"].update(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden // heads)
    return type(config).from_dict(data)


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def save_to_hub_cache(model, processor, repo_id: str, hub_dir: str, commit: str = HUB_COMMIT) -> str:
    """Save model and processor where the Hugging Face cache under `hub_dir` (HF_HUB_CACHE, or
    HF_HOME/hub) keeps a download of `repo_id`: models--ORG--NAME/snapshots/COMMIT/, with
    refs/main naming COMMIT. Plain files, no blobs: from_pretrained and try_to_load_from_cache
    read the snapshot folder. Returns the snapshot folder."""
    folder = os.path.join(hub_dir, "models--" + repo_id.replace("/", "--"))
    snapshot = os.path.join(folder, "snapshots", commit)
    model.save_pretrained(snapshot)
    processor.save_pretrained(snapshot)
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(os.path.join(folder, "refs", "main"), "w", encoding="utf-8") as f:
        f.write(commit)
    return snapshot
