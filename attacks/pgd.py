"""White-box L-inf PGD through the VLM, and the objectives it minimises.

    >>> import torch
    >>> x = torch.rand(2, 3, 32, 32)
    >>> target = torch.full_like(x, 0.5)                       # any differentiable loss of x_adv
    >>> x_adv = pgd_gradient(x, 8 / 255, lambda z: ((z - target) ** 2).flatten(1).mean(1),
    ...                      generator=torch.Generator().manual_seed(0))
    >>> bool(((x_adv - target) ** 2).mean() < ((x - target) ** 2).mean())
    True

Threat model: an L-inf budget ε on the pixels of the image the model sees, after pad-to-square
and resize, before CLIP normalization, in [0,1] pixel units; the attacker sees the model's
gradients (Madry et al. 2018). pgd_gradient knows nothing of models: it is handed a loss
callable. OBJECTIVES are the losses of the logits that the sweep's callable
(confidence_trap/runner/objectives.py) evaluates at the positions of the clean answer, teacher forced:
  entropy_min   mean token entropy (nats): make the model more confident in its answer
  entropy_max   minus the mean token entropy: make it less confident
  ce            minus the mean cross-entropy of the clean answer tokens: move away from it
"""
from __future__ import annotations

import torch

from probes.entropy import token_entropy

from .base import ball, check, project


def _entropy(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    return token_entropy(logits).mean(-1)


def _ce(logits: torch.Tensor, answer: torch.Tensor) -> torch.Tensor:
    target = answer.expand(logits.shape[0], -1)
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(-1)


# name -> loss(logits float [B,T,V], clean answer ids [T]) -> [B], to MINIMISE
OBJECTIVES = {
    "entropy_min": _entropy,
    "entropy_max": lambda logits, answer: -_entropy(logits, answer),
    "ce": lambda logits, answer: -_ce(logits, answer),
}


def _keep_better(best: torch.Tensor, best_loss, loss: torch.Tensor, x_adv: torch.Tensor):
    """Copy into `best` the images whose loss beats best_loss (NaN never wins; a scalar loss
    judges the batch as a whole); returns the new best losses ([B], or [1] for a scalar loss)."""
    value = loss.detach().reshape(-1).float()
    if best_loss is None:
        return value
    better = value < best_loss
    pick = better if better.numel() == best.shape[0] else better.expand(best.shape[0])
    best[pick] = x_adv.detach()[pick]
    return torch.where(better, value, best_loss)


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
    check(images, eps, steps)
    if eps == 0:
        return images
    alpha = 2.5 * eps / steps if alpha is None else alpha
    x = images.detach().clone()  # clone: a tensor made under inference_mode cannot enter autograd
    lo, hi = ball(x, eps)
    if random_start:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        x_adv = project(x + (noise.to(x.dtype) * 2 - 1) * eps, lo, hi)
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
            best_loss = _keep_better(best, best_loss, loss, x_adv)
        if last:
            break
        step = grad.sign().nan_to_num(0.0)  # an FP16 overflow's NaN leaves its pixels in place
        x_adv = project(x_adv.detach() - alpha * step, lo, hi)
    return best if keep_best else x_adv.detach()
