"""The probe registry: every uncertainty measure a record can carry, with its sign.

    import probes
    probes.names()                      # ['mean_entropy', 'max_entropy', ..., 'consistency_entropy']
    probes.get("mean_max_prob").sign    # -1.0: higher means MORE confident
    probes.get("seq_nll").function()    # the function that computes it

The sign follows LM-Polygraph's estimator contract: +1 where higher = more uncertain, -1 for the
probes that read the other way (a probability of the chosen token). Analysis multiplies by it
wherever "more uncertain" must point one way (detection and wrong-answer AUROCs, AURC, PRR).
The source says what a probe needs: "logits", the raw logits of the one greedy answer
(probes/uncertainty.py, all computed in one pass); "samples", K answers sampled at a temperature;
"perturbations", the greedy answers under M small seeded perturbations of the same input (both
in probes/semantic.py). Functions are named as "module:function" and imported on demand, so
reading this registry costs no torch import. Adding a probe is one function and one entry.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str
    sign: float     # +1: higher = more uncertain; -1: higher = more confident
    source: str     # "logits", "samples" or "perturbations"
    fn: str         # "module:function"
    doc: str
    label: str = "" # its name in a table ("" : the name with spaces)

    def function(self):
        module, name = self.fn.split(":")
        return getattr(importlib.import_module(module), name)


_U, _S = "probes.uncertainty", "probes.semantic"
PROBES = {p.name: p for p in [
    Probe("mean_entropy", +1, "logits", f"{_U}:mean_entropy", "mean token entropy over the counted tokens (nats)"),
    Probe("answer_entropy", +1, "logits", f"{_U}:answer_entropy",
          "mean token entropy over the answer's tokens, leaving out the step that emits the "
          "end-of-sequence token (nats)", "answer entropy (no EOS step)"),
    Probe("max_entropy", +1, "logits", f"{_U}:max_entropy", "largest token entropy (nats)", "max token entropy"),
    Probe("first_token_entropy", +1, "logits", f"{_U}:first_token_entropy",
          "entropy of the first counted token (nats)", "first-token entropy"),
    Probe("mean_max_prob", -1, "logits", f"{_U}:mean_max_prob", "mean probability of the top token",
          "mean top-token prob."),
    Probe("min_max_prob", -1, "logits", f"{_U}:min_max_prob", "smallest top-token probability",
          "min top-token prob."),
    Probe("seq_nll", +1, "logits", f"{_U}:seq_nll", "sum of -log p(token) over the counted tokens (nats)",
          "sequence NLL"),
    Probe("perplexity", +1, "logits", f"{_U}:perplexity", "exp(mean per-token -log p(token))"),
    Probe("semantic_entropy", +1, "samples", f"{_S}:semantic_entropy",
          "entropy over the meaning clusters of K sampled answers (nats)"),
    Probe("consistency_entropy", +1, "perturbations", f"{_S}:consistency_entropy",
          "entropy over the clusters of the greedy answers under M small perturbations (nats)"),
]}


def names(source: str | None = None) -> list[str]:
    return [n for n, p in PROBES.items() if source is None or p.source == source]


def get(name: str) -> Probe:
    if name not in PROBES:
        raise ValueError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")
    return PROBES[name]


def sign(name: str) -> float:
    return PROBES[name].sign if name in PROBES else 1.0


def label(name: str) -> str:
    """A probe's name in a table: its label ("sequence NLL" for seq_nll), else the name with
    spaces ("semantic entropy")."""
    p = PROBES.get(name)
    return p.label if p and p.label else name.replace("_", " ")


__all__ = ["PROBES", "Probe", "get", "label", "names", "sign"]
