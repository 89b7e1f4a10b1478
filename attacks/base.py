"""What the L-inf attacks share: argument checks and the ε-ball, computed once and applied as
one max and one min per step.

    lo, hi = ball(x, eps)           # the ε-ball around x within [0,1]
    project(x_adv, lo, hi)          # back into it, in place
"""
from __future__ import annotations

import numbers

import torch


def check(images: torch.Tensor, eps, steps: int) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
    for e in as_list(eps, images.shape[0]):
        if not 0.0 <= e <= 1.0:
            raise ValueError(f"eps must lie in [0, 1] (pixel units), got {e}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def as_list(value, n: int) -> list:
    """A float, or one value per image, as a list of n values."""
    if isinstance(value, numbers.Real) or (isinstance(value, torch.Tensor) and value.dim() == 0):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {n} images")
    return values


def per_image(values: list, x: torch.Tensor) -> torch.Tensor:
    """[B] Python floats -> [B,1,1,1] in x's dtype, each rounded as a Python scalar operand is."""
    return torch.tensor(values, dtype=torch.float64, device=x.device).to(x.dtype).view(-1, 1, 1, 1)


def ball(x: torch.Tensor, eps) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi): the ε-ball around x within [0,1], so projecting is one max and one min."""
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def project(x_adv: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Back into the ε-ball around x and the valid pixel range, in place."""
    return torch.min(torch.max(x_adv, lo, out=x_adv), hi, out=x_adv)
