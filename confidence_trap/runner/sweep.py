"""The sweep: (image, question) × (clean + attack levels × trials) generations -> records.

    sweep = Sweep(model, processor, cfg, items, prompts, images)   # confidence_trap.runner.pipeline builds it
    units = make_units(cfg, items)
    records = run_batch(sweep, units[:56])

Units are laid out in one canonical order and cut into fixed batches, and each perturbation
draws from its own seed, so a resumed or split run computes every batch exactly as an
uninterrupted one does and the records come out identical. Besides the clean and the perturbed
units, every run has two passes per item (attacks.PASSES): `blank`, the question asked of a
uniform image (the item's language-prior answer), and `repeat`, the clean input generated again
as the null control. The repeat units come last, in a seeded shuffle of the items and with
NULL_PAD more left padding than their batch needs, so each clean input is generated a second
time beside other neighbours and at another padded length: what the two clean answers differ
by is the run's own numerical noise. A batch is perturbed by its attack's
registry entry (attacks/__init__.py), generated greedily over the scored vocabulary, and probed
(probes/); with --samples it also gets K sampled answers and K answers under small seeded shifts
of the same input, for semantic and consistency entropy.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import torch

import attacks
from confidence_trap.models.generation import eos_token_ids, generate
from probes.entropy import finite_positions, token_entropy
from probes.uncertainty import uncertainty_measures

from confidence_trap.tasks.imagesets import Item, score

NULL_PAD = 8  # extra left padding of a batch that holds null-control units (tokens)


@dataclass(frozen=True)
class Unit:
    item: int            # index into the items
    attack: str          # "none" for the clean generation, else the attack's record name
    epsilon: float | None
    severity: int | None
    trial: int
    seed: int


@dataclass
class Sweep:
    """Everything a batch needs: the model and how to talk to it, the inputs, the attack."""
    model: object
    processor: object
    cfg: object                  # confidence_trap.runner.config.Config
    items: list[Item]
    prompts: list[str]           # one per item: the exact text handed to the tokenizer
    images: object               # .pixels(item indices) -> float [B,3,S,S] in [0,1] on the device
    original_ids: bool = False   # tokenise as the original LLaVA (confidence_trap.models.prompts.original_ids)
    vocab: object = None         # confidence_trap.models.vocab.ScoredVocab (None: the model's own)
    clean: dict = field(default_factory=dict)  # item index -> the clean answer's token ids

    @property
    def attack(self) -> attacks.Attack:
        return attacks.get(self.cfg.attack)

    @property
    def params(self) -> dict:
        return {name: getattr(self.cfg, name) for name in self.attack.params}

    @property
    def image_mean(self) -> tuple:
        """The colour of the blank pass: the processor's image mean (CLIP's for LLaVA-1.5)."""
        return tuple(self.processor.image_processor.image_mean)

    @property
    def text(self) -> dict:
        return {"original_ids": self.original_ids, "vocab": self.vocab}


def unit_seed(seed: int, item: Item, attack: str, level, trial: int) -> int:
    """A seed per unit that depends on what the unit is, never on batch order."""
    text = f"{seed}|{item.key}|{item.question}|{attack}|{level!r}|{trial}"
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def make_units(cfg, items: list[Item]) -> list[Unit]:
    """Clean units first, then the blank pass item by item, then level by level, trial by trial,
    item by item, and last the null control's repeat of every clean unit in a seeded order.

    "Item by item" is in the order of their questions (stable): a batch decodes until its longest
    answer ends, so batches of like questions (the embedded model's 2-token colours beside its
    12-token descriptions) decode half as many steps as batches that mix them."""
    spec = attacks.get(cfg.attack)
    name = spec.record_name({p: getattr(cfg, p) for p in spec.params})
    by_question = sorted(range(len(items)), key=lambda i: items[i].question)
    units = [Unit(i, "none", 0.0, None, 0, cfg.seed) for i in by_question]
    if getattr(cfg, attacks.PASSES["blank"]):
        units += [Unit(i, "blank", 0.0, None, 0, cfg.seed) for i in by_question]
    by_severity = spec.level == "severity"
    for level in (cfg.severities if by_severity else cfg.epsilons):
        for trial in range(cfg.trials):
            for i in by_question:
                it = items[i]
                s = unit_seed(cfg.seed, it, name, level, trial)
                units.append(Unit(i, name, None if by_severity else float(level),
                                  int(level) if by_severity else None, trial, s))
    if getattr(cfg, attacks.PASSES["repeat"]):
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        units += [Unit(i, "repeat", 0.0, None, 0, cfg.seed) for i in order]
    return units


def unit_key(unit: Unit, items: list[Item]) -> tuple:
    it = items[unit.item]
    return (it.key, it.question, unit.attack, unit.epsilon, unit.severity, unit.trial)


def _generators(units, device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(u.seed) for u in units]


def perturb_batch(sweep: Sweep, xs: torch.Tensor, units: list[Unit], losses: dict) -> torch.Tensor:
    """The units' images [B,3,H,W]: the clean units as they are, the others through their
    registry entry (the run's attack, or a pass: blank, repeat), one call per attack, each image
    with its own generator (so the same pixels as one at a time)."""
    for name in dict.fromkeys(u.attack for u in units if u.attack != "none"):
        hit = [b for b, u in enumerate(units) if u.attack == name]
        spec = attacks.get(name) if name in attacks.PASSES else sweep.attack
        levels = [units[b].severity if spec.level == "severity" else units[b].epsilon for b in hit]
        params = {**sweep.params, **({"image_mean": sweep.image_mean} if name == "blank" else {})}
        xs[hit] = spec.apply(xs[hit], levels, _generators([units[b] for b in hit], xs.device), params,
                             [losses.get(b) for b in hit] if spec.needs_loss else None)
    return xs


def _finite_or_none(v: float):
    return v if math.isfinite(v) else None


def clean_answers(records: list[dict], items: list[Item], model, processor) -> dict[int, list[int]]:
    """{item index: the clean answer's token ids} from clean records, for the pgd units.

    Uses a record's answer_ids; an older record without them is re-tokenised (answer + EOS)."""
    from confidence_trap.runner.objectives import answer_token_ids

    index = {(it.key, it.question): i for i, it in enumerate(items)}
    out = {}
    for rec in records:
        i = index.get((rec.get("image"), rec.get("question")))
        if rec.get("attack") == "none" and i is not None:
            ids = rec.get("answer_ids")
            out[i] = list(ids) if ids else answer_token_ids(model, processor, rec["answer"])
    return out


def pgd_losses(sweep: Sweep, units: list[Unit]) -> dict[int, object]:
    """{position in units: loss callable} for the batch's units of an attack that needs a loss.

    Each teacher-forces its item's clean answer, taken from sweep.clean; an item missing there
    (a resumed run whose clean records were not handed in) gets its clean greedy answer
    generated here first, on the same image and prompt, and added to sweep.clean."""
    if not sweep.attack.needs_loss:
        return {}
    hit = [b for b, u in enumerate(units) if u.attack not in ("none", *attacks.PASSES)]
    if not hit:
        return {}
    from confidence_trap.runner.objectives import make_objective

    missing = sorted({units[b].item for b in hit} - set(sweep.clean))
    if missing:
        out = generate(sweep.model, sweep.processor, sweep.images.pixels(missing),
                       [sweep.prompts[i] for i in missing], sweep.cfg.max_new_tokens, **sweep.text)
        for b, i in enumerate(missing):
            sweep.clean[i] = out.token_ids[b][out.mask[b]].tolist()
    return {b: make_objective(sweep.cfg.objective, sweep.model, sweep.processor,
                              sweep.prompts[units[b].item], sweep.clean[units[b].item], **sweep.text)
            for b in hit}


def run_batch(sweep: Sweep, units: list[Unit]) -> list[dict]:
    """Perturb, generate and probe one batch of units; return their records in order.

    The clean units of a batch fill in sweep.clean, which later batches' gradient attacks use."""
    losses = pgd_losses(sweep, units)
    xs = perturb_batch(sweep, sweep.images.pixels([u.item for u in units]), units, losses)
    prompts = [sweep.prompts[u.item] for u in units]
    pad = NULL_PAD if any(u.attack == "repeat" for u in units) else 0
    out = generate(sweep.model, sweep.processor, xs, prompts, sweep.cfg.max_new_tokens, pad_left=pad,
                   **sweep.text)
    logits = out.logits
    finite = finite_positions(logits)                             # [B,T]
    h = token_entropy(logits).masked_fill(~finite, float("nan"))  # [B,T] nats
    extra = uncertainty_measures(logits, out.token_ids, out.mask, eos_token_ids(sweep.model, sweep.processor))
    # Python lists once for the whole batch: element-wise tensor reads cost a call each
    h, masks, finite, ids = h.tolist(), out.mask.tolist(), finite.tolist(), out.token_ids.tolist()
    extra = {k: v.tolist() for k, v in extra.items() if k != "n_nonfinite"}
    sampled = sample_answers(sweep, xs, prompts, units) if sweep.cfg.samples else None
    records = []
    for b, u in enumerate(units):
        it = sweep.items[u.item]
        m = masks[b]
        ents = [_finite_or_none(e) for e, keep in zip(h[b], m) if keep]
        good = [e for e in ents if e is not None]
        rec = {"image": it.key, "question": it.question, **dict(it.extra), "prompt": prompts[b],
               "attack": u.attack, "epsilon": u.epsilon, "trial": u.trial, "seed": u.seed,
               "answer": out.answers[b], "token_entropies": ents,
               "mean_entropy": sum(good) / len(good) if good else None,
               "n_tokens": sum(m), "n_nonfinite": sum(1 for f, keep in zip(finite[b], m) if keep and not f),
               "answer_ids": [t for t, keep in zip(ids[b], m) if keep]}
        if u.attack == "none":
            sweep.clean[u.item] = rec["answer_ids"]
        if u.severity is not None:
            rec["severity"] = u.severity
        for k, v in extra.items():
            if k not in rec:
                rec[k] = _finite_or_none(v[b])
        if sampled is not None:
            rec.update(sampled[b])
        if it.answers:
            rec["references"] = list(it.answers)
            rec["correct"] = score(it.match, out.answers[b], it.answers)
        records.append(rec)
    return records


# --- sampled answers: semantic entropy and perturbation consistency ------------------------

def shift(x: torch.Tensor, generator: torch.Generator, fraction: float = 0.02) -> torch.Tensor:
    """x [1,3,S,S] moved by a seeded whole-pixel shift of up to `fraction` of the side (at least
    one pixel) in each direction, edges replicated: a small nudge that is none of the attacks."""
    s = max(1, round(fraction * x.shape[-1]))
    dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=generator, device=x.device))
    padded = torch.nn.functional.pad(x, (s, s, s, s), mode="replicate")
    return padded[..., s + dy:s + dy + x.shape[-2], s + dx:s + dx + x.shape[-1]]


