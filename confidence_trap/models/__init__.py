"""The model registry and loader: `available_models()` and `load(name) -> VLM`.

    from confidence_trap.models import load
    vlm = load("tiny")                         # the embedded checkpoint, offline, CPU float32
    vlm = load("llava-1.5-7b")                 # llava-hf/llava-1.5-7b-hf, FP16 on the GPU, CLIP in float32
    vlm.generate(pixels, prompts, 32), vlm.forward(pixels, prompts), vlm.vocab
    model, processor = load("tiny")            # the transformers parts (a VLM unpacks into them)

`name` is a registry name, a Hugging Face hub id, or a local folder in Hugging Face layout. What
the engine asks of a loaded model is one object, confidence_trap.models.vlm.VLM.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from confidence_trap.errors import InputError
from confidence_trap.models.dtypes import (DTYPES, default_dtype, parse_dtype, set_vision_dtype, vision_dtype_for,
                                          vision_dtype_of, vision_parts)

from confidence_trap.models import torchvision_guard

torchvision_guard.hide_if_broken()  # before any of the project imports transformers (a broken one: see there)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_DIR = os.path.join(REPO, "models", "tiny-llava")  # the checkpoint is data: models/ at the top

# The only place a hub id is written. Values are hub ids or local folders.
MODELS = {
    "llava-1.5-7b": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
    "tiny": TINY_DIR,
    # Other architectures through the same pipeline (pixel layouts: confidence_trap/models/architectures.py).
    "llava-next-7b": "llava-hf/llava-v1.6-mistral-7b-hf",   # anyres: 672 px, 4 tiles + base view
    "qwen2-vl-2b": "Qwen/Qwen2-VL-2B-Instruct",             # patches: 448 px (their processor needs torchvision)
    "qwen2.5-vl-3b": "Qwen/Qwen2.5-VL-3B-Instruct",
    "smolvlm-256m": "HuggingFaceTB/SmolVLM-256M-Instruct",  # Idefics3 tiles: 2048 px, 16 tiles + global
    "smolvlm-2b": "HuggingFaceTB/SmolVLM-Instruct",
}


def available_models() -> list[str]:
    return list(MODELS)


def resolve(name: str) -> str:
    """Registry name, local folder or hub id -> what from_pretrained takes."""
    if name in MODELS:
        return MODELS[name]
    if os.path.isdir(name):
        return name
    if os.path.exists(name) or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise InputError(f"unknown model {name!r}: use a Hugging Face hub id (org/name), a checkpoint "
                         f"folder, or one of: {', '.join(available_models())}")
    return name


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_quota() -> int | None:
    """The CPUs this process may use: its affinity, and a cgroup CPU quota where one is set (a
    container limited to 2 CPUs on a 64-core host sees 64 cores but gets the time of 2)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n or 1 << 30, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def fit_cpu_threads() -> int:
    """torch's intra-op threads cut to cpu_quota(): more threads than CPUs make a CPU run several
    times slower, each thread waiting its turn. Returns the threads torch uses."""
    n = cpu_quota()
    if n and torch.get_num_threads() > n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def check_device(device: str | None) -> str:
    device = device or default_device()
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} was asked for, but no CUDA GPU is visible; use --device cpu")
    if str(device) not in ("cpu", "mps") and not str(device).startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use cpu, cuda or cuda:N")
    return str(device)


def _offline_message(name: str, source: str) -> str:
    return (f"model {name!r} ({source}) is not in the local Hugging Face cache and cannot be downloaded "
            f"here (offline or no access); download it on a networked machine (hf download "
            f"{source}) or run the embedded model instead: --model tiny")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect to the hub, so an offline machine fails in seconds, not minutes."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _cached(source: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(source, "config.json", revision=revision), str)


