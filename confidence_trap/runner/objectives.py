"""Losses for true-gradient PGD, taken through the whole VLM (vision tower, projector, decoder).

    loss = make_objective("entropy_min", model, processor, prompt, answer_ids)
    x_adv = attacks.pgd.pgd_gradient(x, 8 / 255, loss)

The objectives themselves (functions of the logits) live beside the attack, in attacks/pgd.py
(OBJECTIVES); this module holds the model: it teacher-forces and returns their value for x.

Every objective teacher-forces the clean answer: the prompt with the image, then the clean greedy
answer's tokens (up to and including its end-of-sequence token), and scores the logits at the T
positions that predicted those tokens, over the scored vocabulary (confidence_trap.models.vocab), which are the
very positions and the distribution whose entropy the clean record holds. Returned callables map
x_adv [B,3,S,S] in [0,1] to one loss per image ([B]) to MINIMISE:
  entropy_min   mean token entropy (nats): make the model more confident in its answer
  entropy_max   minus the mean token entropy: make it less confident
  ce            minus the mean cross-entropy of the clean answer tokens: move away from it
pixel_values come from confidence_trap.models.architectures (the same layout generation uses), so the gradient
reaches x; no parameter gets a gradient (requires_grad is switched off for the call). With
`checkpointing` the call runs in training mode with non-reentrant gradient checkpointing
(transformers checkpoints only in training mode; dropout is 0 in LLaVA's towers); the forward
and its backward both happen inside the call, and the model's mode and flags are restored.
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch

from attacks.pgd import OBJECTIVES
from confidence_trap.models.architectures import pixel_layout
from confidence_trap.errors import InputError
from confidence_trap.models.generation import encode, text_dtype
from confidence_trap.models.vocab import scored_vocab


def _checkpointing(model, on: bool) -> None:
    """Non-reentrant activation checkpointing on or off (transformers 5 name, else the 4.x one)."""
    if on:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        # enable() also hooks the input embeddings to require grad (for adapter training) and
        # never unhooks them; pixel gradients do not need it, and a hook per step would pile up
        if hasattr(model, "disable_input_require_grads"):
            model.disable_input_require_grads()
    elif hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


@contextmanager
def attack_mode(model, checkpointing: bool = False):
    """No parameter gradients; training mode + gradient checkpointing when asked; all restored."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    for p in params:
        p.requires_grad_(False)
    if checkpointing:
        _checkpointing(model, True)
        model.train()
    try:
        yield
    finally:
        if checkpointing:
            _checkpointing(model, False)
        model.train(was_training)
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def teacher_forced_inputs(model, processor, prompt: str, answer_ids, side: int | None = None,
                          original_ids: bool = False) -> dict:
    """The prompt's inputs (from confidence_trap.models.generation.encode on a blank image) followed by the
    answer tokens but its last: what a forward needs to predict every answer token.
    Returns the model kwargs without pixel_values, each with batch dimension 1."""
    side = side or pixel_layout(processor).side
    blank = torch.zeros(1, 3, side, side)
    enc = encode(processor, [prompt], blank, model.device, text_dtype(model), original_ids)
    n_prompt = enc["input_ids"].shape[1]
    tail = torch.as_tensor(list(answer_ids)[:-1], dtype=enc["input_ids"].dtype, device=model.device)[None]
    inputs = {}
    for key, value in enc.items():
        if key == "pixel_values" or not torch.is_tensor(value):
            continue
        if value.dim() == 2 and value.shape == (1, n_prompt):  # per-token: extend over the answer
            if key == "input_ids":
                fill = tail
            elif key in ("attention_mask", "token_type_ids"):  # PaliGemma: 1 marks the causal suffix
                fill = torch.ones_like(tail)
            else:  # mm_token_type_ids and the like: answer tokens are text (0)
                fill = torch.zeros_like(tail)
            value = torch.cat([value, fill.to(value.dtype)], dim=1)
        inputs[key] = value
    return inputs


class Objective:
    """loss(x_adv) for one (prompt, clean answer); x_adv [B,3,S,S] in [0,1] -> losses [B]."""

    def __init__(self, name: str, model, layout, inputs: dict, answer_ids, checkpointing: bool = False,
                 vocab=None):
        if name not in OBJECTIVES:
            raise InputError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
        if len(answer_ids) < 1:
            raise InputError("the clean answer has no tokens to attack")
        self.name, self.model, self.layout, self.inputs = name, model, layout, inputs
        self.answer = torch.as_tensor(list(answer_ids), device=model.device)  # [T]
        self.checkpointing = checkpointing
        self.vocab = vocab
        self._keep = "logits_to_keep" in inspect.signature(model.forward).parameters

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [B,3,S,S] -> float32 logits [B,T,V] at the answer positions, over the scored
        vocabulary (no mode changes)."""
        b, t = x.shape[0], self.answer.shape[0]
        inputs = {k: v.expand(b, *v.shape[1:]) if v.shape[0] == 1 else v for k, v in self.inputs.items()}
        pv = self.layout.pixel_values(x.to(self.model.device, torch.float32)).to(text_dtype(self.model))
        extra = {"logits_to_keep": t} if self._keep else {}
        out = self.model(**inputs, pixel_values=pv, use_cache=False, **extra)
        logits = out.logits[:, -t:].float()
        return self.vocab.restrict(logits) if self.vocab is not None else logits

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """[B] losses: each image's mean over the answer positions."""
        return OBJECTIVES[self.name](self.logits(x), self.answer)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _ThroughModel.apply(x, self)
        with torch.no_grad(), attack_mode(self.model):
            return self.loss(x)


class _ThroughModel(torch.autograd.Function):
    """loss(x) whose backward and forward both run inside attack_mode: the gradient is taken in
    the forward, so no model state (frozen parameters, training mode for checkpointing) has to
    outlive the call; a checkpointed layer recomputed after the mode was undone would not match."""

    @staticmethod
    def forward(ctx, x, objective):
        with torch.enable_grad(), attack_mode(objective.model, objective.checkpointing):
            xg = x.detach().requires_grad_(True)
            loss = objective.loss(xg)
            (grad,) = torch.autograd.grad(loss.sum(), xg)  # images are independent: row b is dL_b/dx_b
        ctx.save_for_backward(grad)
        return loss.detach()

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad_out.reshape(-1, *[1] * (grad.dim() - 1)) * grad, None


def make_objective(name: str, model, processor, prompt: str, answer_ids,
                   checkpointing: bool | None = None, original_ids: bool = False,
                   vocab=None) -> Objective:
    """The loss callable for pgd_gradient. checkpointing None: on for CUDA, off for CPU.
    original_ids: tokenise as the original LLaVA (confidence_trap.models.prompts.original_ids); vocab: the
    scored vocabulary (default confidence_trap.models.vocab.scored_vocab)."""
    if checkpointing is None:
        checkpointing = model.device.type == "cuda"
    layout = pixel_layout(processor)
    inputs = teacher_forced_inputs(model, processor, prompt, answer_ids, layout.side, original_ids)
    return Objective(name, model, layout, inputs, answer_ids, checkpointing,
                     vocab or scored_vocab(model, processor))