def sample_answers(sweep: Sweep, xs: torch.Tensor, prompts: list[str], units: list[Unit]) -> list[dict]:
    """Per unit: K answers sampled at the temperature (semantic entropy) and the greedy answers
    to K seeded shifts of its image (consistency entropy), with their cluster entropies.

    Sampling draws from torch's generator seeded by the batch's first unit, so a run is
    deterministic by seed on CPU for its fixed batches (a batch that backed off after an
    out-of-memory error samples differently)."""
    from probes.semantic import consistency_entropy, semantic_entropy

    k, cfg = sweep.cfg.samples, sweep.cfg
    rep = [b for b in range(len(units)) for _ in range(k)]
    torch.manual_seed(units[0].seed)
    drawn = generate(sweep.model, sweep.processor, xs[rep], [prompts[b] for b in rep], cfg.max_new_tokens,
                     do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0, **sweep.text).answers
    nudged = torch.cat([shift(xs[b:b + 1], g) for b in range(len(units))
                        for g in [torch.Generator(device=xs.device).manual_seed(units[b].seed + 1)]
                        for _ in range(k)])
    greedy = generate(sweep.model, sweep.processor, nudged, [prompts[b] for b in rep], cfg.max_new_tokens,
                      **sweep.text).answers
    out = []
    for b in range(len(units)):
        s, p = drawn[b * k:(b + 1) * k], greedy[b * k:(b + 1) * k]
        out.append({"samples": s, "semantic_entropy": semantic_entropy(s),
                    "perturbed_answers": p, "consistency_entropy": consistency_entropy(p)})
    return out
