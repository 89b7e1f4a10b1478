"""Token-level entropy of a generated answer, from raw logits.

    >>> import torch
    >>> token_entropy(torch.zeros(4))          # uniform over 4 tokens: log 4 nats
    tensor(1.3863)

Entropy is computed from the raw logits (`generate(..., output_logits=True)`), never from the
processed `scores`, which carry temperature/top-k edits and can hold -inf. Always float32.
"""
import torch


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension: [..., V] -> [...], float32."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    # p·log p with p = 0 is 0. The guard sits on log p, not on the product: a where() around
    # exp(logp)·logp would still backpropagate 0·(-inf) = nan from a -inf logit (an excluded
    # vocabulary row) into every position, and a gradient attack would stand still.
    plogp = logp.exp() * torch.where(logp.isneginf(), torch.zeros_like(logp), logp)
    return -plogp.sum(dim=-1)


def finite_positions(logits: torch.Tensor) -> torch.Tensor:
    """[..., V] -> [...] bool: positions whose logits define a distribution.

    FP16 overflow shows as NaN or +inf; a row of -inf has no mass. Single -inf logits are fine
    (probability 0). Positions that fail are counted, never averaged in.
    """
    return ~(logits.isnan() | logits.isposinf()).any(-1) & logits.isfinite().any(-1)


def mean_token_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean entropy over each sequence's counted tokens: logits [B,T,V], mask [B,T] -> [B].

    `mask` marks the counted tokens: every generated token up to and including the first
    end-of-sequence token, nothing after it (see `confidence_trap.models.generation.counted_mask`).
    """
    h = token_entropy(logits)  # [B,T]
    m = mask.to(h.dtype)
    return (h * m).sum(-1) / m.sum(-1).clamp_min(1)
