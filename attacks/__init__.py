"""The attack registry: every perturbation of x in [0,1] the sweep can apply, by name.

    import attacks
    attacks.names()                         # ['proxy', 'pgd', 'corruption:gaussian_noise', ...]
    spec = attacks.get("corruption:jpeg")   # unknown names raise ValueError listing the valid ones
    spec.level                              # "severity" (or "epsilon", or "none")
    x_adv = spec.apply(x, levels=[3, 3], generators=[g1, g2], params={})

Each attack is one file with one function of x float [B,3,H,W] in [0,1] -> x_adv in [0,1]
(proxy.py, pgd.py, corruptions.py, original.py) and one entry here. The entry holds everything
the engine must know about it, so the engine has no case of its own for any name:
  level      what its level is: ε in [0,1] pixel units, a severity 1..5, or "none" (one unit
             per item, no trials: the passes, and original_clamp, which has no randomness)
  needs_loss whether it needs a loss (true-gradient PGD takes a callable that holds the model)
  params     the confidence_trap.runner.config.Config fields it reads (the command line derives
             its flags from them and refuses one the run's attacks do not use)
  needs      what it takes from the model beside the Config: "image_mean", "image_std" (the
             processor's normalization), handed in `params` under those names
  record_as  its name in records, formatted with its params ("pgd:{objective}"); "" : its name
  record_fields  (level) -> the extra fields its records carry (original_noise's "sigma")
  apply      runs it on a batch with one level and one torch.Generator per image
Adding an attack is one file and one entry.

Passes are entries that are not perturbations: every run adds one unit of each per item, and the
Config field in `turned_off_by` turns it off. `blank` (the prior pass, a uniform image of the
model's image mean, attacks/blank.py; --no-prior) comes right after the clean units; `repeat`
(the null control, the clean input unchanged, generated again; --no-null-control) has `last`:
its units come after every perturbation, in a seeded shuffle of the items, and `pad_left`: its
batches run with that much more left padding, so each clean input meets other neighbours at
another padded length (confidence_trap/runner/sweep.py). The analysis keeps passes out of the
per-level statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .corruptions import CORRUPTIONS

NULL_PAD = 8  # extra left padding of a batch that holds null-control units (tokens)


@dataclass(frozen=True)
class Attack:
    name: str
    level: str                    # "epsilon", "severity" or "none"
    needs_loss: bool
    params: tuple[str, ...]       # the Config fields it reads
    apply: Callable = None        # (x, levels, generators, params, losses=None) -> x_adv
    doc: str = ""
    needs: tuple[str, ...] = ()   # what the model hands it: "image_mean", "image_std"
    record_as: str = ""           # its record name, formatted with params; "": the name
    record_fields: Callable = None  # level -> {field: value} its records carry besides
    turned_off_by: str = ""       # a pass: the Config field that turns it off ("": a perturbation)
    last: bool = False            # a pass laid out after the perturbations, in a seeded order
    pad_left: int = 0             # a pass whose batches run with this much more left padding

    @property
    def is_pass(self) -> bool:
        return bool(self.turned_off_by)

    def record_name(self, params: dict) -> str:
        """The attack's name in records ("pgd:entropy_min" for pgd, else its name)."""
        return self.record_as.format(**params) if self.record_as else self.name

    def fields(self, level) -> dict:
        """The extra fields a record of this attack at `level` carries ({} for most)."""
        return dict(self.record_fields(level)) if self.record_fields else {}


def _proxy(x, levels, generators, params, losses=None):
    from .proxy import pgd_proxy

    return pgd_proxy(x, levels, steps=params["steps"], alpha=params["alpha"], generator=generators)


def _pgd(x, levels, generators, params, losses=None):
    """One image at a time: each image has its own loss (its own clean answer)."""
    import torch

    from .pgd import pgd_gradient

    return torch.cat([pgd_gradient(x[b:b + 1], eps, losses[b], steps=params["steps"], alpha=params["alpha"],
                                   generator=g) for b, (eps, g) in enumerate(zip(levels, generators))])


def _blank(x, levels, generators, params, losses=None):
    from .blank import blank

    return blank(x, params["image_mean"])


def _repeat(x, levels, generators, params, losses=None):
    return x  # the clean input: what differs is the batch it is generated in (confidence_trap/runner/sweep.py)


def _corruption(name: str):
    def apply(x, levels, generators, params, losses=None):
        import torch

        from .corruptions import corrupt

        return torch.cat([corrupt(x[b:b + 1], name, int(s), generator=g)
                          for b, (s, g) in enumerate(zip(levels, generators))])
    return apply


def _original(kind: str):
    def apply(x, levels, generators, params, losses=None):
        from .original import original

        return original(x, kind, levels, params["image_mean"], params["image_std"], generators)
    return apply


def _sigma(level) -> dict:
    from .original import sigma

    return {"sigma": sigma(level)}


_NORMALIZED = ("image_mean", "image_std")
ATTACKS = {
    "proxy": Attack("proxy", "epsilon", False, ("steps", "alpha"), _proxy,
                    "the study's gradient-free PGD-style proxy: random sign steps in the ε-ball"),
    "pgd": Attack("pgd", "epsilon", True, ("steps", "alpha", "objective"), _pgd,
                  "white-box PGD through the whole VLM, down the gradient of an objective",
                  record_as="pgd:{objective}"),
    **{f"corruption:{c}": Attack(f"corruption:{c}", "severity", False, (), _corruption(c),
                                 f"ImageNet-C's {c.replace('_', ' ')}, severity 1..5")
       for c in CORRUPTIONS},
    "original_noise": Attack("original_noise", "epsilon", False, (), _original("noise"),
                             "the study's code: Gaussian noise σ = ε/10 on the normalized tensor, "
                             "then a clamp of that tensor to [0, 1]", _NORMALIZED, record_fields=_sigma),
    "original_clamp": Attack("original_clamp", "none", False, (), _original("clamp"),
                             "the study's clamp of the normalized tensor to [0, 1], without noise",
                             _NORMALIZED, record_fields=lambda level: {"sigma": 0.0}),
    "original_noise_unclamped": Attack("original_noise_unclamped", "epsilon", False, (),
                                       _original("noise_unclamped"),
                                       "the study's noise σ = ε/10 on the normalized tensor, without "
                                       "its clamp (clipped to valid pixels)", _NORMALIZED, record_fields=_sigma),
    "blank": Attack("blank", "none", False, (), _blank,
                    "the prior pass: the question asked of a uniform image of the model's mean colour",
                    ("image_mean",), turned_off_by="prior"),
    "repeat": Attack("repeat", "none", False, (), _repeat,
                     "the null control: the clean input again, in another batch composition",
                     turned_off_by="null_control", last=True, pad_left=NULL_PAD),
}
# The passes every run adds per item, in registry order, and the Config field that turns each off.
PASSES = {n: a.turned_off_by for n, a in ATTACKS.items() if a.is_pass}


def names(perturbations: bool = False) -> list[str]:
    """Every registered name; with perturbations=True only those --attack takes (not the passes)."""
    return [n for n, a in ATTACKS.items() if not perturbations or not a.is_pass]


def get(name: str) -> Attack:
    """The registry entry of `name` ("proxy", "pgd", "corruption:NAME", ...); ValueError if unknown."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(names(True))}")
    return ATTACKS[name]


def passes() -> list[Attack]:
    """The pass entries, in registry order."""
    return [a for a in ATTACKS.values() if a.is_pass]


__all__ = ["ATTACKS", "NULL_PAD", "PASSES", "Attack", "get", "names", "passes"]
