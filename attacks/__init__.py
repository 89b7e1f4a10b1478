"""The attack registry: every perturbation of x in [0,1] the sweep can apply, by name.

    import attacks
    attacks.names()                         # ['proxy', 'pgd', 'corruption:gaussian_noise', ...]
    spec = attacks.get("corruption:jpeg")   # unknown names raise ValueError listing the valid ones
    spec.level                              # "severity" (or "epsilon")
    x_adv = spec.apply(x, levels=[3, 3], generators=[g1, g2], params={})

Each attack is one file with one function of x float [B,3,H,W] in [0,1] -> x_adv in [0,1]
(proxy.py, pgd.py, corruptions.py) and one entry here: its name, what its level is (ε in [0,1]
pixel units, or a severity 1..5), whether it needs a loss (true-gradient PGD takes a callable
that holds the model), the parameters it reads (names of confidence_trap.runner.config.Config fields, so the
command line derives its flags and refuses one the attack does not use), and `apply`, which runs
it on a batch with one level and one torch.Generator per image. Adding an attack is one file and
one entry.

Two entries have no level ("none") and are not perturbations: `blank` (the prior pass, a uniform
image of the model's image mean, attacks/blank.py) and `repeat` (the null control, the clean
input unchanged, generated again in another batch composition). Every run adds one unit of each
per item (confidence_trap/runner/sweep.py; --no-prior, --no-null-control), and the analysis keeps them out of
the per-level statistics. `apply` also gets "image_mean" in its params (the processor's mean
colour), which only `blank` reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .corruptions import CORRUPTIONS


@dataclass(frozen=True)
class Attack:
    name: str
    level: str                    # "epsilon", "severity" or "none" (the blank and repeat passes)
    needs_loss: bool
    params: tuple[str, ...]       # the Config fields it reads
    apply: Callable = None        # (x, levels, generators, params, losses=None) -> x_adv
    doc: str = ""

    def record_name(self, params: dict) -> str:
        """The attack's name in records: pgd carries its objective ("pgd:entropy_min")."""
        return f"pgd:{params['objective']}" if self.name == "pgd" else self.name


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


ATTACKS = {
    "proxy": Attack("proxy", "epsilon", False, ("steps", "alpha"), _proxy,
                    "the study's gradient-free PGD-style proxy: random sign steps in the ε-ball"),
    "pgd": Attack("pgd", "epsilon", True, ("steps", "alpha", "objective"), _pgd,
                  "white-box PGD through the whole VLM, down the gradient of an objective"),
    **{f"corruption:{c}": Attack(f"corruption:{c}", "severity", False, (), _corruption(c),
                                 f"ImageNet-C's {c.replace('_', ' ')}, severity 1..5")
       for c in CORRUPTIONS},
    "blank": Attack("blank", "none", False, (), _blank,
                    "the prior pass: the question asked of a uniform image of the model's mean colour"),
    "repeat": Attack("repeat", "none", False, (), _repeat,
                     "the null control: the clean input again, in another batch composition"),
}
# The passes every run adds per item, in the order their units are laid out, and the Config
# field that turns each off.
PASSES = {"blank": "prior", "repeat": "null_control"}


def names(perturbations: bool = False) -> list[str]:
    """Every registered name; with perturbations=True only those --attack takes (not the passes)."""
    return [n for n, a in ATTACKS.items() if not perturbations or a.level != "none"]


def get(name: str) -> Attack:
    """The registry entry of `name` ("proxy", "pgd", "corruption:NAME"); ValueError if unknown."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(names(True))}")
    return ATTACKS[name]


__all__ = ["ATTACKS", "PASSES", "Attack", "get", "names"]
