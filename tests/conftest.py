"""Shared fixtures: tiny random Llava checkpoints in Hugging Face layout, built once per session."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One torch thread (read when torch is imported, after this file; the scripts the tests start
# inherit it): the tests' models are tiny, so a second thread saves little and, on a machine
# whose other CPU is busy, costs much waiting for it (the fast tier on 2 cores at load 3.5:
# 157 s with two threads, 79 s with one).
os.environ.setdefault("OMP_NUM_THREADS", "1")

CORPUS = [
    "What animal is shown in this image? Answer with one word. cat",
    "What drink is in the cup? coffee",
    "Describe the image. a red circle and a blue square",
    "How many shapes are there? one two three",
]


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A randomly initialised Llava (about 1 MB) saved with save_pretrained."""
    from confidence_trap.models.checkpoint import build_llava

    folder = str(tmp_path_factory.mktemp("tiny-random-llava"))
    build_llava(folder, corpus=CORPUS, seed=0)
    return folder


@pytest.fixture(scope="session")
def peaky_ckpt(tmp_path_factory):
    """A random Llava whose decoder is scaled up so greedy argmaxes are far from ties."""
    import torch

    from confidence_trap.models.checkpoint import build_llava

    folder = str(tmp_path_factory.mktemp("peaky-random-llava"))
    model, processor = build_llava(None, corpus=CORPUS, seed=1)
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def nonfinite_ckpt(tmp_path_factory):
    """The tiny random Llava with two lm_head weights set to +inf: as FP16 overflow does, they
    turn a token's logit into +inf wherever the hidden state's first (second) feature is
    positive, so some generated positions have non-finite logits and others do not."""
    import torch

    from confidence_trap.models.checkpoint import build_llava

    folder = str(tmp_path_factory.mktemp("nonfinite-random-llava"))
    model, processor = build_llava(None, corpus=CORPUS, seed=0)
    with torch.no_grad():
        model.get_output_embeddings().weight[7, 0] = float("inf")
        model.get_output_embeddings().weight[8, 1] = float("inf")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llava_7b():
    """LLaVA-1.5-7B's architecture (configs/llava-1.5-7b.json) on the meta device: shapes and
    dtypes, no memory."""
    import json

    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "llava-1.5-7b.json")
    with open(path) as f:
        config = LlavaConfig.from_dict(json.load(f))
    with torch.device("meta"):
        return LlavaForConditionalGeneration._from_config(config, dtype=torch.float16)
