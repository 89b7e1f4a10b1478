"""The sweep: (image, question) × (clean + attacks × levels × trials) units -> records.

    sweep = Sweep(vlm, cfg, items, prompts, images)   # confidence_trap.runner.pipeline builds it
    units = make_units(cfg, items)
    records = run_batch(sweep, units[:56])

Units are laid out in one canonical order and cut into fixed batches, and each perturbation
draws from its own seed, so a resumed or split run computes every batch exactly as an
uninterrupted one does and the records come out identical. Besides the clean units and those of
each of the run's attacks, every run adds the passes of the attack registry (attacks.passes():
`blank`, the question asked of a uniform image, and `repeat`, the clean input again as the null
control, laid out last in a seeded order and with more left padding: what the two clean records
differ by is the run's own numerical noise). A batch is perturbed unit by unit through its
attack's registry entry (attacks/__init__.py) and measured by the sources its protocol serves
(confidence_trap/runner/sources.py): the generated answer and its probes, or one forward pass
over the prompt.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import torch

import attacks
from confidence_trap.runner.objectives import make_objective
from confidence_trap.runner.sources import Batch, serve
from confidence_trap.tasks.imagesets import Item
from confidence_trap.tasks.scoring import score

NULL_PAD = attacks.NULL_PAD  # extra left padding of a batch that holds null-control units (tokens)
CLEAN = "none"


@dataclass(frozen=True)
class Unit:
    item: int            # index into the items
    attack: str          # "none" for the clean unit, else the attack's record name
    epsilon: float | None
    severity: int | None
    trial: int
    seed: int
    name: str = CLEAN    # the attack's registered name ("none" for the clean unit)

    @property
    def spec(self) -> attacks.Attack | None:
        return None if self.name == CLEAN else attacks.get(self.name)

    @property
    def level(self):
        return self.severity if self.severity is not None else self.epsilon


@dataclass
class Sweep:
    """Everything a batch needs: the model, the config, the inputs."""
    vlm: object                  # confidence_trap.models.vlm.VLM
    cfg: object                  # confidence_trap.runner.config.Config
    items: list[Item]
    prompts: list[str]           # one per item: the exact text handed to the tokenizer
    images: object               # .pixels(item indices) -> float [B,3,S,S] in [0,1] on the device
    clean: dict = field(default_factory=dict)  # item index -> the clean answer's token ids

    def params(self, spec: attacks.Attack) -> dict:
        """What `spec` reads: its Config fields, and what it needs from the model (image_mean, ...)."""
        return {**{p: getattr(self.cfg, p) for p in spec.params}, **{n: getattr(self.vlm, n) for n in spec.needs}}

    @property
    def needs_loss(self) -> bool:
        return any(attacks.get(a).needs_loss for a in self.cfg.attack)


def unit_seed(seed: int, item: Item, attack: str, level, trial: int) -> int:
    """A seed per unit that depends on what the unit is, never on batch order."""
    text = f"{seed}|{item.key}|{item.question}|{attack}|{level!r}|{trial}"
    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def levels_of(cfg, spec: attacks.Attack) -> list:
    """The levels a run applies `spec` at: its ε or severities, or one None for a level-less one."""
    return {"epsilon": cfg.epsilons, "severity": cfg.severities}.get(spec.level, [None])


def attack_units(cfg, items: list[Item], order: list[int], name: str) -> list[Unit]:
    """One attack's units: level by level, trial by trial, item by item (no trials without a level)."""
    spec = attacks.get(name)
    rname = spec.record_name({p: getattr(cfg, p) for p in spec.params})
    severity = spec.level == "severity"
    units = []
    for level in levels_of(cfg, spec):
        for trial in range(cfg.trials if level is not None else 1):
            for i in order:
                s = unit_seed(cfg.seed, items[i], rname, level, trial)
                units.append(Unit(i, rname, None if severity or level is None else float(level),
                                  int(level) if severity else None, trial, s, name))
    return units


def make_units(cfg, items: list[Item]) -> list[Unit]:
    """Clean units first, then the passes that come first (blank) item by item, then each attack
    level by level, trial by trial, item by item, and last the passes that come last (the null
    control's repeat of every clean unit) in a seeded order.

    "Item by item" is in the order of their questions (stable): a batch decodes until its longest
    answer ends, so batches of like questions (the embedded model's 2-token colours beside its
    12-token descriptions) decode half as many steps as batches that mix them."""
    by_question = sorted(range(len(items)), key=lambda i: items[i].question)
    on = [p for p in attacks.passes() if getattr(cfg, p.turned_off_by)]
    units = [Unit(i, CLEAN, 0.0, None, 0, cfg.seed) for i in by_question]
    for p in (p for p in on if not p.last):
        units += [Unit(i, p.name, 0.0, None, 0, cfg.seed, p.name) for i in by_question]
    for name in cfg.attack:
        units += attack_units(cfg, items, by_question, name)
    for p in (p for p in on if p.last):
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        units += [Unit(i, p.name, 0.0, None, 0, cfg.seed, p.name) for i in order]
    return units


