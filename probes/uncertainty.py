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

Measures, each float32 [B] (mean_entropy: float64, its float32 token entropies summed in token
order, so that it is exactly the mean of a record's token_entropies) (the "logits" probes of the
registry in probes/__init__.py, whose functions below each reduce the per-position statistics of
`token_stats`):
    mean_entropy         mean token entropy over counted tokens      higher = more uncertain
    answer_entropy       the same without the step that emits EOS    higher = more uncertain
    max_entropy          largest token entropy                       higher = more uncertain
    first_token_entropy  entropy of the first counted token          higher = more uncertain
    mean_max_prob        mean of the top token's probability         higher = LESS uncertain
    min_max_prob         smallest top-token probability              higher = LESS uncertain
    seq_nll              sum of -log p(token) over counted tokens    higher = more uncertain
    perplexity           exp(mean per-token -log p(token))           higher = more uncertain
seq_nll grows with answer length; perplexity is its length-normalized form. answer_entropy needs
the end-of-sequence ids (`eos_ids`): an answer cut at max_new_tokens keeps every token, and an
empty answer (EOS first) has none left, so NaN. The study does not say which of the two it
averaged; mean_entropy (with the EOS step, as generated) is this project's headline.

Non-finite positions: a position whose logits hold a NaN or +inf, or are all -inf, has no
distribution. It is left out of every measure (first_token_entropy takes the first counted
finite position), and "n_nonfinite" (long [B]) counts such positions among the counted ones.
Single -inf logits are tokens of probability 0, as in `token_entropy`. A sequence with no finite
counted token gets NaN for every measure; the caller writes NaN as null.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from probes.entropy import finite_positions, token_entropy


@dataclass
class TokenStats:
    """Per-position statistics of a batch of answers, computed once for every logits probe."""
    entropy: torch.Tensor   # [B,T] token entropy (nats)
    max_prob: torch.Tensor  # [B,T] probability of the top token
    nll: torch.Tensor       # [B,T] -log p(generated token)
    use: torch.Tensor       # [B,T] bool: counted and finite
    n: torch.Tensor         # [B] positions used
    empty: torch.Tensor     # [B] bool: no position used
    nan: torch.Tensor       # [B] NaN, for empty rows
    eos: torch.Tensor       # [B,T] bool: counted positions that emitted an end-of-sequence token

    def mean(self, v):
        return torch.where(self.use, v, 0).sum(-1) / self.n  # 0/0 = NaN for empty rows

    def extreme(self, v, largest: bool):
        w = torch.where(self.use, v, float("-inf") if largest else float("inf"))
        return torch.where(self.empty, self.nan, w.amax(-1) if largest else w.amin(-1))


def token_stats(logits: torch.Tensor, token_ids: torch.Tensor, mask: torch.Tensor, eos_ids=()):
    """(TokenStats, n_nonfinite [B]) for logits [B,T,V], token_ids [B,T], mask [B,T]; eos_ids:
    the end-of-sequence token ids (for answer_entropy)."""
    if logits.dim() != 3 or token_ids.shape != logits.shape[:2] or mask.shape != logits.shape[:2]:
        raise ValueError(f"expected logits [B,T,V], token_ids and mask [B,T]; got "
                         f"{tuple(logits.shape)}, {tuple(token_ids.shape)}, {tuple(mask.shape)}")
    logits = logits.float()
    finite = finite_positions(logits)  # [B,T]
    counted = mask.bool()
    use = counted & finite
    n = use.sum(-1)
    # zeros at excluded positions, so no NaN leaks through a sum below
    safe = torch.where(finite[..., None], logits, torch.zeros((), device=logits.device))
    logp = torch.log_softmax(safe, dim=-1)
    ids = torch.where(counted, token_ids.long(), 0)  # padding after EOS may be any id
    stats = TokenStats(entropy=token_entropy(safe), max_prob=logp.amax(-1).exp(),
                       nll=-logp.gather(-1, ids[..., None]).squeeze(-1), use=use, n=n, empty=n == 0,
                       nan=torch.full(n.shape, float("nan"), device=logits.device),
                       eos=counted & torch.isin(token_ids, torch.tensor(list(eos_ids), dtype=torch.long,
                                                                        device=token_ids.device)))
    return stats, (counted & ~finite).sum(-1)


def mean_entropy(t: TokenStats):
    """The mean of the used token entropies, summed in float64 in token order: the very number
    a record's token_entropies list averages to, so the record's mean_entropy is computed once."""
    rows = [[e for e, u in zip(es, us) if u] for es, us in zip(t.entropy.tolist(), t.use.tolist())]
    return torch.tensor([sum(r) / len(r) if r else float("nan") for r in rows], dtype=torch.float64)


def answer_entropy(t: TokenStats):
    keep = t.use & ~t.eos
    return torch.where(keep, t.entropy, 0).sum(-1) / keep.sum(-1)  # 0/0 = NaN: nothing left


def max_entropy(t: TokenStats):
    return t.extreme(t.entropy, True)


def first_token_entropy(t: TokenStats):
    first = t.use.int().argmax(-1, keepdim=True)  # first True; 0 for empty rows, masked below
    return torch.where(t.empty, t.nan, t.entropy.gather(-1, first).squeeze(-1))


def mean_max_prob(t: TokenStats):
    return t.mean(t.max_prob)


def min_max_prob(t: TokenStats):
    return t.extreme(t.max_prob, False)


def seq_nll(t: TokenStats):
    return torch.where(t.empty, t.nan, torch.where(t.use, t.nll, 0).sum(-1))


def perplexity(t: TokenStats):
    return torch.exp(seq_nll(t) / t.n)


def uncertainty_measures(logits: torch.Tensor, token_ids: torch.Tensor,
                         mask: torch.Tensor, eos_ids=()) -> dict[str, torch.Tensor]:
    """Every "logits" probe of the registry, plus "n_nonfinite", for a batch: logits [B,T,V],
    token_ids [B,T], mask [B,T], the end-of-sequence ids -> {name: [B]}, in the registry's order."""
    import probes

    stats, n_nonfinite = token_stats(logits, token_ids, mask, eos_ids)
    out = {name: probes.get(name).function()(stats) for name in probes.names("logits")}
    out["n_nonfinite"] = n_nonfinite
    return out
