"""Dtypes: the model's (FP16 on CUDA, float32 on CPU) and the vision tower's (float32 for
LLaVA-1.5 on CUDA, as the original runs it).

    parse_dtype("auto", "cuda")                                                   # torch.float16
    vision_dtype_for("auto", "llava-hf/llava-1.5-7b-hf", "cuda", torch.float16)   # torch.float32
    set_vision_dtype(model, torch.float32); vision_dtype_of(model)                # "float32"
"""
from __future__ import annotations

import torch

from confidence_trap.errors import InputError
from confidence_trap.models.prompts import is_llava_1_5


def default_dtype(device: str) -> torch.dtype:
    """FP16 on CUDA (a T4 has no bf16), float32 on CPU."""
    return torch.float16 if str(device).startswith("cuda") else torch.float32


DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}


def parse_dtype(dtype, device: str) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose from auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def vision_dtype_for(vision_dtype, source: str, device: str, dtype: torch.dtype,
                     revision: str | None = None) -> torch.dtype:
    """The vision tower's dtype. auto: float32 for LLaVA-1.5 on CUDA (a checkpoint told by its
    files, confidence_trap/models/identify.py), else the model's dtype.

    The original `load_pretrained_model` (llava/model/builder.py) loads CLIP with
    device_map="auto" by default and casts it to FP16 only when device_map != "auto", so on its
    usual path CLIP runs in float32 and its features are cast to FP16 before the projector
    (docs/LLAVA_NOTES.md). That costs about 0.6 GB more than an all-FP16 model (0.30 B
    parameters at 4 bytes instead of 2)."""
    if vision_dtype is None or vision_dtype == "auto":
        llava = str(device).startswith("cuda") and is_llava_1_5(source, revision)
        return torch.float32 if llava else dtype
    return parse_dtype(vision_dtype, device)


def vision_parts(model):
    """(vision tower, projector) of a Llava-family model, or (None, None)."""
    inner = getattr(model, "model", model)
    return getattr(inner, "vision_tower", None), getattr(inner, "multi_modal_projector", None)


def set_vision_dtype(model, dtype: torch.dtype) -> None:
    """Run the vision tower in `dtype`; its features are cast to the projector's dtype before
    the projector, as the original's CLIPVisionTower casts them back to the images' dtype.
    (CLIP casts its own input to its weights' dtype.)"""
    tower, projector = vision_parts(model)
    if tower is None or projector is None:
        raise InputError(f"--vision-dtype applies to Llava-family checkpoints (a vision_tower and a "
                         f"multi_modal_projector); {type(model).__name__} has none: leave it at auto")
    tower.to(dtype)
    if not getattr(projector, "_casts_input", False):
        def cast(module, args):
            w = next(module.parameters())
            return tuple(a.to(w.dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

        projector.register_forward_pre_hook(cast)
        projector._casts_input = True


def vision_dtype_of(model) -> str:
    """The vision tower's dtype as run.json writes it ("float32"), or the model's."""
    tower, _ = vision_parts(model)
    p = next((tower or model).parameters())
    return str(p.dtype).split(".")[-1]
