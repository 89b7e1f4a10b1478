"""The PGD family of L-infinity pixel perturbations.

    >>> import torch
    >>> x = torch.rand(2, 3, 336, 336)
    >>> x_adv = pgd_proxy(x, 0.3, generator=torch.Generator().manual_seed(0))
    >>> float((x_adv - x).abs().max()) <= 0.3 + 1e-6, float(x_adv.min()) >= 0, float(x_adv.max()) <= 1
    (True, True, True)
    >>> target = torch.full_like(x, 0.5)                       # any differentiable loss of x_adv
    >>> x_adv = pgd_gradient(x, 8 / 255, lambda z: ((z - target) ** 2).mean(),
    ...                      generator=torch.Generator().manual_seed(0))
    >>> bool(((x_adv - target) ** 2).mean() < ((x - target) ** 2).mean())
    True

Threat model: an L-inf budget ε on the pixels of the image the model sees, after pad-to-square
and resize, before CLIP normalisation. ε is in [0,1] pixel units (ε = 0.3 ≈ 77/255).
`pgd_proxy` steps along random signs (no gradients); `pgd_gradient` steps along the sign of the
gradient of a loss it is handed (white-box PGD, Madry et al. 2018). Neither knows about models:
the loss callable (experiments/objectives.py) holds the model.
"""
from __future__ import annotations

import torch


def _check(images: torch.Tensor, eps: float, steps: int) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must lie in [0, 1] (pixel units), got {eps}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """Back into the ε-ball around x, then into the valid pixel range."""
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)


def pgd_proxy(images: torch.Tensor, eps: float, *, steps: int = 10, alpha: float | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """The study's gradient-free PGD-style proxy: PGD's loop with random sign directions.

    images: float [B,3,H,W] in [0,1] at the model's input resolution.
    eps: L-inf budget in [0,1] pixel units. steps: number of signed steps (default 10).
    alpha: step size, default 2.5·eps/steps (Madry et al.'s rule of thumb).
    generator: torch.Generator on the images' device; the same seed gives the same output.
    Starts uniformly in the ε-ball; each step moves alpha along a random ±1 direction, then
    projects onto the ε-ball and clamps to [0,1]. No gradients, so it fits beside a 7B model.
    Returns x_adv with ‖x_adv − x‖∞ ≤ eps (up to float rounding, 1e-6) and 0 ≤ x_adv ≤ 1; eps = 0 returns `images` unchanged.
    """
    _check(images, eps, steps)
    if eps == 0:
        return images
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = images.detach()
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    x_adv = _project(x + (noise.to(x.dtype) * 2 - 1) * eps, x, eps)
    for _ in range(steps):
        direction = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
        x_adv = _project(x_adv + alpha * (direction.to(x.dtype) * 2 - 1), x, eps)
    return x_adv


def pgd_gradient(images: torch.Tensor, eps: float, loss_fn, *, steps: int = 10,
                 alpha: float | None = None, generator: torch.Generator | None = None,
                 random_start: bool = True) -> torch.Tensor:
    """White-box L-inf PGD: the proxy's loop, stepping down the gradient of `loss_fn`.

    images: float [B,3,H,W] in [0,1] at the model's input resolution.
    eps: L-inf budget in [0,1] pixel units. steps: number of signed steps (default 10).
    loss_fn: x_adv [B,3,H,W] in [0,1] -> scalar tensor to MINIMISE (to maximise f, hand -f).
        It must be differentiable in x_adv; whatever it holds (a VLM) should not need
        parameter gradients. Per-sample losses summed or averaged both work: the sign of the
        gradient of one image does not depend on the others.
    alpha: step size, default 2.5·eps/steps. generator: draws the random start (the same
        seed gives the same start as pgd_proxy's).
    random_start: start uniformly in the ε-ball (default), else at the clean image.
    Each step: x_adv <- clip_[0,1](proj_ε(x_adv − alpha·sign(∇ loss_fn(x_adv)))).
    Returns the last iterate, detached: ‖x_adv − x‖∞ ≤ eps (1e-6), 0 ≤ x_adv ≤ 1; eps = 0
    returns `images` unchanged. Gradients are taken under torch.enable_grad(), so it works
    inside no_grad code (not inside torch.inference_mode()).
    """
    _check(images, eps, steps)
    if eps == 0:
        return images
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = images.detach().clone()  # clone: a tensor made under inference_mode cannot enter autograd
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        x_adv = _project(x + (noise.to(x.dtype) * 2 - 1) * eps, x, eps)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(x_adv)
            if loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
            (grad,) = torch.autograd.grad(loss, x_adv)
        step = grad.sign().nan_to_num(0.0)  # an FP16 overflow's NaN leaves its pixels in place
        x_adv = _project(x_adv.detach() - alpha * step, x, eps)
    return x_adv
