"""The probe registry: every uncertainty measure a record can carry, with its sign.

    import probes
    probes.names()                      # ['mean_entropy', 'max_entropy', ..., 'consistency_entropy']
    probes.get("mean_max_prob").sign    # -1.0: higher means MORE confident
    probes.get("seq_nll").function()    # the function that computes it

The sign follows LM-Polygraph's estimator contract: +1 where higher = more uncertain, -1 for the
probes that read the other way (a probability of the chosen token). Analysis multiplies by it
wherever "more uncertain" must point one way (detection and wrong-answer AUROCs, AURC, PRR).
The source says what a probe needs, and the engine serves each source once per batch to every
probe that names it (confidence_trap/runner/sources.py), so adding a probe of any source is one
function and one entry, with no engine edit:
  "logits"         the raw logits of the one greedy answer: fn(probes.uncertainty.TokenStats) -> [B]
                   (probes/uncertainty.py; the record also keeps the answer and its token entropies)
  "samples"        K answers sampled at a temperature (--samples K): fn(list[str]) -> float
  "perturbations"  the greedy answers under K small seeded shifts of the same input: fn(list[str])
                   -> float (both in probes/semantic.py; the records keep the answers, as
                   "samples" and "perturbed_answers")
  "prompt"         one teacher-forced forward pass over the prompt, no generation:
                   fn(probes.prompt.PromptStats) -> [B] (probes/prompt.py; the record also keeps
                   n_positions and n_image_positions)
Which sources a run serves is its protocol (confidence_trap.runner.config: "answer" serves logits,
and samples and perturbations with --samples; "prompt" serves prompt). Functions are named as
"module:function" and imported on demand, so reading this registry costs no torch import (a
callable works too, for a probe defined in a test).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Probe:
    name: str
    sign: float     # +1: higher = more uncertain; -1: higher = more confident
    source: str     # "logits", "samples", "perturbations" or "prompt"
    fn: object      # "module:function", or the function itself
    doc: str
    label: str = "" # its name in a table ("" : the name with spaces)

    def function(self):
        if callable(self.fn):
            return self.fn
        module, name = self.fn.split(":")
        return getattr(importlib.import_module(module), name)


_U, _S, _P = "probes.uncertainty", "probes.semantic", "probes.prompt"
SOURCES = ("logits", "samples", "perturbations", "prompt")
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
    Probe("prompt_entropy", +1, "prompt", f"{_P}:prompt_entropy",
          "mean next-token entropy over every prompt position, teacher-forced (nats; the study's code)"),
    Probe("prompt_entropy_image", +1, "prompt", f"{_P}:prompt_entropy_image",
          "the same over the image positions (nats)", "prompt entropy, image positions"),
    Probe("prompt_entropy_text", +1, "prompt", f"{_P}:prompt_entropy_text",
          "the same over the text positions (nats)", "prompt entropy, text positions"),
    Probe("prompt_entropy_last", +1, "prompt", f"{_P}:prompt_entropy_last",
          "the entropy at the prompt's last position: the answer's first token (nats)",
          "prompt entropy, last position"),
]}


def names(source: str | None = None) -> list[str]:
    return [n for n, p in PROBES.items() if source is None or p.source == source]


def register(probe: Probe) -> Probe:
    """Add a probe (its source must be one the engine serves); returns it."""
    if probe.source not in SOURCES:
        raise ValueError(f"unknown probe source {probe.source!r}; choose from {', '.join(SOURCES)}")
    PROBES[probe.name] = probe
    return probe


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


__all__ = ["PROBES", "SOURCES", "Probe", "get", "label", "names", "register", "sign"]
