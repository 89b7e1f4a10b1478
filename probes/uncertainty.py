"""Sequence-level uncertainty measures from the raw logits of a generated answer, in one pass.

    >>> import torch
    >>> logits = torch.zeros(1, 2, 4)                      # uniform over 4 tokens, 2 positions
    >>> m = uncertainty_measures(logits, torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2))
    >>> [round(float(m[k]), 4) for k in ("mean_entropy", "mean_max_prob", "perplexity")]
    [1.3863, 0.25, 4.0]

Inputs, as for `probes.entropy.mean_token_entropy`: logits float [B,T,V], the raw
(`output_logits=True`) logits of the generated positions; token_ids long [B,T], the tokens that
were generated (greedy); mask bool/float [B,T], the counted tokens (every token up to and
including the first end-of-sequence token). Everything is float32 via log_softmax, in nats.

Measures, each float32 [B] (the keys of PROBES):
    mean_entropy         mean token entropy over counted tokens      higher = more uncertain
    max_entropy          largest token entropy                       higher = more uncertain
    first_token_entropy  entropy of the first counted token          higher = more uncertain
    mean_max_prob        mean of the top token's probability         higher = LESS uncertain
    min_max_prob         smallest top-token probability              higher = LESS uncertain
    seq_nll              sum of -log p(token) over counted tokens    higher = more uncertain
    perplexity           exp(mean per-token -log p(token))           higher = more uncertain
seq_nll grows with answer length; perplexity is its length-normalised form.

Non-finite positions: a position whose logits hold a NaN or +inf, or are all -inf, has no
distribution. It is left out of every measure (first_token_entropy takes the first counted
finite position), and "n_nonfinite" (long [B]) counts such positions among the counted ones.
Single -inf logits are tokens of probability 0, as in `token_entropy`. A sequence with no finite
counted token gets NaN for every measure; the caller writes NaN as null.
"""
from __future__ import annotations

import torch

from probes.entropy import finite_positions, token_entropy

PROBES = ("mean_entropy", "max_entropy", "first_token_entropy", "mean_max_prob", "min_max_prob",
          "seq_nll", "perplexity")


def uncertainty_measures(logits: torch.Tensor, token_ids: torch.Tensor,
                         mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """All PROBES plus "n_nonfinite" for a batch: logits [B,T,V], token_ids [B,T], mask [B,T]."""
    if logits.dim() != 3 or token_ids.shape != logits.shape[:2] or mask.shape != logits.shape[:2]:
        raise ValueError(f"expected logits [B,T,V], token_ids and mask [B,T]; got "
                         f"{tuple(logits.shape)}, {tuple(token_ids.shape)}, {tuple(mask.shape)}")
    logits = logits.float()
    finite = finite_positions(logits)  # [B,T]
    counted = mask.bool()
    use = counted & finite
    n = use.sum(-1)  # [B]
    empty = n == 0
    nan = torch.full(n.shape, float("nan"), device=logits.device)

    # zeros at excluded positions, so no NaN leaks through a sum below
    safe = torch.where(finite[..., None], logits, torch.zeros((), device=logits.device))
    logp = torch.log_softmax(safe, dim=-1)
    ent = token_entropy(safe)                                 # [B,T]
    max_p = logp.amax(-1).exp()                               # [B,T]
    ids = torch.where(counted, token_ids.long(), 0)           # padding after EOS may be any id
    nll = -logp.gather(-1, ids[..., None]).squeeze(-1)        # [B,T]

    def mean(v):
        return torch.where(use, v, 0).sum(-1) / n  # 0/0 = NaN for empty rows

    def extreme(v, largest):
        fill = float("-inf") if largest else float("inf")
        w = torch.where(use, v, fill)
        return torch.where(empty, nan, w.amax(-1) if largest else w.amin(-1))

    first = use.int().argmax(-1, keepdim=True)  # first True; 0 for empty rows, masked below
    seq_nll = torch.where(empty, nan, torch.where(use, nll, 0).sum(-1))
    return {
        "mean_entropy": mean(ent),
        "max_entropy": extreme(ent, True),
        "first_token_entropy": torch.where(empty, nan, ent.gather(-1, first).squeeze(-1)),
        "mean_max_prob": mean(max_p),
        "min_max_prob": extreme(max_p, False),
        "seq_nll": seq_nll,
        "perplexity": torch.exp(seq_nll / n),
        "n_nonfinite": (counted & ~finite).sum(-1),
    }
