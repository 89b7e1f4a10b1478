"""Batched greedy generation that keeps the raw logits, over the scored vocabulary.

    out = generate(model, processor, pixels, prompts, max_new_tokens=128)
    out.answers, out.logits  # list[str], [B,T,V] raw logits of the generated positions

`pixels` are float [B,3,H,W] in [0,1] at the model's input size (see confidence_trap.models.images); the
processor expands `<image>` into the vision tokens, and pixel_values are laid out from `pixels`
in torch (confidence_trap.models.architectures: normalized, no second resize or rescale). With
`original_ids=True` (the original LLaVA conversations, confidence_trap.models.prompts.original_ids) the token
ids are built as the original LLaVA builds them (confidence_trap.models.prompts.llava_input_ids) instead of by
the processor. Decoding and scoring use confidence_trap.models.vocab.scored_vocab: V is the scored vocabulary
(32000 for LLaVA-1.5, whose llava-hf output layer has 32064 rows).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    answers: list[str]
    token_ids: torch.Tensor  # [B,T] generated tokens (padding after the end of each sequence)
    logits: torch.Tensor     # [B,T,V] raw logits (float32, as generate keeps them) over the scored vocabulary
    mask: torch.Tensor       # [B,T] bool: counted tokens, up to and including the first EOS


def eos_token_ids(model, processor) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = processor.tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos)


def counted_mask(token_ids: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    """[B,T] -> bool [B,T]: every token up to and including the first EOS, none after it."""
    is_eos = torch.isin(token_ids, torch.tensor(eos_ids, device=token_ids.device))
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()  # EOS strictly before t
    return eos_before == 0


def text_dtype(model) -> torch.dtype:
    """The dtype of the language model (the output layer's): the dtype pixel_values are handed
    in, as the original LLaVA hands its images in FP16 even where its vision tower runs in
    float32 (models.load's vision_dtype)."""
    return model.get_output_embeddings().weight.dtype


def _original_ids(processor, prompts: list[str], enc) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask as the original LLaVA builds them, left padded; each image
    expanded to as many tokens as the processor expands it to."""
    from confidence_trap.models.prompts import IMAGE, llava_input_ids

    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids(getattr(processor, "image_token", IMAGE))
    rows = []
    for prompt, ids in zip(prompts, enc["input_ids"]):
        n_images = prompt.count(IMAGE)
        n_tokens = int((ids == image_id).sum()) // max(n_images, 1)
        rows.append(llava_input_ids(tok, prompt, image_id, n_tokens))
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):  # left padding, as batched decoder-only generation needs
        input_ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return input_ids, mask


def encode(processor, prompts: list[str], pixels: torch.Tensor, device, dtype, original_ids: bool = False):
    """Tokenise prompts (left padded) and lay out pixels already at the model's input size.

    The processor expands `<image>` into vision tokens and returns the side inputs
    (image_grid_thw, pixel_attention_mask, image_sizes ...); with `original_ids` the ids are
    rebuilt as the original LLaVA tokenises (see the module docstring). pixel_values are built
    from `pixels` in torch by the model family's layout (confidence_trap.models.architectures): normalized, and
    cut into patches or tiles where the family does. So they keep the attack's float pixels, and
    carry gradients to `pixels` when it requires them (true-gradient PGD).
    """
    from confidence_trap.models.architectures import pixel_layout
    from confidence_trap.errors import InputError

    layout = pixel_layout(processor)
    processor.tokenizer.padding_side = "left"  # batched decoder-only generation needs left padding
    enc = processor(text=list(prompts), images=list(pixels.detach().float().cpu()), padding=True,
                    return_tensors="pt", **layout.processor_kwargs)
    if original_ids:
        if set(enc) - {"input_ids", "attention_mask", "pixel_values"}:
            raise InputError(f"the original LLaVA token ids apply to LLaVA-1.5-style processors; this one "
                             f"returns {', '.join(sorted(enc))}: use --prompt-format chat_template")
        enc["input_ids"], enc["attention_mask"] = _original_ids(processor, prompts, enc)
    enc = enc.to(device)
    if "pixel_values" in enc:
        pv = layout.pixel_values(pixels.to(device=device, dtype=torch.float32))
        if pv.shape != enc["pixel_values"].shape:
            raise InputError(f"{type(processor.image_processor).__name__} lays out pixel_values as "
                             f"{tuple(enc['pixel_values'].shape)}, the {layout.family} layout as "
                             f"{tuple(pv.shape)}: confidence_trap/models/architectures.py needs this family")
        enc["pixel_values"] = pv.to(dtype) if dtype is not None else pv
    return enc


def extra_pad_id(model, processor) -> int:
    """The id pad_more pads with: the tokenizer's padding token, else the first EOS, and never an
    id the model could count as an image token (that would break the image layout)."""
    eos = eos_token_ids(model, processor)[0]
    pad = processor.tokenizer.pad_token_id
    pad = eos if pad is None else pad
    return eos if pad == getattr(processor, "image_token_id", None) else pad


def pad_more(enc, n: int, pad_id: int):
    """`n` more left-padding positions on every row of a batch (masked out), so the same
    prompts run at another padded length: the null control's other batch composition."""
    if n <= 0:
        return enc
    ids, mask = enc["input_ids"], enc["attention_mask"]
    enc["input_ids"] = torch.cat([torch.full((ids.shape[0], n), pad_id, dtype=ids.dtype, device=ids.device), ids], 1)
    enc["attention_mask"] = torch.cat([torch.zeros((mask.shape[0], n), dtype=mask.dtype, device=mask.device), mask], 1)
    return enc


@torch.inference_mode()
def generate(model, processor, pixels: torch.Tensor, prompts: list[str], max_new_tokens: int = 128,
             original_ids: bool = False, vocab=None, pad_left: int = 0, **generate_kwargs) -> Generation:
    """Greedy decoding of one answer per (image, prompt) pair, with the raw logits kept
    (do_sample=True with temperature=... samples instead, over the same vocabulary).

    vocab: a confidence_trap.models.vocab.ScoredVocab (default: scored_vocab(model, processor)); its left-out
    rows are never picked and not in `logits`. pad_left: that many extra masked padding
    positions before every prompt (the answers are the same up to float rounding)."""
    from transformers import LogitsProcessorList

    from confidence_trap.models.vocab import scored_vocab, suppressor

    vocab = vocab or scored_vocab(model, processor)
    enc = encode(processor, prompts, pixels, model.device, text_dtype(model), original_ids)
    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos_token_ids(model, processor)[0]
    enc = pad_more(enc, pad_left, extra_pad_id(model, processor))
    processors = LogitsProcessorList([suppressor(vocab)] if vocab.excluded else [])
    processors.extend(generate_kwargs.pop("logits_processor", []))
    sampling = generate_kwargs.pop("do_sample", False)  # greedy unless asked (--samples)
    out = model.generate(**enc, do_sample=sampling, num_beams=1, max_new_tokens=max_new_tokens,
                         return_dict_in_generate=True, output_logits=True, pad_token_id=pad,
                         logits_processor=processors, **generate_kwargs)
    token_ids = out.sequences[:, enc["input_ids"].shape[1]:]
    logits = vocab.restrict(torch.stack(out.logits, dim=1))  # T × [B,rows] -> [B,T,V]
    mask = counted_mask(token_ids, eos_token_ids(model, processor))
    answers = [a.strip() for a in tok.batch_decode(token_ids, skip_special_tokens=True)]
    return Generation(answers=answers, token_ids=token_ids, logits=logits, mask=mask)