def tail_start(units: list[Unit]) -> int:
    """Where the passes laid out last (the null control's repeats) begin; len(units) without them."""
    return next((i for i, u in enumerate(units) if u.spec is not None and u.spec.last), len(units))


def batch_spans(units: list[Unit], batch: int) -> list[tuple[int, int]]:
    """[start, end) of each batch: `batch` units at a time, except that the passes laid out last
    (the null control) start a batch of their own, so a repeat is never generated in the batch of
    the clean unit it repeats (a run small enough for one batch would otherwise measure nothing)."""
    tail = tail_start(units)
    return [(s, min(s + batch, end)) for lo, end in ((0, tail), (tail, len(units))) for s in range(lo, end, batch)]


def unit_key(unit: Unit, items: list[Item]) -> tuple:
    it = items[unit.item]
    return (it.key, it.question, unit.attack, unit.epsilon, unit.severity, unit.trial)


def perturb_batch(sweep: Sweep, xs: torch.Tensor, units: list[Unit], losses: dict) -> torch.Tensor:
    """The units' images [B,3,H,W]: the clean units as they are, the others through their
    registry entry, one call per attack, each image with its own generator (so the same pixels
    as one at a time)."""
    for name in dict.fromkeys(u.name for u in units if u.name != CLEAN):
        hit = [b for b, u in enumerate(units) if u.name == name]
        spec = attacks.get(name)
        gens = [torch.Generator(device=xs.device).manual_seed(units[b].seed) for b in hit]
        xs[hit] = spec.apply(xs[hit], [units[b].level for b in hit], gens, sweep.params(spec),
                             [losses.get(b) for b in hit] if spec.needs_loss else None)
    return xs


def clean_answers(records: list[dict], items: list[Item], vlm) -> dict[int, list[int]]:
    """{item index: the clean answer's token ids} from clean records, for the pgd units.

    Uses a record's answer_ids; an older record without them is re-tokenised (answer + EOS)."""
    index = {(it.key, it.question): i for i, it in enumerate(items)}
    out = {}
    for rec in records:
        i = index.get((rec.get("image"), rec.get("question")))
        if rec.get("attack") == CLEAN and i is not None and "answer" in rec:
            ids = rec.get("answer_ids")
            out[i] = list(ids) if ids else vlm.answer_ids(rec["answer"])
    return out


def pgd_losses(sweep: Sweep, units: list[Unit]) -> dict[int, object]:
    """{position in units: loss callable} for the batch's units of an attack that needs a loss.

    Each teacher-forces its item's clean answer, taken from sweep.clean; an item missing there
    (a resumed run whose clean records were not handed in) gets its clean greedy answer
    generated here first, on the same image and prompt, and added to sweep.clean."""
    hit = [b for b, u in enumerate(units) if u.spec is not None and u.spec.needs_loss]
    if not hit:
        return {}
    missing = sorted({units[b].item for b in hit} - set(sweep.clean))
    if missing:
        out = sweep.vlm.generate(sweep.images.pixels(missing), [sweep.prompts[i] for i in missing],
                                 sweep.cfg.max_new_tokens)
        for b, i in enumerate(missing):
            sweep.clean[i] = out.token_ids[b][out.mask[b]].tolist()
    vlm = sweep.vlm
    return {b: make_objective(sweep.cfg.objective, vlm.model, vlm.processor, sweep.prompts[units[b].item],
                              sweep.clean[units[b].item], original_ids=vlm.original_ids, vocab=vlm.vocab)
            for b in hit}


def base_record(sweep: Sweep, u: Unit, prompt: str) -> dict:
    """What a record says about its unit, before anything is measured."""
    it, spec = sweep.items[u.item], u.spec
    rec = {"image": it.key, "question": it.question, **dict(it.extra), "prompt": prompt,
           "attack": u.attack, "attack_name": u.name, "level_kind": spec.level if spec else "none",
           "epsilon": u.epsilon}
    if u.severity is not None:
        rec["severity"] = u.severity
    rec.update(trial=u.trial, seed=u.seed, **(spec.fields(u.level) if spec else {}))
    return rec


def run_batch(sweep: Sweep, units: list[Unit]) -> list[dict]:
    """Perturb and measure one batch of units; return their records in order.

    The clean units of a batch fill in sweep.clean, which later batches' gradient attacks use."""
    losses = pgd_losses(sweep, units)
    xs = perturb_batch(sweep, sweep.images.pixels([u.item for u in units]), units, losses)
    prompts = [sweep.prompts[u.item] for u in units]
    pad = max([u.spec.pad_left for u in units if u.spec is not None], default=0)
    records = []
    for u, prompt, fields in zip(units, prompts, serve(sweep, Batch(xs, prompts, units, pad))):
        it = sweep.items[u.item]
        rec = {**base_record(sweep, u, prompt), **fields}
        if "answer" in rec:
            if u.attack == CLEAN:
                sweep.clean[u.item] = rec["answer_ids"]
            if it.answers:
                rec["references"] = list(it.answers)
                rec["correct"] = score(it.match, rec["answer"], it.answers)
        records.append(rec)
    return records
