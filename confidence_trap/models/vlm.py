"""One loaded vision-language model: what the engine asks of it, in one object.

    vlm = confidence_trap.models.load("tiny", prompt_format="llava_v1")
    vlm.prompt("What is shown?")                      # the exact text handed to the tokenizer
    out = vlm.generate(pixels, prompts, 32)            # confidence_trap.models.generation.Generation
    p = vlm.forward(pixels, prompts)                   # one teacher-forced pass over the prompts
    vlm.vocab.size, vlm.image_size, vlm.image_mean, vlm.eos_ids
    model, processor = vlm                             # the transformers parts, for code that drives them

`pixels` are float [B,3,S,S] in [0,1] at `image_size` (confidence_trap.models.images). The
prompt format decides the token ids: the original LLaVA's (its conversations and the plain
prompt, confidence_trap.models.prompts.original_ids) or the processor's. Generation and the
forward pass score the same vocabulary (confidence_trap.models.vocab): the output rows an
ordinary token maps to.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from confidence_trap.models import batching, decoding
from confidence_trap.models.architectures import pixel_layout
from confidence_trap.models.dtypes import vision_dtype_of
from confidence_trap.models.generation import (Generation, encode, eos_token_ids, extra_pad_id, generate, pad_more,
                                              text_dtype)
from confidence_trap.models.prompts import IMAGE, build_prompt, original_ids
from confidence_trap.models.vocab import ScoredVocab, scored_vocab


@dataclass
class PromptPass:
    """One teacher-forced forward pass over a batch of left-padded prompts (no generation)."""
    logits: torch.Tensor     # [B,L,V] raw logits over the scored vocabulary, in the model's dtype
    valid: torch.Tensor      # [B,L] bool: a prompt position (not padding)
    image: torch.Tensor      # [B,L] bool: an image position (the expanded image tokens)


@dataclass
class VLM:
    model: object
    processor: object
    prompt_format: str = "chat_template"
    vocab: ScoredVocab = field(default=None)

    def __post_init__(self):
        if self.vocab is None:
            self.vocab = scored_vocab(self.model, self.processor)

    def __iter__(self):
        """`model, processor = load(...)`: the transformers parts."""
        return iter((self.model, self.processor))

    # --- what it is ------------------------------------------------------------------------
    @property
    def device(self):
        return self.model.device

    @property
    def text_dtype(self) -> torch.dtype:
        return text_dtype(self.model)

    @property
    def original_ids(self) -> bool:
        return original_ids(self.prompt_format)

    @property
    def image_size(self) -> int:
        return pixel_layout(self.processor).side

    @property
    def image_mean(self) -> tuple:
        """The processor's normalization mean (CLIP's for LLaVA-1.5): the blank pass's colour."""
        return tuple(self.processor.image_processor.image_mean)

    @property
    def image_std(self) -> tuple:
        return tuple(self.processor.image_processor.image_std)

    @property
    def eos_ids(self) -> list[int]:
        return eos_token_ids(self.model, self.processor)

    @property
    def image_token_id(self) -> int:
        tok = self.processor.tokenizer
        return getattr(self.processor, "image_token_id", None) or tok.convert_tokens_to_ids(
            getattr(self.processor, "image_token", IMAGE))

    def info(self) -> dict:
        """What run.json says about the loaded model."""
        return {"model_class": type(self.model).__name__,
                "parameters": sum(t.numel() for t in self.model.parameters()),
                "vision_dtype": vision_dtype_of(self.model), "scored_vocab_size": self.vocab.size}

    # --- inputs ----------------------------------------------------------------------------
    def prompt(self, question: str) -> str:
        return build_prompt(self.processor, question, self.prompt_format)

    def encode(self, pixels: torch.Tensor, prompts: list[str]):
        return encode(self.processor, prompts, pixels, self.device, self.text_dtype, self.original_ids)

    def prompt_tokens(self, prompts: list[str], pixels: torch.Tensor) -> int:
        """The longest prompt's length in tokens, image tokens included."""
        return batching.prompt_tokens(self.processor, prompts, pixels, self.original_ids)

    def answer_ids(self, answer: str) -> list[int]:
        """A decoded answer re-tokenised, EOS appended: for a record kept without its ids."""
        ids = self.processor.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return list(ids) + [self.eos_ids[0]]

    # --- passes ----------------------------------------------------------------------------
    def generate(self, pixels: torch.Tensor, prompts: list[str], max_new_tokens: int = 128,
                 pad_left: int = 0, **kwargs) -> Generation:
        """Greedy answers with their raw logits (confidence_trap.models.generation.generate)."""
        return generate(self.model, self.processor, pixels, prompts, max_new_tokens, self.original_ids,
                        self.vocab, pad_left, **kwargs)

    @torch.inference_mode()
    def forward(self, pixels: torch.Tensor, prompts: list[str], pad_left: int = 0) -> PromptPass:
        """One forward pass over the prompts, no generation: the next-token logits at every
        prompt position. Position ids count from each row's first real token, as generation's do,
        so left padding (pad_left more for the null control) moves nothing but rounding."""
        enc = self.encode(pixels, prompts)
        enc = pad_more(enc, pad_left, extra_pad_id(self.model, self.processor))
        mask = enc["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
        logits = self.model(**enc, position_ids=positions, use_cache=False).logits
        return PromptPass(self.vocab.restrict(logits), mask.bool(), enc["input_ids"] == self.image_token_id)

    # --- how a run decodes (confidence_trap.models.decoding) --------------------------------
    def choose_decoding(self, device: str, n_units: int, prompt_tokens: int, new_tokens: int, cfg,
                        stored: dict | None = None, world_size: int = 1, log=None,
                        generates: bool = True) -> decoding.Decoding:
        return decoding.choose(self.model, device, n_units, prompt_tokens, new_tokens, cfg, stored,
                               world_size, log=log, generates=generates)

    def use(self, d: decoding.Decoding) -> None:
        decoding.apply(self.model, d)

    def fall_back(self, d: decoding.Decoding, error: BaseException) -> str:
        return decoding.fall_back(self.model, d, error)


__all__ = ["PromptPass", "VLM"]
