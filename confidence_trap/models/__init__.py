"""The model registry and loader: `available_models()` and `load(name) -> (model, processor)`.

    from confidence_trap.models import load
    model, processor = load("tiny")            # the embedded checkpoint, offline, CPU float32
    model, processor = load("llava-1.5-7b")    # llava-hf/llava-1.5-7b-hf, FP16 on the GPU, CLIP in float32

`name` is a registry name, a Hugging Face hub id, or a local folder in Hugging Face layout.
"""
from __future__ import annotations

import os

import torch

from confidence_trap.errors import InputError
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


def default_dtype(device: str) -> torch.dtype:
    """FP16 on CUDA (a T4 has no bf16), float32 on CPU."""
    return torch.float16 if str(device).startswith("cuda") else torch.float32


DTYPES = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float32": torch.float32, "fp32": torch.float32}


def parse_dtype(dtype, device: str) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose from auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def vision_dtype_for(vision_dtype, source: str, device: str, dtype: torch.dtype,
                     revision: str | None = None) -> torch.dtype:
    """The vision tower's dtype. auto: float32 for LLaVA-1.5 on CUDA (a checkpoint told by its
    files, confidence_trap/models/identify.py), else the model's dtype.

    The original `load_pretrained_model` (llava/model/builder.py) loads CLIP with
    device_map="auto" by default and casts it to FP16 only when device_map != "auto", so on its
    usual path CLIP runs in float32 and its features are cast to FP16 before the projector
    (docs/LLAVA_NOTES.md). That costs about 0.6 GB more than an all-FP16 model (0.30 B
    parameters at 4 bytes instead of 2)."""
    from confidence_trap.models.prompts import is_llava_1_5

    if vision_dtype is None or vision_dtype == "auto":
        llava = str(device).startswith("cuda") and is_llava_1_5(source, revision)
        return torch.float32 if llava else dtype
    return parse_dtype(vision_dtype, device)


def vision_parts(model):
    """(vision tower, projector) of a Llava-family model, or (None, None)."""
    inner = getattr(model, "model", model)
    return getattr(inner, "vision_tower", None), getattr(inner, "multi_modal_projector", None)


def set_vision_dtype(model, dtype: torch.dtype) -> None:
    """Run the vision tower in `dtype`; its features are cast to the projector's dtype before
    the projector, as the original's CLIPVisionTower casts them back to the images' dtype.
    (CLIP casts its own input to its weights' dtype.)"""
    tower, projector = vision_parts(model)
    if tower is None or projector is None:
        raise InputError(f"--vision-dtype applies to Llava-family checkpoints (a vision_tower and a "
                         f"multi_modal_projector); {type(model).__name__} has none: leave it at auto")
    tower.to(dtype)
    if not getattr(projector, "_casts_input", False):
        def cast(module, args):
            w = next(module.parameters())
            return tuple(a.to(w.dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

        projector.register_forward_pre_hook(cast)
        projector._casts_input = True


def vision_dtype_of(model) -> str:
    """The vision tower's dtype as run.json writes it ("float32"), or the model's."""
    tower, _ = vision_parts(model)
    p = next((tower or model).parameters())
    return str(p.dtype).split(".")[-1]


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


def _hub_reachable(timeout: float = 3.0) -> bool:
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
    if not local and not _cached(source, revision) and not _hub_reachable():
        raise InputError(_offline_message(name, source))
    from confidence_trap.models.identify import checkpoint_config

    family = torchvision_guard.needs_it(checkpoint_config(source, revision), source)
    if family:
        raise InputError(torchvision_guard.needs_message(family, name))
    return source


def load(name: str, device: str | None = None, dtype=None, revision: str | None = None,
         attn_implementation: str = "sdpa", vision_dtype=None):
    """Load a vision-language model and its processor, weights straight onto `device`.

    dtype: auto (FP16 on CUDA, float32 on CPU) or a name; vision_dtype: auto (see
    vision_dtype_for: float32 for LLaVA-1.5 on CUDA, as the original) or a name."""
    source = preflight(name, revision)
    torchvision_guard.warn_once()
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

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
    return model, processor
