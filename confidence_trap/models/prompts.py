"""Prompt formats and token ids: LLaVA's own conversations, the plain prompt, the chat template.

    build_prompt(processor, "What is shown?", "llava_v1")
    # "A chat between ... human's questions. USER: <image>\nWhat is shown? ASSISTANT:"
    build_prompt(processor, "Describe this image in detail.", "plain")
    # "<image>\nDescribe this image in detail."  (the study's code: no conversation at all)
    llava_input_ids(processor.tokenizer, prompt, image_token_id=32000, n_image_tokens=576)

The original LLaVA conversations (`llava/conversation.py`) are `llava_v1`, which `run_llava.py`
picks for LLaVA-1.5 and which is this project's default for it, and `vicuna_v1`, which LLaVA's
own benchmark scripts (scripts/v1_5/eval/*.sh) and its fine-tuning use. They differ only in the
system sentence ("human" against "user"). Both are tokenised as the original does
(`tokenizer_image_token` in `llava/mm_utils.py`): the text chunks around `<image>` one by one,
so each chunk gets SentencePiece's leading "▁" (`USER: <image>\\nWhat` -> `... 29901 29871
<image> 29871 13 5618 ...`), whatever tokenizer class transformers picks for the folder (see
docs/LLAVA_NOTES.md: a whole-prompt `LlamaTokenizer(legacy=False)` drops the 29871 after the
image). `plain` is what the study's own code fed LLaVA-1.5 (`qs = DEFAULT_IMAGE_TOKEN + '\\n' +
PROMPT`, no conversation template): the image, a newline and the question, tokenised the same
way, so for LLaVA-1.5 `[1, <image>, 29871, 13, ...]` (the chunk after the image keeps its own
leading "▁", 29871). Other formats are tokenised by the processor.
"""
from __future__ import annotations

from confidence_trap.errors import InputError

SYSTEMS = {
    "llava_v1": ("A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's questions."),
    "vicuna_v1": ("A chat between a curious user and an artificial intelligence assistant. "
                  "The assistant gives helpful, detailed, and polite answers to the user's questions."),
}
LLAVA_V1_SYSTEM = SYSTEMS["llava_v1"]
PLAIN = "plain"  # the image and the question, no conversation (the study's own code)
PROMPT_FORMATS = (*SYSTEMS, PLAIN, "chat_template")
IMAGE = "<image>"


def is_llava_1_5(source: str, revision: str | None = None) -> bool:
    """A LLaVA-1.5 checkpoint, told by its config.json and tokenizer, whatever its folder is
    called (confidence_trap/models/identify.py; a hub id not downloaded yet by its name)."""
    from .identify import is_llava_1_5 as by_files

    return by_files(source, revision)


def default_format(source: str, revision: str | None = None) -> str:
    """llava_v1 for LLaVA-1.5 (what the original's run_llava.py uses); others their chat template."""
    return "llava_v1" if is_llava_1_5(source, revision) else "chat_template"


def check_format(fmt: str) -> str:
    if fmt not in PROMPT_FORMATS:
        raise InputError(f"unknown prompt format {fmt!r}; choose from {', '.join(PROMPT_FORMATS)}")
    return fmt


def original_ids(fmt: str) -> bool:
    """Whether `fmt` is tokenised as the original LLaVA does: its conversations and the plain prompt."""
    return fmt in SYSTEMS or fmt == PLAIN


def build_prompt(processor, question: str, fmt: str) -> str:
    """The exact text handed to the tokenizer for one image and one question."""
    if check_format(fmt) in SYSTEMS:
        # conv_llava_v1 / conv_vicuna_v1: system, sep " ", roles USER/ASSISTANT, image first in the turn
        return f"{SYSTEMS[fmt]} USER: {IMAGE}\n{question} ASSISTANT:"
    if fmt == PLAIN:
        return f"{IMAGE}\n{question}"
    if not getattr(processor, "chat_template", None):
        raise InputError("this processor has no chat template: use --prompt-format llava_v1")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def llava_input_ids(tokenizer, prompt: str, image_token_id: int, n_image_tokens: int) -> list[int]:
    """The ids the original LLaVA hands its model, with each `<image>` expanded to its tokens.

    Each chunk between `<image>` markers is tokenised on its own, with the tokenizer's special
    tokens; the BOS every chunk then starts with is kept once, at the very start.
    """
    bos = tokenizer.bos_token_id
    ids: list[int] = []
    for i, chunk in enumerate(prompt.split(IMAGE)):
        piece = list(tokenizer(chunk)["input_ids"])
        if bos is not None and piece[:1] == [bos]:
            piece = piece[1:]
            if i == 0:
                ids.append(bos)
        if i:
            ids += [image_token_id] * n_image_tokens
        ids += piece
    return ids
