"""The attack registry: every perturbation of x in [0,1] the sweep can apply, by name.

    import attacks
    attacks.names()                         # ['proxy', 'pgd', 'corruption:gaussian_noise', ...]
    spec = attacks.get("corruption:jpeg")   # unknown names raise ValueError listing the valid ones
    spec.level                              # "severity" (or "epsilon")
    x_adv = spec.apply(x, levels=[3, 3], generators=[g1, g2], params={})

Each attack is one file with one function of x float [B,3,H,W] in [0,1] -> x_adv in [0,1]
(proxy.py, pgd.py, corruptions.py) and one entry here: its name, what its level is (ε in [0,1]
pixel units, or a severity 1..5), whether it needs a loss (true-gradient PGD takes a callable
that holds the model), the parameters it reads (names of experiments.config.Config fields, so the
command line derives its flags and refuses one the attack does not use), and `apply`, which runs
it on a batch with one level and one torch.Generator per image. Adding an attack is one file and
one entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .corruptions import CORRUPTIONS


@dataclass(frozen=True)
class Attack:
    name: str
    level: str                    # "epsilon" or "severity"
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
}


def names() -> list[str]:
    return list(ATTACKS)


def get(name: str) -> Attack:
    """The registry entry of `name` ("proxy", "pgd", "corruption:NAME"); ValueError if unknown."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(ATTACKS)}")
    return ATTACKS[name]


__all__ = ["ATTACKS", "Attack", "get", "names"]