def preflight(name: str, revision: str | None = None) -> str:
    """The cheap checks before a load: a known name, a real checkpoint folder, a reachable hub.

    Returns what from_pretrained takes. Scripts call it before they touch their outputs."""
    source = resolve(name)
    local = os.path.isdir(source)
    if local and not os.path.isfile(os.path.join(source, "config.json")):
        hint = " (the embedded model: run models/tiny-llava/train.py)" if source == TINY_DIR else ""
        raise InputError(f"{source} is not a Hugging Face checkpoint folder: no config.json{hint}")
    if not local and not _cached(source, revision) and not hub_reachable():
        raise InputError(_offline_message(name, source))
    from confidence_trap.models.identify import checkpoint_config

    family = torchvision_guard.needs_it(checkpoint_config(source, revision), source)
    if family:
        raise InputError(torchvision_guard.needs_message(family, name))
    return source


def load(name: str, device: str | None = None, dtype=None, revision: str | None = None,
         attn_implementation: str = "sdpa", vision_dtype=None, prompt_format: str | None = None):
    """Load a vision-language model and its processor, weights straight onto `device`: a VLM.

    dtype: auto (FP16 on CUDA, float32 on CPU) or a name; vision_dtype: auto (see
    vision_dtype_for: float32 for LLaVA-1.5 on CUDA, as the original) or a name; prompt_format:
    how its prompts are written and tokenised (default: llava_v1 for LLaVA-1.5, else the chat
    template; confidence_trap.models.prompts)."""
    source = preflight(name, revision)
    torchvision_guard.warn_once()
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from confidence_trap.models.prompts import default_format
    from confidence_trap.models.vlm import VLM

    device = check_device(device)
    dtype = parse_dtype(dtype, device)
    local = os.path.isdir(source)
    kwargs = dict(revision=revision) if revision and not local else {}
    try:
        config = AutoConfig.from_pretrained(source, **kwargs)
        processor = AutoProcessor.from_pretrained(source, **kwargs)
        model = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, device_map={"": device}, attn_implementation=attn_implementation,
            **kwargs)
    except OSError as e:
        if local:
            raise InputError(f"cannot load checkpoint folder {source}: {str(e).splitlines()[0]}") from None
        raise InputError(_offline_message(name, source)) from None
    except ValueError as e:
        raise InputError(f"cannot load {name!r} ({source}): {str(e).splitlines()[0]}") from None
    vdtype = vision_dtype_for(vision_dtype, source, device, dtype, revision)
    if vdtype != dtype:
        set_vision_dtype(model, vdtype)
    model.eval()
    model.config_source = source
    model.config_revision = getattr(config, "_commit_hash", None)
    return VLM(model, processor, prompt_format or default_format(source, revision))


@dataclass(frozen=True)
class ModelPlan:
    """What a run will load, decided from names and files before any weights load."""
    source: str                # what from_pretrained takes
    device: str
    dtype: torch.dtype
    vision_dtype: torch.dtype
    prompt_format: str
    llava_1_5: bool            # told by its files (confidence_trap/models/identify.py)
    evidence: str              # why, in words

    @property
    def original_ids(self) -> bool:
        from confidence_trap.models.prompts import original_ids

        return original_ids(self.prompt_format)

    @property
    def checkpoint(self) -> str:
        return f"{'LLaVA-1.5' if self.llava_1_5 else 'not LLaVA-1.5'} ({self.evidence})"


def plan(name: str, revision: str | None = None, device: str | None = None, dtype="auto",
         vision_dtype="auto", prompt_format: str | None = None) -> ModelPlan:
    """The cheap checks and choices before a load: a known name, the device, the dtypes, the
    prompt format (llava_v1 for LLaVA-1.5, else the chat template). Raises InputError."""
    from confidence_trap.models.identify import llava_1_5_evidence

    source = preflight(name, revision)  # a wrong --model is named as such
    device = check_device(device)
    dtype = parse_dtype(dtype, device)
    llava, said = llava_1_5_evidence(source, revision)  # by its files, not its folder's name
    vdtype = vision_dtype_for(vision_dtype, source, device, dtype, revision)
    fmt = prompt_format or ("llava_v1" if llava else "chat_template")
    return ModelPlan(source, device, dtype, vdtype, fmt, llava, said)


def load_plan(mp: ModelPlan, revision: str | None = None):
    """load() what `mp` planned: a VLM."""
    return load(mp.source, device=mp.device, dtype=mp.dtype, revision=revision,
                vision_dtype=mp.vision_dtype, prompt_format=mp.prompt_format)
