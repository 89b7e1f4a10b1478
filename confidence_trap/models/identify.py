"""What a checkpoint is, read from its files before any weights load.

    is_llava_1_5("/data/llava7b")                  # True for llava-hf/llava-1.5-7b-hf's files, any folder name
    llava_1_5_evidence("llava-hf/llava-1.5-7b-hf") # (True, "config.json: Llava, CLIP 336 px / 14, Llama, ...")

A LLaVA-1.5 checkpoint (docs/LLAVA_NOTES.md) is what its config.json and tokenizer say:
  config.json   model_type llava, a CLIP vision tower at 336 px with patch 14, a Llama decoder,
                the image token at 32000 (image_token_index, or image_token_id as newer
                transformers write it)
  tokenizer     the Llama-2 SentencePiece vocabulary (32000 pieces, <unk> <s> </s> at 0 1 2)
                with <image> added at 32000 (tokenizer.json, else tokenizer_config.json)
The files are read from a local folder, or from the Hugging Face cache's snapshot of a hub id.
A hub id with nothing cached yet (it is about to be downloaded) is told by its name instead, as
the registry names it (llava-hf/llava-1.5-7b-hf, liuhaotian/llava-v1.5-13b), and so is a path that
does not exist. What depends on the answer: the prompt format (llava_v1), the vision tower's
dtype on CUDA (float32), and, after the load, the scored vocabulary (32000 rows; confidence_trap/models/vocab.py
reads it off the model and its tokenizer).
"""
from __future__ import annotations

import json
import os

IMAGE_TOKEN_ID = 32000
LLAMA_PIECES = 32000


def named_llava_1_5(name: str) -> bool:
    """The name rule, for what has no files yet: llava-hf/llava-1.5-7b-hf, liuhaotian/llava-v1.5-13b."""
    text = str(name).lower().replace("_", "-")
    return "llava-1.5" in text or "llava-v1.5" in text


def checkpoint_file(source: str, name: str, revision: str | None = None) -> str | None:
    """The path of file `name` of a local folder or of a hub id's cached snapshot, or None."""
    if os.path.isdir(source):
        path = os.path.join(source, name)
        return path if os.path.isfile(path) else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, name, revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id: nothing cached under it
        return None
    return found if isinstance(found, str) else None


def _json(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def checkpoint_config(source: str, revision: str | None = None) -> dict | None:
    """A local folder's or a cached hub snapshot's config.json, or None."""
    return _json(checkpoint_file(source, "config.json", revision))


def config_says(config: dict) -> tuple[bool, str]:
    """Whether a config.json is LLaVA-1.5's architecture, and what it says in a few words."""
    vision, text = config.get("vision_config") or {}, config.get("text_config") or {}
    image = config.get("image_token_index", config.get("image_token_id"))
    facts = (config.get("model_type") == "llava", vision.get("model_type") == "clip_vision_model",
             vision.get("image_size") == 336, vision.get("patch_size") == 14,
             text.get("model_type") == "llama", image == IMAGE_TOKEN_ID)
    said = (f"{config.get('model_type')}, {vision.get('model_type')} {vision.get('image_size')} px / "
            f"{vision.get('patch_size')}, {text.get('model_type')}, image token {image}")
    return all(facts), said


def tokenizer_says(source: str, revision: str | None = None) -> tuple[bool, str]:
    """Whether the tokenizer is Llama-2's with <image> at 32000."""
    tok = _json(checkpoint_file(source, "tokenizer.json", revision))
    if tok is not None:
        vocab = (tok.get("model") or {}).get("vocab") or {}
        added = {a.get("id"): a.get("content") for a in tok.get("added_tokens") or [] if isinstance(a, dict)}
        llama = len(vocab) == LLAMA_PIECES and all(vocab.get(t) == i for i, t in enumerate(("<unk>", "<s>", "</s>")))
        image = added.get(IMAGE_TOKEN_ID) == "<image>"
        said = f"tokenizer.json: {len(vocab)} pieces, id {IMAGE_TOKEN_ID} {added.get(IMAGE_TOKEN_ID)!r}"
        return llama and image, said
    cfg = _json(checkpoint_file(source, "tokenizer_config.json", revision))
    if cfg is None:
        return False, "no tokenizer files"
    added = (cfg.get("added_tokens_decoder") or {}).get(str(IMAGE_TOKEN_ID)) or {}
    sentencepiece = checkpoint_file(source, "tokenizer.model", revision) is not None
    return (sentencepiece and added.get("content") == "<image>",
            f"tokenizer_config.json: id {IMAGE_TOKEN_ID} {added.get('content')!r}, "
            f"tokenizer.model {'present' if sentencepiece else 'absent'}")


def llava_1_5_evidence(source: str, revision: str | None = None) -> tuple[bool, str]:
    """(is it LLaVA-1.5, why): from the checkpoint's files where they are at hand, else its name."""
    config = checkpoint_config(source, revision)
    if config is None:
        return named_llava_1_5(source), "no config.json at hand: told by its name"
    arch, said = config_says(config)
    if not arch:
        return False, f"config.json: {said}"
    tok, tok_said = tokenizer_says(source, revision)
    return tok, f"config.json: {said}; {tok_said}"


def is_llava_1_5(source: str, revision: str | None = None) -> bool:
    return llava_1_5_evidence(source, revision)[0]


__all__ = ["is_llava_1_5", "llava_1_5_evidence", "named_llava_1_5", "checkpoint_file", "checkpoint_config"]
