"""The perturbation the study's own code ran, on the processor's normalized tensor.

    >>> import torch
    >>> mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    >>> x = torch.tensor([0.25, 0.5, 0.7, 1.0]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
    >>> original(x, "clamp", [None], mean, std)[0, 0, 0].tolist()   # normalized -1, 0, 0.8, 2
    [0.5, 0.5, 0.699999988079071, 0.75]
    >>> sigma(0.3)
    0.03

The study's `experiments/entropy_analysis.py` (abishekgiri/vlm-failure-modes, b794d70) draws
`noise = randn_like(image_tensor) * σ` and takes `clamp(image_tensor + noise, 0, 1)`, where
`image_tensor` is already CLIP-normalized, x_norm = (x - mean) / std (about -1.79 to 2.13), and
its results file pairs ε 0.1 with σ 0.01 and ε 0.3 with σ 0.03: σ = ε/10, in normalized units.
Three attacks take it apart (the level is ε; σ = sigma(ε)):
  noise            clamp(x_norm + σ·z, 0, 1), the original
  clamp            clamp(x_norm, 0, 1), the clamp alone: no level, no randomness. It sets every
                   value below the mean colour to the mean and every value above mean + 1 std to
                   mean + 1 std: on the LLaVA logo at 336 px 35.4 % of the values (24.9 % below
                   0, 10.5 % above 1), L-inf 123/255 (tests/test_original.py computes it)
  noise_unclamped  x_norm + σ·z, the noise alone
The engine's contract is x_adv in [0,1] pixel units, so each maps back, x = x_norm·std + mean.
For noise and clamp the result lies in [mean, mean + std], inside [0, 1] for any processor whose
mean + std <= 1 (CLIP's: at most 0.75). The noise alone is σ·std·z in pixel units (std 0.0027 at
σ 0.01 for CLIP); it is then clipped to [0, 1] to stay an image. The clip binds where the noise
pushes a value past 0 or 1, i.e. at the logo's white and black: at 336 px on 2.2 %, 3.0 % and
3.7 % of the values at σ 0.01, 0.03 and 0.05, at the embedded model's 48 px on 1.4 %, 2.0 % and
2.7 % (one draw; tests/test_original.py checks where it binds against numpy).
The math is float32; the original added the noise in FP16 (its image tensor's dtype), which
rounds x_norm + σ·z to about 3 significant digits before the model sees it.
"""
from __future__ import annotations

import torch

KINDS = ("noise", "clamp", "noise_unclamped")


def sigma(epsilon) -> float:
    """The noise's std in normalized units for the level ε: the original's pairing σ = ε/10."""
    return float(epsilon) / 10


def original(x: torch.Tensor, kind: str, levels, mean, std, generators=None) -> torch.Tensor:
    """x float [B,3,H,W] in [0,1] -> x_adv [B,3,H,W] in [0,1], float32.

    kind: "noise", "clamp" or "noise_unclamped"; levels: one ε per image (ignored by "clamp");
    mean, std: the processor's normalization (3 floats each); generators: one torch.Generator
    per image for z ~ N(0, 1) (not used by "clamp")."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be [B,3,H,W], got {tuple(x.shape)}")
    m = torch.tensor([float(v) for v in mean], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor([float(v) for v in std], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    z = (x.float() - m) / s
    if kind != "clamp":
        if len(levels) != x.shape[0] or generators is None or len(generators) != x.shape[0]:
            raise ValueError(f"{kind} needs one level and one generator per image")
        noise = torch.stack([torch.randn(x.shape[1:], generator=g, device=x.device) for g in generators])
        z = z + torch.tensor([sigma(e) for e in levels], device=x.device).view(-1, 1, 1, 1) * noise
    if kind != "noise_unclamped":
        z = z.clamp(0.0, 1.0)
    return (z * s + m).clamp(0.0, 1.0).to(x.dtype)
