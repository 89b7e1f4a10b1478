"""Prompt formats: LLaVA-1.5's own `llava_v1` conversation and the processor's chat template.

    build_prompt(processor, "What is shown?", "llava_v1")
    # "A chat between ... questions. USER: <image>\nWhat is shown? ASSISTANT:"
"""
from __future__ import annotations

from .errors import InputError

PROMPT_FORMATS = ("llava_v1", "chat_template")
LLAVA_V1_SYSTEM = ("A chat between a curious human and an artificial intelligence assistant. "
                   "The assistant gives helpful, detailed, and polite answers to the human's questions.")


def default_format(model_id: str) -> str:
    """LLaVA-1.5 checkpoints were trained on llava_v1 (with its system sentence); others on their template."""
    name = model_id.lower().replace("_", "-")
    return "llava_v1" if ("llava-1.5" in name or "llava-v1.5" in name) else "chat_template"


def build_prompt(processor, question: str, fmt: str) -> str:
    """The exact text handed to the processor for one image and one question."""
    if fmt == "llava_v1":
        # conv_llava_v1: system, sep " ", roles USER/ASSISTANT, image token first in the turn
        return f"{LLAVA_V1_SYSTEM} USER: <image>\n{question} ASSISTANT:"
    if fmt == "chat_template":
        if not getattr(processor, "chat_template", None):
            raise InputError("this processor has no chat template: use --prompt-format llava_v1")
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True)
    raise InputError(f"unknown prompt format {fmt!r}; choose from {', '.join(PROMPT_FORMATS)}")
