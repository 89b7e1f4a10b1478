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

import numbers

import torch


def _check(images: torch.Tensor, eps, steps: int) -> None:
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
    for e in _as_list(eps, images.shape[0]):
        if not 0.0 <= e <= 1.0:
            raise ValueError(f"eps must lie in [0, 1] (pixel units), got {e}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def _as_list(value, n: int) -> list:
    """A float, or one value per image, as a list of n values."""
    if isinstance(value, numbers.Real) or (isinstance(value, torch.Tensor) and value.dim() == 0):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{len(values)} values for {n} images")
    return values


def _per_image(values: list, x: torch.Tensor) -> torch.Tensor:
    """[B] Python floats -> [B,1,1,1] in x's dtype, each rounded as a Python scalar operand is."""
    return torch.tensor(values, dtype=torch.float64, device=x.device).to(x.dtype).view(-1, 1, 1, 1)


def _ball(x: torch.Tensor, eps) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi): the ε-ball around x within [0,1], so projecting is one max and one min."""
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def _project(x_adv: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Back into the ε-ball around x and the valid pixel range, in place."""
    return torch.min(torch.max(x_adv, lo, out=x_adv), hi, out=x_adv)


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
    _check(images, eps, steps)
    n = images.shape[0]
    eps_list = _as_list(eps, n)
    if not any(eps_list):
        return images
    alphas = [2.5 * e / steps for e in eps_list] if alpha is None else _as_list(alpha, n)
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
    e, a = _per_image(eps_list, x), _per_image(alphas, x)
    lo, hi = _ball(x, e)
    x_adv = _project(x + (noise.to(x.dtype) * 2 - 1) * e, lo, hi)
    moves = signs.to(x.dtype).mul_(2 * a).sub_(a)  # ±alpha: 2a − a and −a are exact
    for move in moves:
        _project(x_adv.add_(move), lo, hi)
    return x_adv


def pgd_gradient(images: torch.Tensor, eps: float, loss_fn, *, steps: int = 10,
                 alpha: float | None = None, generator: torch.Generator | None = None,
                 random_start: bool = True, keep_best: bool = True) -> torch.Tensor:
    """White-box L-inf PGD: the proxy's loop, stepping down the gradient of `loss_fn`.

    images: float [B,3,H,W] in [0,1] at the model's input resolution.
    eps: L-inf budget in [0,1] pixel units. steps: number of signed steps (default 10).
    loss_fn: x_adv [B,3,H,W] in [0,1] -> the loss to MINIMISE (to maximise f, hand -f): one
        value per image ([B]), or a scalar for the whole batch. It must be differentiable in
        x_adv; whatever it holds (a VLM) should not need parameter gradients. The gradient is
        taken of the sum, so per-image losses step each image on its own.
    alpha: step size, default 2.5·eps/steps. generator: draws the random start (the same
        seed gives the same start as pgd_proxy's).
    random_start: start uniformly in the ε-ball (default), else at the clean image.
    keep_best: return each image's best iterate under loss_fn (default), as APGD/AutoAttack
        keep their best point (Croce & Hein 2020): with a fixed step the iterates oscillate
        around a minimum, and the last one can be worse than the start. The start and the
        result of every step are candidates (steps + 1 loss evaluations, the last without a
        gradient); ties keep the earlier iterate. With a scalar loss the batch is judged as a
        whole. keep_best=False returns the last iterate (Madry et al. 2018).
    Each step: x_adv <- clip_[0,1](proj_ε(x_adv − alpha·sign(∇ loss_fn(x_adv)))).
    Returns x_adv detached: ‖x_adv − x‖∞ ≤ eps (1e-6), 0 ≤ x_adv ≤ 1; eps = 0 returns `images`
    unchanged. Gradients are taken under torch.enable_grad(), so it works inside no_grad code
    (not inside torch.inference_mode()).
    """
    _check(images, eps, steps)
    if eps == 0:
        return images
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = images.detach().clone()  # clone: a tensor made under inference_mode cannot enter autograd
    lo, hi = _ball(x, eps)
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        x_adv = _project(x + (noise.to(x.dtype) * 2 - 1) * eps, lo, hi)
    else:
        x_adv = x.clone()
    best, best_loss = x_adv.clone(), None
    for k in range(steps + 1):
        last = k == steps
        if last and not keep_best:
            break
        x_adv = x_adv.detach().requires_grad_(not last)
        with torch.enable_grad() if not last else torch.no_grad():
            loss = loss_fn(x_adv)
            if loss.dim() > 1 or (loss.dim() == 1 and loss.shape[0] != x.shape[0]):
                raise ValueError(f"loss_fn must return a scalar or one loss per image, got shape "
                                 f"{tuple(loss.shape)} for {x.shape[0]} images")
            if not last:
                (grad,) = torch.autograd.grad(loss.sum(), x_adv)
        if keep_best:
            value = loss.detach().reshape(-1).float()  # [B], or [1] for a scalar loss
            if best_loss is None:
                best_loss = value
            else:
                better = value < best_loss  # NaN never wins
                best_loss = torch.where(better, value, best_loss)
                pick = better if better.numel() == x.shape[0] else better.expand(x.shape[0])
                best[pick] = x_adv.detach()[pick]
        if last:
            break
        step = grad.sign().nan_to_num(0.0)  # an FP16 overflow's NaN leaves its pixels in place
        x_adv = _project(x_adv.detach() - alpha * step, lo, hi)
    return best if keep_best else x_adv.detach()
