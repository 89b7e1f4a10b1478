"""What a batch is measured from: one server per probe source (probes/__init__.py), each run once a
batch and handed to every probe that names it.

    fields = serve(sweep, batch)   # one dict of record fields per unit, in the batch's order

A run's protocol says which sources it serves (PROTOCOLS):
  answer  the greedy answer (its tokens, token entropies and every "logits" probe); with
          --samples K also K sampled answers ("samples" probes) and the greedy answers to K
          seeded shifts of the image ("perturbations" probes)
  prompt  one teacher-forced forward pass over the prompt and no generation, as the study's own
          code ran it ("prompt" probes, with n_positions and n_image_positions)
A source no registered probe names is not served (the answer itself always is: it is the record).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import probes
from probes.prompt import counts, prompt_stats
from probes.uncertainty import token_stats

PROTOCOLS = {"answer": ("logits", "samples", "perturbations"), "prompt": ("prompt",)}


@dataclass
class Batch:
    xs: torch.Tensor     # [B,3,S,S] the units' (perturbed) images
    prompts: list[str]
    units: list          # confidence_trap.runner.sweep.Unit
    pad: int = 0         # extra left padding (a pass's pad_left)


def finite_or_none(v):
    return v if v is None or math.isfinite(v) else None


def _probe_values(source: str, stats) -> dict[str, list]:
    """{probe: one value per row} for every probe of `source`, from the batch's statistics."""
    out = {}
    for name in probes.names(source):
        v = probes.get(name).function()(stats)
        out[name] = v.tolist() if torch.is_tensor(v) else list(v)
    return out


def serve_logits(sweep, batch: Batch) -> list[dict]:
    """The greedy answer over the scored vocabulary, its counted tokens and every logits probe."""
    out = sweep.vlm.generate(batch.xs, batch.prompts, sweep.cfg.max_new_tokens, pad_left=batch.pad)
    stats, nonfinite = token_stats(out.logits, out.token_ids, out.mask, sweep.vlm.eos_ids)
    values = _probe_values("logits", stats)
    # Python lists once for the whole batch: element-wise tensor reads cost a call each
    h, use, masks, ids = stats.entropy.tolist(), stats.use.tolist(), out.mask.tolist(), out.token_ids.tolist()
    rows = []
    for b in range(len(batch.units)):
        m = masks[b]
        rows.append({"answer": out.answers[b],
                     "token_entropies": [e if u else None for e, u, keep in zip(h[b], use[b], m) if keep],
                     "n_tokens": sum(m), "n_nonfinite": int(nonfinite[b]),
                     "answer_ids": [t for t, keep in zip(ids[b], m) if keep],
                     **{k: finite_or_none(v[b]) for k, v in values.items()}})
    return rows


def shift(x: torch.Tensor, generator: torch.Generator, fraction: float = 0.02) -> torch.Tensor:
    """x [1,3,S,S] moved by a seeded whole-pixel shift of up to `fraction` of the side (at least
    one pixel) in each direction, edges replicated: a small nudge that is none of the attacks."""
    s = max(1, round(fraction * x.shape[-1]))
    dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=generator, device=x.device))
    padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")
    return padded[..., s + dy:s + dy + x.shape[-2], s + dx:s + dx + x.shape[-1]]


def _per_unit(batch: Batch, key: str, answers: list[str], k: int, source: str) -> list[dict]:
    """The K answers of each unit under `key`, then every probe of `source` on them."""
    fns = {name: probes.get(name).function() for name in probes.names(source)}
    rows = []
    for b in range(len(batch.units)):
        mine = answers[b * k:(b + 1) * k]
        rows.append({key: mine, **{name: fn(mine) for name, fn in fns.items()}})
    return rows


def serve_samples(sweep, batch: Batch) -> list[dict]:
    """K answers per unit sampled at the temperature. Sampling draws from torch's generator seeded
    by the batch's first unit, so a run is deterministic by seed on CPU for its fixed batches (a
    batch that backed off after an out-of-memory error samples differently)."""
    k, cfg = sweep.cfg.samples, sweep.cfg
    rep = [b for b in range(len(batch.units)) for _ in range(k)]
    torch.manual_seed(batch.units[0].seed)
    drawn = sweep.vlm.generate(batch.xs[rep], [batch.prompts[b] for b in rep], cfg.max_new_tokens,
                               do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0).answers
    return _per_unit(batch, "samples", drawn, k, "samples")


def serve_perturbations(sweep, batch: Batch) -> list[dict]:
    """The greedy answers to K seeded shifts of each unit's image (shift)."""
    k = sweep.cfg.samples
    nudged = torch.cat([shift(batch.xs[b:b + 1], g) for b in range(len(batch.units))
                        for g in [torch.Generator(device=batch.xs.device).manual_seed(batch.units[b].seed + 1)]
                        for _ in range(k)])
    rep = [b for b in range(len(batch.units)) for _ in range(k)]
    greedy = sweep.vlm.generate(nudged, [batch.prompts[b] for b in rep], sweep.cfg.max_new_tokens).answers
    return _per_unit(batch, "perturbed_answers", greedy, k, "perturbations")


def serve_prompt(sweep, batch: Batch) -> list[dict]:
    """One teacher-forced pass over each prompt: every prompt probe, and the position counts."""
    p = sweep.vlm.forward(batch.xs, batch.prompts, pad_left=batch.pad)
    stats = prompt_stats(p.logits, p.valid, p.image)
    values, n = _probe_values("prompt", stats), counts(stats)
    return [{**{k: finite_or_none(v[b]) for k, v in values.items()}, **{k: v[b] for k, v in n.items()}}
            for b in range(len(batch.units))]


# source -> (server, whether a run's config asks for it)
SERVERS = {
    "logits": (serve_logits, lambda cfg: True),
    "samples": (serve_samples, lambda cfg: cfg.samples > 0),
    "perturbations": (serve_perturbations, lambda cfg: cfg.samples > 0),
    "prompt": (serve_prompt, lambda cfg: True),
}


def served(cfg) -> list[str]:
    """The sources a run serves, in order: its protocol's, where asked for and named by a probe
    (the answer is always served in the answer protocol: it is what the record is about)."""
    return [s for s in PROTOCOLS[cfg.protocol]
            if SERVERS[s][1](cfg) and (s == "logits" or probes.names(s))]


def serve(sweep, batch: Batch) -> list[dict]:
    """One dict of record fields per unit: every served source's fields, in order."""
    rows = [{} for _ in batch.units]
    for source in served(sweep.cfg):
        for row, fields in zip(rows, SERVERS[source][0](sweep, batch)):
            row.update(fields)
    return rows


__all__ = ["PROTOCOLS", "SERVERS", "Batch", "serve", "served", "shift"]
