"""The sweep: (image, question) × (clean + attack levels × trials) generations -> records.

Units are laid out in one canonical order and cut into fixed batches, and each perturbation
draws from its own seed, so a resumed or split run computes every batch exactly as an
uninterrupted one does and the records come out identical.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import torch

from attacks.pgd_visual import pgd_proxy
from models.errors import InputError
from models.generation import generate
from probes.entropy import finite_positions, token_entropy
from probes.uncertainty import uncertainty_measures
from .imagesets import Item, is_correct


@dataclass(frozen=True)
class Unit:
    item: int            # index into the items
    attack: str          # "none" for the clean generation
    epsilon: float | None
    severity: int | None
    trial: int
    seed: int


def unit_seed(seed: int, item: Item, attack: str, level, trial: int) -> int:
    """A seed per unit that depends on what the unit is, never on batch order."""
    text = f"{seed}|{item.key}|{item.question}|{attack}|{level!r}|{trial}"
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def attack_name(cfg) -> str:
    if cfg.attack == "proxy":
        return "proxy"
    if cfg.attack == "pgd":
        from .objectives import OBJECTIVES

        if cfg.objective not in OBJECTIVES:
            raise InputError(f"unknown --objective {cfg.objective!r}; choose from {', '.join(OBJECTIVES)}")
        return f"pgd:{cfg.objective}"
    if cfg.attack.startswith("corruption:"):
        return cfg.attack
    raise InputError(f"unknown attack {cfg.attack!r}: use proxy, pgd or corruption:NAME")


def make_units(cfg, items: list[Item]) -> list[Unit]:
    """Clean units first, then level by level, trial by trial, item by item."""
    name = attack_name(cfg)
    units = [Unit(i, "none", 0.0, None, 0, cfg.seed) for i in range(len(items))]
    corruption = name.startswith("corruption:")
    levels = cfg.severities if corruption else cfg.epsilons
    for level in levels:
        for trial in range(cfg.trials):
            for i, it in enumerate(items):
                s = unit_seed(cfg.seed, it, name, level, trial)
                units.append(Unit(i, name, None if corruption else float(level),
                                  int(level) if corruption else None, trial, s))
    return units


def unit_key(unit: Unit, items: list[Item]) -> tuple:
    it = items[unit.item]
    return (it.key, it.question, unit.attack, unit.epsilon, unit.severity, unit.trial)


def perturb(cfg, x: torch.Tensor, unit: Unit, loss=None) -> torch.Tensor:
    """x [1,3,H,W] in [0,1] -> the unit's perturbed image (x itself for the clean unit).

    loss: for "pgd:*" units, the callable x_adv -> scalar to minimise (experiments.objectives).
    """
    if unit.attack == "none":
        return x
    g = torch.Generator(device=x.device).manual_seed(unit.seed)
    if unit.attack == "proxy":
        return pgd_proxy(x, unit.epsilon, steps=cfg.steps, alpha=cfg.alpha, generator=g)
    if unit.attack.startswith("corruption:"):
        from attacks.corruptions import corrupt

        return corrupt(x, unit.attack.split(":", 1)[1], unit.severity, generator=g)
    if unit.attack.startswith("pgd:"):
        from attacks.pgd_visual import pgd_gradient

        if loss is None:
            raise ValueError(f"unit {unit} needs a loss callable (experiments.objectives)")
        return pgd_gradient(x, unit.epsilon, loss, steps=cfg.steps, alpha=cfg.alpha, generator=g)
    raise InputError(f"unknown attack {unit.attack!r}")


def perturb_batch(cfg, pixels: torch.Tensor, units: list[Unit], losses: dict) -> torch.Tensor:
    """The units' images [B,3,H,W]: the proxy units in one call (one generator each, so the
    same pixels as one at a time), the others unit by unit through `perturb`."""
    xs = pixels[[u.item for u in units]]
    proxy = [b for b, u in enumerate(units) if u.attack == "proxy"]
    if proxy:
        gens = [torch.Generator(device=xs.device).manual_seed(units[b].seed) for b in proxy]
        xs[proxy] = pgd_proxy(xs[proxy], [units[b].epsilon for b in proxy], steps=cfg.steps,
                              alpha=cfg.alpha, generator=gens)
    for b, u in enumerate(units):
        if u.attack not in ("none", "proxy"):
            xs[b] = perturb(cfg, xs[b][None], u, losses.get(b))[0]
    return xs


def _finite_or_none(v: float):
    return v if math.isfinite(v) else None


def clean_answers(records: list[dict], items: list[Item], model, processor) -> dict[int, list[int]]:
    """{item index: the clean answer's token ids} from clean records, for the pgd units.

    Uses a record's answer_ids; an older record without them is re-tokenised (answer + EOS)."""
    from .objectives import answer_token_ids

    index = {(it.key, it.question): i for i, it in enumerate(items)}
    out = {}
    for rec in records:
        i = index.get((rec.get("image"), rec.get("question")))
        if rec.get("attack") == "none" and i is not None:
            ids = rec.get("answer_ids")
            out[i] = list(ids) if ids else answer_token_ids(model, processor, rec["answer"])
    return out


def pgd_losses(model, processor, cfg, units, pixels, prompts, clean: dict, text=None) -> dict[int, object]:
    """{position in units: loss callable} for the batch's "pgd:*" units.

    Each teacher-forces its item's clean answer, taken from `clean`; an item missing there (a
    resumed run whose clean records were not handed in) gets its clean greedy answer generated
    here first, on the same image and prompt, and added to `clean`."""
    pgd = [b for b, u in enumerate(units) if u.attack.startswith("pgd:")]
    if not pgd:
        return {}
    from .objectives import make_objective

    missing = sorted({units[b].item for b in pgd} - set(clean))
    if missing:
        out = generate(model, processor, pixels[missing], [prompts[i] for i in missing],
                       cfg.max_new_tokens, **(text or {}))
        for b, i in enumerate(missing):
            clean[i] = out.token_ids[b][out.mask[b]].tolist()
    return {b: make_objective(units[b].attack.split(":", 1)[1], model, processor,
                              prompts[units[b].item], clean[units[b].item], **(text or {}))
            for b in pgd}


def run_batch(model, processor, cfg, items, units, pixels, prompts, clean=None, text=None) -> list[dict]:
    """Perturb, generate and probe one batch of units; return their records in order.

    clean: {item index: clean answer token ids} (see clean_answers), which "pgd:*" units attack;
    pass the same dict to every batch and the clean units of earlier batches fill it in.
    text: {"original_ids": bool, "vocab": ScoredVocab} for generate and the objectives."""
    clean = {} if clean is None else clean
    losses = pgd_losses(model, processor, cfg, units, pixels, prompts, clean, text)
    xs = perturb_batch(cfg, pixels, units, losses)
    out = generate(model, processor, xs, [prompts[u.item] for u in units], cfg.max_new_tokens,
                   **(text or {}))
    logits = out.logits
    finite = finite_positions(logits)                           # [B,T]
    h = token_entropy(logits).masked_fill(~finite, float("nan"))  # [B,T] nats
    extra = uncertainty_measures(logits, out.token_ids, out.mask)
    # Python lists once for the whole batch: element-wise tensor reads cost a call each
    h, masks, finite, ids = h.tolist(), out.mask.tolist(), finite.tolist(), out.token_ids.tolist()
    extra = {k: v.tolist() for k, v in extra.items() if k != "n_nonfinite"}
    records = []
    for b, u in enumerate(units):
        it = items[u.item]
        m = masks[b]
        ents = [_finite_or_none(e) for e, keep in zip(h[b], m) if keep]
        good = [e for e in ents if e is not None]
        rec = {"image": it.key, "question": it.question, "prompt": prompts[u.item],
               "attack": u.attack, "epsilon": u.epsilon, "trial": u.trial, "seed": u.seed,
               "answer": out.answers[b], "token_entropies": ents,
               "mean_entropy": sum(good) / len(good) if good else None,
               "n_tokens": sum(m), "n_nonfinite": sum(1 for f, keep in zip(finite[b], m) if keep and not f),
               "answer_ids": [t for t, keep in zip(ids[b], m) if keep]}
        if u.attack == "none":
            clean[u.item] = rec["answer_ids"]
        if u.severity is not None:
            rec["severity"] = u.severity
        for k, v in extra.items():
            if k not in rec:
                rec[k] = _finite_or_none(v[b])
        if it.answers:
            rec["references"] = list(it.answers)
            rec["correct"] = is_correct(out.answers[b], it.answers, it.match)
        records.append(rec)
    return records
