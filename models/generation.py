"""Batched greedy generation that keeps the raw logits.

    out = generate(model, processor, pixels, prompts, max_new_tokens=32)
    out.answers, out.logits  # list[str], [B,T,V] raw logits of the generated positions

`pixels` are float [B,3,H,W] in [0,1] at the model's input size (see models.images); the
processor expands `<image>` into the vision tokens, and pixel_values are laid out from `pixels`
in torch (models.architectures: normalised, no second resize or rescale).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Generation:
    answers: list[str]
    token_ids: torch.Tensor  # [B,T] generated tokens (padding after the end of each sequence)
    logits: torch.Tensor     # [B,T,V] raw logits, model dtype, on the model's device
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


def encode(processor, prompts: list[str], pixels: torch.Tensor, device, dtype):
    """Tokenise prompts (left padded) and lay out pixels already at the model's input size.

    The processor expands `<image>` into vision tokens and returns the side inputs
    (image_grid_thw, pixel_attention_mask, image_sizes ...); pixel_values are built from
    `pixels` in torch by the model family's layout (models.architectures): normalised, and cut
    into patches or tiles where the family does. So they keep the attack's float pixels, and
    carry gradients to `pixels` when it requires them (true-gradient PGD).
    """
    from .architectures import pixel_layout
    from .errors import InputError

    layout = pixel_layout(processor)
    processor.tokenizer.padding_side = "left"  # batched decoder-only generation needs left padding
    enc = processor(text=list(prompts), images=list(pixels.detach().float().cpu()), padding=True,
                    return_tensors="pt", **layout.processor_kwargs)
    enc = enc.to(device)
    if "pixel_values" in enc:
        pv = layout.pixel_values(pixels.to(device=device, dtype=torch.float32))
        if pv.shape != enc["pixel_values"].shape:
            raise InputError(f"{type(processor.image_processor).__name__} lays out pixel_values as "
                             f"{tuple(enc['pixel_values'].shape)}, the {layout.family} layout as "
                             f"{tuple(pv.shape)}: models/architectures.py needs this family")
        enc["pixel_values"] = pv.to(dtype) if dtype is not None else pv
    return enc


@torch.inference_mode()
def generate(model, processor, pixels: torch.Tensor, prompts: list[str], max_new_tokens: int = 32,
             **generate_kwargs) -> Generation:
    """Greedy decoding of one answer per (image, prompt) pair, with the raw logits kept."""
    enc = encode(processor, prompts, pixels, model.device, model.dtype)
    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos_token_ids(model, processor)[0]
    out = model.generate(**enc, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                         return_dict_in_generate=True, output_logits=True, pad_token_id=pad,
                         **generate_kwargs)
    token_ids = out.sequences[:, enc["input_ids"].shape[1]:]
    logits = torch.stack(out.logits, dim=1)  # T × [B,V] -> [B,T,V]
    mask = counted_mask(token_ids, eos_token_ids(model, processor))
    answers = [a.strip() for a in tok.batch_decode(token_ids, skip_special_tokens=True)]
    return Generation(answers=answers, token_ids=token_ids, logits=logits, mask=mask)
