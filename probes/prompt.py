"""Teacher-forced entropy over the prompt: the study's own code's measure, and its split.

    >>> import torch
    >>> logits = torch.zeros(1, 3, 4)                           # uniform over 4 tokens everywhere
    >>> logits[0, 2, 0] = 50.0                                  # ... but the last position is sure
    >>> s = prompt_stats(logits, torch.ones(1, 3, dtype=torch.bool), torch.tensor([[False, True, False]]))
    >>> [round(float(f(s)[0]), 4) for f in (prompt_entropy, prompt_entropy_image, prompt_entropy_text,
    ...                                     prompt_entropy_last)]
    [0.9242, 1.3863, 0.6931, 0.0]

The study's `experiments/entropy_analysis.py` runs `model(input_ids, images=...)` once over the
prompt (no generation) and averages the softmax entropy of every position's next-token
distribution. For LLaVA-1.5 and its one image that is 586 positions, 576 of them the image's:
the average is mostly the language model's prediction at image positions, and only the last
position's distribution is about the answer (its first token). The probes, all in nats over the
scored vocabulary (confidence_trap.models.vocab), float32 softmax:
    prompt_entropy        mean over every prompt position (the original's number)
    prompt_entropy_image  mean over the image positions (the expanded image tokens)
    prompt_entropy_text   mean over the rest (BOS, the text, the last position)
    prompt_entropy_last   the last position's entropy
The original computes -sum p·log(p + 1e-12); this is the exact entropy. The two differ by
sum p·log(1 + 1e-12/p) <= V·1e-12 nats (3e-8 for 32,000 tokens): nothing a 4-digit figure shows.
Padding positions are left out, and so is a position whose logits are not finite (FP16
overflow), as for the answer's tokens (probes/entropy.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from probes.entropy import finite_positions, token_entropy


@dataclass
class PromptStats:
    """Per-position statistics of a batch of prompts, computed once for every prompt probe."""
    entropy: torch.Tensor   # [B,L] next-token entropy (nats), float32
    valid: torch.Tensor     # [B,L] bool: a prompt position (not padding)
    use: torch.Tensor       # [B,L] bool: a prompt position with finite logits
    image: torch.Tensor     # [B,L] bool: an image position
    last: torch.Tensor      # [B] bool: the last position is usable

    def mean(self, where: torch.Tensor) -> torch.Tensor:
        keep = self.use & where
        return torch.where(keep, self.entropy.double(), 0).sum(-1) / keep.sum(-1)  # 0/0 = NaN


def prompt_stats(logits: torch.Tensor, valid: torch.Tensor, image: torch.Tensor) -> PromptStats:
    """logits [B,L,V] (any float dtype), valid and image [B,L] bool, left padded (the last
    position is every row's last prompt token) -> PromptStats, one row at a time so the float32
    copy of the logits is one prompt's."""
    rows = []
    for b in range(logits.shape[0]):
        row = logits[b].float()
        finite = finite_positions(row)
        safe = torch.where(finite[:, None], row, torch.zeros((), device=row.device))
        rows.append((token_entropy(safe), finite))
    entropy = torch.stack([h for h, _ in rows])
    use = valid.bool() & torch.stack([f for _, f in rows])
    return PromptStats(entropy, valid.bool(), use, image.bool(), use[:, -1])


def prompt_entropy(s: PromptStats) -> torch.Tensor:
    return s.mean(torch.ones_like(s.use))


def prompt_entropy_image(s: PromptStats) -> torch.Tensor:
    return s.mean(s.image)


def prompt_entropy_text(s: PromptStats) -> torch.Tensor:
    return s.mean(~s.image)


def prompt_entropy_last(s: PromptStats) -> torch.Tensor:
    return torch.where(s.last, s.entropy[:, -1].double(), float("nan"))


def counts(s: PromptStats) -> dict[str, list[int]]:
    """The record's position counts: n_positions (prompt positions) and n_image_positions."""
    return {"n_positions": s.valid.sum(-1).tolist(), "n_image_positions": (s.valid & s.image).sum(-1).tolist()}
