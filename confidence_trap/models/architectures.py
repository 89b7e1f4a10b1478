"""How each VLM family turns the attacked image x (float [0,1]) into its pixel inputs, in torch.

    layout = pixel_layout(processor)
    layout.side                 # the square side x must have: 336 for LLaVA-1.5
    layout.processor_kwargs     # what encode() hands the processor beside x
    layout.pixel_values(x)      # x [B,3,S,S] in [0,1] -> the model's pixel_values, differentiable

The processor still tokenises the prompt, expands `<image>` into its vision tokens and returns
the side inputs (image_grid_thw, pixel_attention_mask, image_sizes); confidence_trap.models.generation.encode
then puts in pixel_values built here. So the model sees exactly the float pixels the attack made
(several image processors round-trip through 8-bit PIL images, which would round a 1/255
perturbation away), and a loss taken through the model has a gradient in x.

Families, told apart by the image processor's attributes; the side S is chosen so that the
processor's own geometry acts on an S×S image as identity plus cropping wherever possible:
  plain    LLaVA-1.5, PaliGemma (SigLIP), BLIP-2 ...      normalize -> [B,3,S,S]
  patches  Qwen2-VL, Qwen2.5-VL (merge_size, temporal_patch_size): S a multiple of patch·merge,
           the processor's smart_resize of a DYNAMIC_SIDE square; normalize, cut into patches,
           repeat over the temporal patch -> [B·gh·gw, 3·t·p·p] (the processor's flat layout)
  tiles    Idefics3, SmolVLM (max_image_size M, do_image_splitting): S = M·ceil(L/M) for the
           processor's longest_edge L, cut into M×M tiles plus a global view -> [B,n+1,3,M,M]
  anyres   LLaVA-NeXT (image_grid_pinpoints): S = the largest square pinpoint, a base view then
           P×P tiles -> [B,1+n,3,P,P]
The global/base view is the one place an image is resampled (S -> M or P): torch's antialiased
bicubic here where the processor uses PIL (LANCZOS for Idefics3, BICUBIC for LLaVA-NeXT) on
8-bit pixels; tiles and everything else equal the processor's output up to that rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from confidence_trap.errors import InputError

# Dynamic-resolution models (Qwen2-VL) take any size; they get a square of this side, snapped to
# their patch grid: 448 px is 256 visual tokens for Qwen2-VL (LLaVA-1.5 has 576 at 336 px).
DYNAMIC_SIDE = 448


def _get(obj, key):
    """size/crop_size are dicts or SizeDicts depending on the processor."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _normalize(x: torch.Tensor, ip) -> torch.Tensor:
    mean = torch.tensor(ip.image_mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(ip.image_std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std if getattr(ip, "do_normalize", True) else x


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """[B,3,H,W] -> [B,3,side,side]; identity at the same size, else antialiased bicubic."""
    if x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bicubic", antialias=True,
                         align_corners=False).clamp(0.0, 1.0)


def _tiles(x: torch.Tensor, m: int) -> torch.Tensor:
    """[B,C,H,W] -> [B,(H/m)·(W/m),C,m,m], row by row (transformers' divide_to_patches order)."""
    b, c, h, w = x.shape
    t = x.reshape(b, c, h // m, m, w // m, m).permute(0, 2, 4, 1, 3, 5)
    return t.reshape(b, (h // m) * (w // m), c, m, m)


@dataclass
class PixelLayout:
    family: str
    side: int
    image_processor: object = field(repr=False)
    processor_kwargs: dict = field(default_factory=dict)

    def pixel_values(self, x: torch.Tensor) -> torch.Tensor:
        """x float [B,3,side,side] in [0,1] -> pixel_values as the model takes them."""
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.side, self.side):
            raise ValueError(f"{self.family} layout takes [B,3,{self.side},{self.side}], got {tuple(x.shape)}")
        ip = self.image_processor
        if self.family == "plain":
            return _normalize(x, ip)
        if self.family == "patches":
            return _patchify(_normalize(x, ip), ip.patch_size, ip.merge_size, ip.temporal_patch_size)
        if self.family == "tiles":
            m = int(ip.max_image_size["longest_edge"])
            if self.side > m:  # Idefics3's split_images: the tiles, then the global view
                views = torch.cat([_tiles(x, m), _resize(x, m)[:, None]], dim=1)
            else:
                views = x[:, None]
            return _normalize(views.flatten(0, 1), ip).unflatten(0, views.shape[:2])
        if self.family == "anyres":
            p = _anyres_patch(ip)
            views = torch.cat([_resize(x, p)[:, None], _tiles(x, p)], dim=1)  # base view first
            return _normalize(views.flatten(0, 1), ip).unflatten(0, views.shape[:2])
        raise AssertionError(self.family)


def _patchify(x: torch.Tensor, p: int, merge: int, t: int) -> torch.Tensor:
    """Qwen2-VL's patchify, batched: [B,C,H,W] -> [B·gh·gw, C·t·p·p], merge blocks contiguous."""
    b, c, h, w = x.shape
    gh, gw = h // p, w // p
    x = x.reshape(b, c, gh // merge, merge, p, gw // merge, merge, p)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # b, gh/m, gw/m, m, m, c, p, p
    x = x.unsqueeze(6).expand(*x.shape[:6], t, p, p)  # one frame repeated over the temporal patch
    return x.reshape(b * gh * gw, c * t * p * p)


def _anyres_patch(ip) -> int:
    crop = ip.crop_size
    if crop is not None and _get(crop, "height"):
        return int(_get(crop, "height"))
    return int(_get(ip.size, "height") or _get(ip.size, "shortest_edge"))


def _plain_side(ip) -> int:
    crop = getattr(ip, "crop_size", None)
    if getattr(ip, "do_center_crop", False) and crop and _get(crop, "height"):
        return int(_get(crop, "height"))
    for key in ("shortest_edge", "height"):
        if _get(ip.size, key):
            return int(_get(ip.size, key))
    raise InputError(f"cannot tell the input size of image processor {type(ip).__name__}")


def _smart_side(ip, side: int) -> int:
    """The side Qwen2-VL's smart_resize gives a side×side image (square in, square out)."""
    factor = ip.patch_size * ip.merge_size
    lo = _get(ip.size, "shortest_edge") or getattr(ip, "min_pixels", None) or 56 * 56
    hi = _get(ip.size, "longest_edge") or getattr(ip, "max_pixels", None) or 28 * 28 * 1280
    s = max(factor, round(side / factor) * factor)
    if s * s > hi:
        s = max(factor, math.floor(math.sqrt(hi) / factor) * factor)
    elif s * s < lo:
        s = math.ceil(math.sqrt(lo) / factor) * factor
    return int(s)


def family(ip) -> str:
    if hasattr(ip, "merge_size") and hasattr(ip, "temporal_patch_size"):
        return "patches"
    if hasattr(ip, "max_image_size") and hasattr(ip, "do_image_splitting"):
        return "tiles"
    if getattr(ip, "image_grid_pinpoints", None):
        return "anyres"
    return "plain"


def pixel_layout(processor) -> PixelLayout:
    """The layout of `processor` (an AutoProcessor); see the module docstring."""
    ip = processor.image_processor if hasattr(processor, "image_processor") else processor
    kind = family(ip)
    kwargs = {"do_rescale": False}  # x is already in [0,1]
    if kind == "plain":
        side = _plain_side(ip)
        kwargs.update(do_resize=False, do_center_crop=False)
        if hasattr(ip, "do_pad"):
            kwargs["do_pad"] = False
    elif kind == "patches":
        side = _smart_side(ip, DYNAMIC_SIDE)
        kwargs.update(do_resize=False)  # S is on the patch grid already
    elif kind == "tiles":
        m = int(ip.max_image_size["longest_edge"])
        longest = _get(ip.size, "longest_edge") or m
        side = m * math.ceil(longest / m) if ip.do_image_splitting else m
        kwargs.update(do_resize=False)  # no upscaling to longest_edge: S is its tile grid already
    else:  # anyres
        squares = [int(h) for h, w in ip.image_grid_pinpoints if h == w]
        if not squares:
            raise InputError(f"{type(ip).__name__} has no square grid pinpoint to take a square image at")
        side = max(squares)
    return PixelLayout(kind, side, ip, kwargs)
