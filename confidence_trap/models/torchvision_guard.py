"""torchvision, which this project does not need, kept from breaking a run.

    from confidence_trap.models.torchvision_guard import state
    state()   # ("ok", "0.28.0"), ("absent", "not installed") or ("broken", "RuntimeError: ...")

transformers imports torchvision wherever `importlib.util.find_spec("torchvision")` finds it
(`transformers.utils.import_utils.is_torchvision_available`, cached once transformers is imported),
to use its torchvision image processors. A torchvision built for another torch raises on import
(`RuntimeError: operator torchvision::nms does not exist`), and every `AutoProcessor` then fails
with "Could not import module 'AutoProcessor'", a traceback that never names torchvision.

LLaVA needs none of it: the pixels a model sees are built here (confidence_trap/models/images.py),
and without torchvision transformers takes its PIL image processors, whose settings (mean, size)
are the same. So where torchvision is broken, `hide_if_broken()` (called by confidence_trap.models
when it is imported, before anything of the project imports transformers) puts None in
`sys.modules["torchvision"]`, which makes `find_spec` answer None and `import torchvision` fail as if
it were not installed; `load()` says so in one line. Qwen2-VL's processor does need torchvision
(its video processor): preflight refuses it with `needs_message`, naming torchvision.
"""
from __future__ import annotations

import importlib.util
import sys

# Model types (config.json) whose transformers processor cannot be built without torchvision.
NEEDS_TORCHVISION = {"qwen2_vl": "Qwen2-VL", "qwen2_5_vl": "Qwen2.5-VL"}
# What transformers imports of torchvision (image_utils, the torchvision image processors).
PROBE = "torchvision.transforms.v2.functional"

_state: tuple[str, str] | None = None


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def state() -> tuple[str, str]:
    """("absent" | "ok" | "broken", the version, or the import's error in one line). Imports
    torchvision in this process once (transformers would import it anyway)."""
    global _state
    if _state is not None:
        return _state
    if importlib.util.find_spec("torchvision") is None:  # also where it is hidden already
        _state = ("absent", "not installed")
        return _state
    try:
        importlib.import_module(PROBE)
        _state = ("ok", _version("torchvision") or "version unknown")
    except Exception as e:  # noqa: BLE001 - any failure to import is the state we report
        first = (str(e).strip().splitlines() or [""])[0]
        _state = ("broken", f"{type(e).__name__}: {first}")
    return _state


def record(status: str, detail: str) -> None:
    """Take a verdict found in another process (the sanity check imports torchvision in a
    subprocess, and hides a broken one before this module can try it in its own)."""
    global _state
    _state = (status, detail)
    hide_if_broken()


def install_command() -> str:
    """The pip command for the torchvision built with this torch."""
    import torch

    base, _, local = torch.__version__.partition("+")
    major, minor = (int(x) for x in base.split(".")[:2])
    index = f" --index-url https://download.pytorch.org/whl/{local}" if local else ""
    # torchvision 0.(minor+15) is the release built with torch 2.(minor) (2.6 -> 0.21).
    return f"pip install 'torchvision==0.{minor + 15}.*'{index}" if major == 2 else "pip install torchvision"


def fix() -> str:
    """What mends a torchvision that does not import against this torch."""
    return (f"`pip uninstall torchvision` (this project does not need it), or `{install_command()}` "
            f"(the build for this torch)")


def hide_if_broken() -> bool:
    """Hide a torchvision that does not import, so that transformers works without it. Returns
    whether it is hidden. Silent: load() says it (warn_once), where a model is about to load."""
    if state()[0] != "broken":
        return False
    if sys.modules.get("torchvision", 0) is not None:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # the half-imported modules of the failed import
        sys.modules["torchvision"] = None
        utils = sys.modules.get("transformers.utils.import_utils")
        if utils is not None:  # transformers came first: forget its cached answer (its lazy tables stay)
            utils.is_torchvision_available.cache_clear()
    return True


_warned = False


def warn_once(say=None) -> None:
    """One line, once per process, where a broken torchvision was hidden; `say` default: stderr."""
    global _warned
    if _warned or not hide_if_broken():
        return
    _warned = True
    name = " ".join(filter(None, ["torchvision", _version("torchvision")]))
    (say or (lambda m: print(m, file=sys.stderr)))(
        f"warning: {name} does not import against this torch ({state()[1]}); running without it "
        f"(LLaVA does not need it). To fix: {fix()}")


def needs_it(config: dict | None, source: str = "") -> str | None:
    """The family's name where a checkpoint's config.json (or, with none at hand, its name) says
    its processor needs torchvision and torchvision is not usable here, else None."""
    if config is not None:
        family = NEEDS_TORCHVISION.get(config.get("model_type"))
    else:  # a hub id about to be downloaded: Qwen/Qwen2-VL-2B-Instruct, Qwen/Qwen2.5-VL-3B-Instruct
        family = next((f for f in NEEDS_TORCHVISION.values() if f.lower() in source.lower()), None)
    if family is None or state()[0] == "ok":
        return None
    return family


def needs_message(family: str, model: str) -> str:
    status, detail = state()
    why = "is not installed" if status == "absent" else f"does not import here ({detail})"
    return (f"--model {model}: {family}'s processor needs torchvision, which {why}; "
            f"install the torchvision built for this torch: `{install_command()}`")


__all__ = ["state", "record", "hide_if_broken", "warn_once", "needs_it", "needs_message", "fix", "NEEDS_TORCHVISION"]
