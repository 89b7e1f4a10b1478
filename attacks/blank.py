"""The prior pass: an image that carries no information, so the answer is the language prior's.

    >>> import torch
    >>> x = torch.rand(2, 3, 8, 8)
    >>> b = blank(x, (0.48145466, 0.4578275, 0.40821073))
    >>> tuple(b.shape), round(float(b[1, 0].std()), 6), round(float(b[0, 2, 0, 0]) * 255, 4)
    ((2, 3, 8, 8), 0.0, 104.0)

Every pixel takes the model's padding colour: its image mean stored as 8-bit, int(255·m)/255,
the colour the original LLaVA pads non-square images with (`expand2square` with
`tuple(int(x * 255) for x in image_mean)`; confidence_trap/models/images.py pads alike). So the blank image is a
photo of nothing but padding. It has the model's input size and goes through the same pixel path
(normalize, vision tower) as every other input. After normalization it is near zero but not zero,
which matters: Idefics3-family models drop an all-zero image as batch padding. No level, no
randomness: one blank answer per (image, question) item is that item's prior answer, and its
mean token entropy is H_prior (confidence_trap/analysis/prior.py).
"""
from __future__ import annotations

import torch


def blank(images: torch.Tensor, mean) -> torch.Tensor:
    """images float [B,3,H,W] in [0,1] -> a uniform image of the padding colour of `mean`
    (3 floats in [0,1]), same shape, dtype and device."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
    mean = [float(m) for m in mean]
    if len(mean) != 3 or not all(0 <= m <= 1 for m in mean):
        raise ValueError(f"mean must be 3 values in [0, 1], got {mean}")
    colour = torch.tensor([int(m * 255) / 255 for m in mean], dtype=images.dtype, device=images.device)
    return colour.view(1, 3, 1, 1).expand_as(images).clone()
