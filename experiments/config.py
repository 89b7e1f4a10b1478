"""The experiment's config: one dataclass of defaults, YAML presets, command-line overrides.

    python experiments/entropy_analysis.py --config configs/study.yaml --trials 3

YAML keys are the flags' names (dashes or underscores); flags given on the command line win.
Unknown keys and values of the wrong type are refused with one line.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field, fields

from models.errors import InputError


@dataclass
class Config:
    model: str = "llava-1.5-7b"
    images: list = field(default_factory=list)   # files/folders/manifest.json; [] = bundled set
    prompt: str | None = None                     # one question for every image (drops references)
    epsilons: list = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.5])
    trials: int = 5
    seed: int = 0
    max_new_tokens: int = 128                     # the original LLaVA eval's default
    batch_size: int | None = None                 # None: the largest that fits (see models.batching)
    max_memory: str | None = None                 # cap for the automatic batch: "14.5GiB" (a T4)
    static_cache: bool = False                    # static KV cache; on CUDA the decode step is compiled
    device: str | None = None                     # None: cuda if available, else cpu
    dtype: str = "auto"                           # auto: float16 on CUDA, float32 on CPU
    vision_dtype: str = "auto"                    # auto: float32 for LLaVA-1.5 on CUDA (as the original), else dtype
    prompt_format: str | None = None              # None: llava_v1 for LLaVA-1.5, else chat_template
    revision: str | None = None
    attack: str = "proxy"                         # proxy | pgd | corruption:NAME
    steps: int = 10
    alpha: float | None = None
    objective: str = "entropy_min"                # for --attack pgd
    severities: list = field(default_factory=lambda: [1, 2, 3, 4, 5])  # for corruption attacks
    out: str = "results"
    fresh: bool = False

    # Keys that change what is generated: a rerun into the same --out must agree on all of them.
    RESULT_KEYS = ("model", "images", "prompt", "epsilons", "trials", "seed", "max_new_tokens",
                   "dtype", "vision_dtype", "prompt_format", "revision", "attack", "steps", "alpha", "objective",
                   "severities")


def parse_fraction(text) -> float:
    """'0.3', '8/255' -> float."""
    try:
        if isinstance(text, str) and "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (TypeError, ValueError, ZeroDivisionError):
        raise InputError(f"not a number: {text!r} (write ε as 0.3 or 8/255)") from None


def _coerce(name: str, value, default):
    """Check a YAML value against the default's type."""
    if name in ("epsilons",):
        value = value if isinstance(value, list) else [value]
        return [parse_fraction(v) for v in value]
    if name in ("images", "severities"):
        value = value if isinstance(value, list) else [value]
        if name == "images":
            return [str(v) for v in value]
        try:
            return [int(v) for v in value]
        except (TypeError, ValueError):
            raise InputError(f"severities must be integers 1..5, got {value!r}") from None
    if value is None:
        return None
    kind = type(default) if default is not None else None
    if name in ("batch_size",):
        kind = int
    if name in ("alpha",):
        kind = float
    if name in ("prompt", "device", "prompt_format", "revision"):
        kind = str
    if kind is bool:
        if not isinstance(value, bool):
            raise InputError(f"config key {name!r} must be true or false, got {value!r}")
        return value
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise InputError(f"config key {name!r} must be an integer, got {value!r}")
    if kind is float and not isinstance(value, (int, float)):
        raise InputError(f"config key {name!r} must be a number, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise InputError(f"config key {name!r} must be a string, got {value!r}")
    return float(value) if kind is float else value


def load_yaml(path: str) -> dict:
    import yaml

    if not os.path.isfile(path):
        raise InputError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise InputError(f"malformed YAML in {path}: {str(e).splitlines()[0]}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config file {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of flag names to values")
    known = {f.name for f in fields(Config)}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise InputError(f"unknown key {key!r} in {path}; known keys: {', '.join(sorted(known))}")
        out[name] = value
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Config()
    p.add_argument("--config", help="YAML file whose keys are these flags' names")
    p.add_argument("--model", help=f"registry name, hub id or checkpoint folder (default {d.model})")
    p.add_argument("--images", nargs="+", help="image files, folders or manifest.json files")
    p.add_argument("--prompt", help="ask this question of every image (references are dropped)")
    p.add_argument("--epsilons", nargs="+", help="L-inf budgets in [0,1] pixel units; 8/255 works")
    p.add_argument("--trials", type=int, help=f"perturbation seeds per ε (default {d.trials})")
    p.add_argument("--seed", type=int)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--batch-size", type=int, help="generations per batch (default: the largest that fits)")
    p.add_argument("--max-memory", help="memory budget for the automatic batch size, e.g. 14.5GiB")
    p.add_argument("--static-cache", action="store_true", default=None,
                   help="static KV cache (torch.compile of the decode step on CUDA): faster decoding")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--dtype", help="auto, float16, bfloat16 or float32")
    p.add_argument("--vision-dtype", help="vision tower dtype: auto (float32 for LLaVA-1.5 on CUDA, "
                   "as the original; else --dtype), float16, bfloat16 or float32")
    p.add_argument("--prompt-format", choices=["llava_v1", "vicuna_v1", "chat_template"],
                   help="llava_v1 (default for LLaVA-1.5, as the original's run_llava.py), vicuna_v1 "
                   "(LLaVA's own benchmark scripts), chat_template (the processor's; default for others)")
    p.add_argument("--revision", help="hub revision (commit, branch or tag)")
    p.add_argument("--attack", help="proxy (default), pgd, or corruption:NAME")
    p.add_argument("--steps", type=int, help="attack steps (default 10)")
    p.add_argument("--alpha", help="attack step size in pixel units (default 2.5·ε/steps)")
    p.add_argument("--objective", help="pgd objective: entropy_min, entropy_max or ce")
    p.add_argument("--severities", nargs="+", help="corruption severities, 1..5")
    p.add_argument("--out", help="output folder (default results/)")
    p.add_argument("--fresh", action="store_true", default=None, help="discard earlier records in --out")


def build_config(args: argparse.Namespace) -> tuple[Config, dict]:
    """Defaults <- YAML <- flags. Returns the config and the keys that were changed."""
    values = load_yaml(args.config) if getattr(args, "config", None) else {}
    for f in fields(Config):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    defaults = Config()
    cfg_kwargs = {}
    for name, value in values.items():
        if name == "alpha" and isinstance(value, str):
            value = parse_fraction(value)
        cfg_kwargs[name] = _coerce(name, value, getattr(defaults, name))
    cfg = Config(**cfg_kwargs)
    validate(cfg)
    changed = {k: v for k, v in dataclasses.asdict(cfg).items() if v != getattr(defaults, k)}
    return cfg, changed


def validate(cfg: Config) -> None:
    for e in cfg.epsilons:
        if not 0.0 <= e <= 1.0:
            raise InputError(f"ε must lie in [0, 1] (pixel units; 8/255 ≈ 0.031), got {e}")
    if not cfg.epsilons:
        raise InputError("give at least one ε")
    if cfg.trials < 1:
        raise InputError(f"--trials must be at least 1, got {cfg.trials}")
    if cfg.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1, got {cfg.max_new_tokens}")
    if cfg.batch_size is not None and cfg.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.max_memory is not None:
        from models.batching import parse_memory

        parse_memory(cfg.max_memory)
    from models import DTYPES

    for flag, value in (("--dtype", cfg.dtype), ("--vision-dtype", cfg.vision_dtype)):
        if value != "auto" and value not in DTYPES:
            raise InputError(f"unknown {flag} {value!r}; choose from auto, {', '.join(DTYPES)}")
    if cfg.steps < 1:
        raise InputError(f"--steps must be at least 1, got {cfg.steps}")
    for s in cfg.severities:
        if s not in (1, 2, 3, 4, 5):
            raise InputError(f"severities must be 1..5, got {s}")


def result_view(cfg: Config, resolved: dict) -> dict:
    """What a rerun must agree on: the result keys, with auto values resolved."""
    view = {k: getattr(cfg, k) for k in Config.RESULT_KEYS}
    view.update(resolved)
    return view
