"""The study's gradient-free PGD-style proxy: PGD's loop with random sign directions.

    >>> import torch
    >>> x = torch.rand(2, 3, 336, 336)
    >>> x_adv = pgd_proxy(x, 0.3, generator=torch.Generator().manual_seed(0))
    >>> float((x_adv - x).abs().max()) <= 0.3 + 1e-6, float(x_adv.min()) >= 0, float(x_adv.max()) <= 1
    (True, True, True)

Threat model: an L-inf budget ε on the pixels of the image the model sees, after pad-to-square
and resize, before CLIP normalization. ε is in [0,1] pixel units: ε = 0.3 (≈77/255). The
directions ignore the model, so this is dense random noise with a PGD-shaped schedule, not an
adversarial attack.
"""
from __future__ import annotations

import torch

from .base import as_list, ball, check, per_image, project


def pgd_proxy(images: torch.Tensor, eps, *, steps: int = 10, alpha: float | None = None,
              generator=None) -> torch.Tensor:
    """The study's gradient-free PGD-style proxy: PGD's loop with random sign directions.

    images: float [B,3,H,W] in [0,1] at the model's input resolution.
    eps: L-inf budget in [0,1] pixel units, one float or one per image.
    steps: number of signed steps (default 10).
    alpha: step size, default 2.5·eps/steps (Madry et al.'s rule of thumb), per image.
    generator: a torch.Generator on the images' device, or a list of one per image (then each
        image's draws come from its own generator alone, so an image's perturbation does not
        depend on the batch it is in). The same seeds give the same output.
    Starts uniformly in the ε-ball; each step moves alpha along a random ±1 direction, then
    projects onto the ε-ball and clamps to [0,1]. No gradients, so it fits beside a 7B model.
    The whole batch steps at once; the draws are taken first, each generator's in the order
    of the loop (start, then step 1, 2, ...), so a batch of one gives what it always has.
    Returns x_adv with ‖x_adv − x‖∞ ≤ eps (up to float rounding, 1e-6) and 0 ≤ x_adv ≤ 1;
    eps = 0 for every image returns `images` unchanged.
    """
    check(images, eps, steps)
    n = images.shape[0]
    eps_list = as_list(eps, n)
    if not any(eps_list):
        return images
    alphas = [2.5 * e / steps for e in eps_list] if alpha is None else as_list(alpha, n)
    x = images.detach()
    kw = dict(device=x.device)
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"{len(generator)} generators for {n} images")
        one = (1, *x.shape[1:])
        noise = torch.cat([torch.rand(one, generator=g, dtype=torch.float32, **kw) for g in generator])
        signs = torch.cat([torch.randint(0, 2, (steps, *one), generator=g, dtype=torch.uint8, **kw)
                           for g in generator], dim=1)
    else:
        noise = torch.rand(x.shape, generator=generator, dtype=torch.float32, **kw)
        signs = torch.randint(0, 2, (steps, *x.shape), generator=generator, dtype=torch.uint8, **kw)
    e, a = per_image(eps_list, x), per_image(alphas, x)
    lo, hi = ball(x, e)
    x_adv = project(x + (noise.to(x.dtype) * 2 - 1) * e, lo, hi)
    moves = signs.to(x.dtype).mul_(2 * a).sub_(a)  # ±alpha: 2a − a and −a are exact
    for move in moves:
        project(x_adv.add_(move), lo, hi)
    return x_adv
