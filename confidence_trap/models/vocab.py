"""The vocabulary a model is scored and decoded over: the output rows an ordinary token maps to.

    vocab = scored_vocab(model, processor)
    vocab.size            # 32000 for llava-hf/llava-1.5-7b-hf, whose output layer has 32064 rows
    vocab.restrict(logits)  # [..., rows] -> [..., size] (a slice) or the same shape with -inf rows

llava-hf's conversion pads the output layer of LLaVA-1.5 from the original's 32000 rows to 32064:
`<image>` (32000), `<pad>` (32001) and 62 rows drawn around the mean embedding
(`convert_llava_weights_to_hf.py`). The original model could never emit them, so entropy and
every probe are computed over the rest, and greedy decoding never picks them. The rule, for every
model: leave out the rows beyond the tokenizer, the image placeholder token and the padding token
(unless it doubles as end of sequence). Where the left-out rows are a tail, as for LLaVA-1.5,
scoring keeps the first `size` rows; otherwise the left-out rows are set to -inf (probability 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScoredVocab:
    rows: int                  # rows of the output layer
    excluded: tuple[int, ...]  # rows never scored nor emitted, sorted

    @property
    def size(self) -> int:
        return self.rows - len(self.excluded)

    @property
    def is_tail(self) -> bool:
        return self.excluded == tuple(range(self.size, self.rows))

    def restrict(self, logits: torch.Tensor) -> torch.Tensor:
        """[..., rows] raw logits -> the scored distribution's logits (float dtype kept)."""
        if not self.excluded:
            return logits
        if self.is_tail:
            return logits[..., :self.size]
        out = logits.clone()
        out[..., list(self.excluded)] = float("-inf")
        return out

    def suppress(self, scores: torch.Tensor) -> torch.Tensor:
        """In place: excluded rows to -inf, so greedy decoding never picks them."""
        if self.excluded:
            if self.is_tail:
                scores[..., self.size:] = float("-inf")
            else:
                scores[..., list(self.excluded)] = float("-inf")
        return scores


def output_rows(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def scored_vocab(model, processor) -> ScoredVocab:
    """The rows of `model`'s output layer that an ordinary token of `processor` maps to."""
    tok = getattr(processor, "tokenizer", processor)
    rows = output_rows(model)
    out = set(range(min(len(tok), rows), rows))
    image = getattr(processor, "image_token", None) or getattr(tok, "image_token", None)
    ids = [tok.convert_tokens_to_ids(image)] if image else []
    eos = tok.eos_token_id
    if tok.pad_token_id is not None and tok.pad_token_id != eos:
        ids.append(tok.pad_token_id)
    out |= {i for i in ids if isinstance(i, int) and 0 <= i < rows and i != tok.unk_token_id}
    return ScoredVocab(rows, tuple(sorted(out)))


def suppressor(vocab: ScoredVocab):
    """A logits processor for generate(): greedy decoding over the scored vocabulary only.

    It edits the processed scores generate() picks from; the raw logits it keeps
    (output_logits=True) are untouched and restricted by `vocab.restrict` afterwards."""
    from transformers import LogitsProcessor

    class SuppressExcluded(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return vocab.suppress(scores)

    return SuppressExcluded()
