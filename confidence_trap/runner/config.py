"""The experiment's config: one dataclass of defaults, YAML presets, flags derived from it.

    python experiments/entropy_analysis.py --config configs/study.yaml --trials 3

Each field of Config is one flag (`max_new_tokens` -> `--max-new-tokens`) and one YAML key (dashes
or underscores), typed by its annotation; flags given on the command line win over the YAML.
Unknown keys and values of the wrong type are refused with one line. A field that only some
attacks read (their `params` in the attack registry, attacks/__init__.py) is refused with any
other attack, and so is the level list the attack does not use (ε or severities).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from dataclasses import dataclass, field, fields

from confidence_trap.errors import InputError


def opt(default, help: str, *, result: bool = True, factory=None):
    """A Config field: its default, its --help text, and whether it changes what is generated
    (a resumed run must agree on every such field)."""
    meta = {"help": help, "result": result}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    model: str = opt("llava-1.5-7b", "registry name, hub id or checkpoint folder")
    images: list[str] = opt(None, "image files, folders or manifest.json files (default: the model's "
                            "bundled set)", factory=list)
    prompt: str | None = opt(None, "ask this question of every image (references are dropped)")
    task: str | None = opt(None, "a task YAML naming a dataset's columns, prompt suffix and metric "
                           "(configs/tasks/pope.yaml)")
    dataset: str | None = opt(None, "hub id, datasets.save_to_disk folder or folder of parquet files "
                              "(default: the task's)")
    split: str | None = opt(None, "dataset split (default: the task's)")
    limit: int | None = opt(None, "a seeded subset of N dataset rows, stratified by the task's category")
    attack: list[str] = opt(None, "one or more of proxy, pgd, corruption:NAME, original_noise, original_clamp, "
                            "original_noise_unclamped (attacks/__init__.py); each record names its own",
                            factory=lambda: ["proxy"])
    protocol: str = opt("answer", "answer: the entropy of the generated answer (the study's paper); prompt: "
                        "one teacher-forced pass over the prompt, no generation (the study's own code)")
    epsilons: list[float] = opt(None, "L-inf budgets in [0,1] pixel units; 8/255 works",
                                factory=lambda: [0.1, 0.2, 0.3, 0.5])
    severities: list[int] = opt(None, "corruption severities, 1..5", factory=lambda: [1, 2, 3, 4, 5])
    trials: int = opt(5, "perturbation seeds per level")
    seed: int = opt(0, "the run's seed (perturbations, sampling, subsets)")
    steps: int = opt(10, "attack steps")
    alpha: float | None = opt(None, "attack step size in pixel units (default 2.5·ε/steps)")
    objective: str = opt("entropy_min", "what --attack pgd minimises: entropy_min, entropy_max or ce")
    samples: int = opt(0, "K answers sampled per input for semantic entropy, and K small seeded "
                       "perturbations for consistency entropy (0: off)")
    temperature: float = opt(1.0, "sampling temperature for --samples")
    max_new_tokens: int = opt(128, "longest answer in tokens (the original LLaVA eval's default)")
    dtype: str = opt("auto", "auto (float16 on CUDA, float32 on CPU), float16, bfloat16 or float32")
    vision_dtype: str = opt("auto", "vision tower dtype: auto (float32 for LLaVA-1.5 on CUDA, as the "
                            "original; else --dtype), float16, bfloat16 or float32")
    prompt_format: str | None = opt(None, "llava_v1 (default for LLaVA-1.5, as the original's "
                                    "run_llava.py), vicuna_v1 (LLaVA's benchmark scripts), plain (the image "
                                    "and the question, no conversation: the study's own code) or chat_template")
    revision: str | None = opt(None, "hub revision (commit, branch or tag)")
    batch_size: int | None = opt(None, "generations per batch (default: the smaller of what fits and the "
                                 "throughput curve's knee)", result=False)
    max_memory: str | None = opt(None, "memory budget for the automatic batch size, e.g. 14.5GiB", result=False)
    static_cache: bool = opt(False, "force the compiled path: a static KV cache (its decode step compiled on "
                             "CUDA) whether or not the compile pays (confidence_trap/models/decoding.py)", result=False)
    compile: bool = opt(True, "on CUDA, the static KV cache with a compiled decode step where the run "
                        "has enough batches of one shape to repay the compile (--no-compile: eager)",
                        result=False)
    deterministic: bool = opt(False, "byte-identical records between two runs of one command on one GPU "
                              "(eager attention in the decode steps; see docs)", result=False)
    null_control: bool = opt(True, "generate every clean input a second time in another batch "
                             "composition and report the run's own noise floor (summary.json: noise)")
    prior: bool = opt(True, "ask every question once more of a blank image (the CLIP mean colour): "
                      "the item's language-prior answer (attack 'blank'; summary.json: prior)")
    min_effect: float = opt(0.01, "δ in nats: the smallest mean Δ a verdict calls a fall or a rise, "
                            "and the margin of the equivalence test (confidence_trap/analysis/verdicts.py: why 0.01)", result=False)
    device: str | None = opt(None, "cpu, cuda or cuda:N (default: cuda if available)", result=False)
    out: str = opt("results", "output folder", result=False)
    fresh: bool = opt(False, "discard earlier records in --out and start over", result=False)

    def __post_init__(self):
        if isinstance(self.attack, str):  # Config(attack="pgd"): one attack
            self.attack = [self.attack]


# Keys that change what is generated: a rerun into the same --out must agree on all of them.
RESULT_KEYS = tuple(f.name for f in fields(Config) if f.metadata["result"])
LEVELS = {"epsilon": "epsilons", "severity": "severities"}


def parse_fraction(text) -> float:
    """'0.3', '8/255' -> float."""
    try:
        if isinstance(text, str) and "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        if isinstance(text, bool):
            raise TypeError
        return float(text)
    except (TypeError, ValueError, ZeroDivisionError):
        raise InputError(f"not a number: {text!r} (write ε as 0.3 or 8/255)") from None


def _kinds() -> dict:
    """{field: (base type, is_list)} from the annotations."""
    out = {}
    for name, hint in typing.get_type_hints(Config).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) is list:
            out[name] = (args[0], True)
        else:
            out[name] = (args[0] if args else hint, False)
    return out


KINDS = _kinds()


def _one(name: str, kind, value):
    """One value (a flag's string or a YAML scalar) as `kind`, or one line saying why not."""
    flag = "--" + name.replace("_", "-")
    if kind is float:
        return parse_fraction(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{flag} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise InputError(f"{flag} must be an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"{flag} must be an integer, got {value!r}") from None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise InputError(f"{flag} must be a string, got {value!r}")
    return str(value)


def coerce(name: str, value):
    """A flag or YAML value for field `name`, typed by the field's annotation."""
    kind, is_list = KINDS[name]
    if value is None:
        return None
    if is_list:
        return [_one(name, kind, v) for v in (value if isinstance(value, list) else [value])]
    return _one(name, kind, value)


def load_yaml(path: str) -> dict:
    import yaml

    if not os.path.isfile(path):
        raise InputError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise InputError(f"malformed YAML in {yaml_error_place(path, e)}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config file {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of flag names to values")
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in KINDS:
            raise InputError(f"unknown key {key!r} in {path}; known keys: {', '.join(sorted(KINDS))}")
        out[name] = value
    return out


def yaml_error_place(path: str, e) -> str:
    """Where a YAML error is, in one line: "c.yaml, line 2, column 7: expected ',' or ']', but got
    ':' (parsing a flow sequence from line 1)"."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or problem is None:
        return f"{path}: {str(e).splitlines()[0]}"
    said = f"{path}, line {mark.line + 1}, column {mark.column + 1}: {problem}"
    start = getattr(e, "context_mark", None)
    if e.context and start is not None:
        said += f" ({e.context.replace('while ', '', 1)} from line {start.line + 1})"
    return said


def add_arguments(p: argparse.ArgumentParser, only=None) -> None:
    """One flag per Config field (or the fields named in `only`), with --config for a YAML file."""
    if only is None:
        p.add_argument("--config", help="YAML file whose keys are these flags' names")
    defaults = Config()
    for f in fields(Config):
        if only is not None and f.name not in only:
            continue
        kind, is_list = KINDS[f.name]
        default = getattr(defaults, f.name)
        shown = "" if default in (None, [], False) else f" (default {default if not is_list else ' '.join(map(str, default))})"
        flag = "--" + f.name.replace("_", "-")
        if kind is bool and default is True:  # on by default: the flag turns it off
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                           default=None, help=f.metadata["help"] + " (on by default; this flag turns it off)")
        elif kind is bool:
            p.add_argument(flag, action="store_true", default=None, help=f.metadata["help"])
        else:
            p.add_argument(flag, nargs="+" if is_list else None, help=f.metadata["help"] + shown)


def build_config(args: argparse.Namespace) -> tuple[Config, dict]:
    """Defaults <- YAML <- flags. Returns the config and the keys that differ from the defaults."""
    values = load_yaml(args.config) if getattr(args, "config", None) else {}
    for name in KINDS:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    cfg = Config(**{k: coerce(k, v) for k, v in values.items()})
    validate(cfg)
    defaults = Config()
    changed = {k: v for k, v in dataclasses.asdict(cfg).items() if v != getattr(defaults, k)}
    return cfg, changed


def validate(cfg: Config) -> None:
    """Everything that can be checked without a model or a file: one line for the first problem."""
    from attacks.pgd import OBJECTIVES
    from confidence_trap.models import DTYPES
    from confidence_trap.models.prompts import check_format

    validate_attacks(cfg)
    validate_protocol(cfg)
    if cfg.objective not in OBJECTIVES:
        raise InputError(f"unknown --objective {cfg.objective!r}; choose from {', '.join(OBJECTIVES)}")
    for name in ("trials", "max_new_tokens", "steps"):
        if getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    for name in ("batch_size", "limit"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.samples < 0:
        raise InputError(f"--samples must be 0 (off) or more, got {cfg.samples}")
    if cfg.samples == 1:
        raise InputError("--samples needs at least 2 answers to measure their spread (0 turns it off)")
    if not cfg.temperature > 0:
        raise InputError(f"--temperature must be positive, got {cfg.temperature}")
    if cfg.max_memory is not None:
        from confidence_trap.models.batching import parse_memory

        parse_memory(cfg.max_memory)
    for flag, value in (("--dtype", cfg.dtype), ("--vision-dtype", cfg.vision_dtype)):
        if value != "auto" and value not in DTYPES:
            raise InputError(f"unknown {flag} {value!r}; choose from auto, {', '.join(DTYPES)}")
    if cfg.prompt_format is not None:
        check_format(cfg.prompt_format)
    if cfg.task is None:
        for name in ("dataset", "split", "limit"):
            if getattr(cfg, name) is not None:
                raise InputError(f"--{name} needs --task (the file that names the dataset's columns "
                                 f"and metric, e.g. configs/tasks/pope.yaml)")
    elif cfg.images or cfg.prompt is not None:
        raise InputError("--task runs a dataset; --images and --prompt are for image runs: give one or the other")


def validate_attacks(cfg: Config) -> None:
    """The run's attacks: registered perturbations, each once; the parameters and level lists
    given are ones they read, and every level list they read has a value."""
    import attacks

    try:
        specs = [attacks.get(a) for a in cfg.attack]
    except ValueError as e:
        raise InputError(str(e)) from None
    named = ", ".join(cfg.attack)
    if not specs:
        raise InputError(f"give at least one --attack: {', '.join(attacks.names(True))}")
    if len(set(cfg.attack)) < len(cfg.attack):
        raise InputError(f"--attack names an attack twice: {named}")
    for a in specs:
        if a.is_pass:
            raise InputError(f"--attack {a.name} is a pass every run makes ({a.doc}; --no-"
                             f"{a.turned_off_by.replace('_', '-')} skips it), not a perturbation: choose "
                             f"from {', '.join(attacks.names(True))}")
    defaults = Config()
    uses = {n: [a.name for a in attacks.ATTACKS.values() if n in a.params]
            for n in {p for a in attacks.ATTACKS.values() for p in a.params}}
    for name, users in sorted(uses.items()):
        if not any(name in a.params for a in specs) and getattr(cfg, name) != getattr(defaults, name):
            raise InputError(f"--{name.replace('_', '-')} applies to --attack {', '.join(users)}, not {named}")
    kinds = {a.level for a in specs}
    takes = " and ".join(f"--{LEVELS[k]}" for k in LEVELS if k in kinds) or "no level"
    for kind, name in LEVELS.items():
        if kind not in kinds and getattr(cfg, name) != getattr(defaults, name):
            raise InputError(f"--{name} applies to attacks with a {kind}; --attack {named} takes {takes}")
        if kind in kinds and not getattr(cfg, name):
            raise InputError(f"give at least one value of --{name}")
    for e in cfg.epsilons:
        if not 0.0 <= e <= 1.0:
            raise InputError(f"ε must lie in [0, 1] (pixel units; 8/255 ≈ 0.031), got {e}")
    for s in cfg.severities:
        if s not in (1, 2, 3, 4, 5):
            raise InputError(f"severities must be 1..5, got {s}")


def validate_protocol(cfg: Config) -> None:
    """The protocol, and what it rules out: the prompt protocol generates no answer, so nothing
    that reads or teacher-forces one (sampled answers, the prior pass, a gradient attack)."""
    import attacks
    from confidence_trap.runner.sources import PROTOCOLS

    if cfg.protocol not in PROTOCOLS:
        raise InputError(f"unknown --protocol {cfg.protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if cfg.protocol == "answer":
        return
    why = f"--protocol {cfg.protocol} generates no answer"
    if cfg.samples:
        raise InputError(f"{why}, so there are none to sample: leave --samples at 0")
    for a in cfg.attack:
        if attacks.get(a).needs_loss:
            raise InputError(f"{why} for --attack {a} to teacher-force: use --protocol answer")
    if cfg.prior:
        raise InputError(f"{why}, and the prior pass compares answers (summary.json: prior): add --no-prior")


def plain(cfg: Config) -> dict:
    """The config as run.json writes it: one attack as its name, as before several could be given."""
    out = dataclasses.asdict(cfg)
    if len(out["attack"]) == 1:
        out["attack"] = out["attack"][0]
    return out


def result_view(cfg: Config, resolved: dict) -> dict:
    """What a rerun must agree on: the result keys, with auto values resolved."""
    whole = plain(cfg)
    view = {k: whole[k] for k in RESULT_KEYS}
    view.update(resolved)
    return view


def default_view_value(key: str):
    """A result key's value in a run.json written before the key existed: its default."""
    return getattr(Config(), key, None)
