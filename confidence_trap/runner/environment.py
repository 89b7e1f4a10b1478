"""The environment's checks for `experiments/sanity_check.py`: one Check per line it prints.

    from confidence_trap.runner.environment import probe_torchvision, versions, cuda, tex, hub_cache
    probe_torchvision()   # ("broken", "RuntimeError: operator torchvision::nms does not exist")

Each check is a status ("ok", "warning": a run works but something is missing or slow, "problem":
the model cannot run), one line of text and, where it is not ok, the command that fixes it.
torchvision is imported in a subprocess, so one that crashes the interpreter cannot take this one
down; nothing here loads a model.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
TEX_APT = "sudo apt-get install texlive-latex-base texlive-latex-recommended lmodern"
PROBE = ("import importlib.util, sys\n"
         "if importlib.util.find_spec('torchvision') is None: print('absent'); sys.exit(0)\n"
         "import torchvision, torchvision.transforms.v2.functional\n"
         "print(torchvision.__version__)\n")


@dataclass
class Check:
    name: str
    status: str         # "ok", "warning" or "problem"
    text: str
    fix: str | None = None


def probe_torchvision(timeout: float = 120) -> tuple[str, str]:
    """("absent" | "ok" | "broken", the version or the import's last error line), from a subprocess."""
    try:
        r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "broken", f"import torchvision did not finish in {timeout:.0f} s"
    if r.returncode == 0:
        out = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        return ("absent", "not installed") if out == "absent" else ("ok", out)
    if r.returncode < 0:
        return "broken", f"import torchvision crashed the interpreter (signal {-r.returncode})"
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    return "broken", lines[-1].strip() if lines else f"import torchvision exited with {r.returncode}"


def _requirement(name: str) -> str | None:
    """requirements.txt's specifier for `name` (">=5.0,<6"), or None."""
    try:
        from packaging.requirements import Requirement

        with open(os.path.join(REPO, "requirements.txt"), encoding="utf-8") as f:
            for line in f:
                line = line.split("#")[0].strip()
                if line and Requirement(line).name == name:
                    return line[len(name):].strip()  # as written: ">=5.0,<6"
    except (OSError, ImportError, ValueError):
        return None
    return None


def versions() -> list[Check]:
    """torch and transformers, each against requirements.txt."""
    import torch
    import transformers
    from packaging.specifiers import SpecifierSet

    checks = []
    for name, version in (("torch", torch.__version__), ("transformers", transformers.__version__)):
        spec = _requirement(name)
        if spec and not SpecifierSet(spec).contains(version.split("+")[0], prereleases=True):
            checks.append(Check(name, "problem", f"{version}, outside requirements.txt's {name}{spec}",
                                f'pip install "{name}{spec}"'))
        else:
            checks.append(Check(name, "ok", version + (f" (requirements.txt: {name}{spec})" if spec else "")))
    return checks


def torchvision_check(found: tuple[str, str], family: str | None) -> Check:
    """found: probe_torchvision(); family: the model's name where its processor needs torchvision."""
    from confidence_trap.models import torchvision_guard

    import torch

    status, detail = found
    if status == "ok":
        return Check("torchvision", "ok", f"{detail}, imports against torch {torch.__version__}")
    if family:
        return Check("torchvision", "problem", f"{'not installed' if status == 'absent' else detail}; "
                     f"{family}'s processor needs it", torchvision_guard.install_command())
    if status == "absent":
        return Check("torchvision", "ok", "not installed (not needed: transformers uses its PIL image "
                     "processors; only Qwen2-VL's processor needs it)")
    return Check("torchvision", "warning", f"installed but does not import against torch {torch.__version__} "
                 f"({detail}); runs go on without it, which LLaVA does not need", torchvision_guard.fix())


def cuda(device: str) -> Check:
    import torch

    if not torch.cuda.is_available():  # --device cuda without a GPU was refused before (check_device)
        build = f" (torch {torch.__version__} is a CPU build)" if torch.version.cuda is None else ""
        return Check("CUDA", "ok", f"no CUDA GPU visible{build}; this check runs on the {device.upper()}")
    index = (torch.device(device).index or 0) if device.startswith("cuda") else 0
    free, total = torch.cuda.mem_get_info(index)
    return Check("CUDA", "ok", f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s); cuda:{index} "
                 f"{torch.cuda.get_device_name(index)}, {total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")


def tex() -> Check:
    """pdflatex, bibtex and lmodern.sty: what the slow tier needs to build the paper."""
    found = {t: shutil.which(t) for t in ("pdflatex", "bibtex", "kpsewhich")}
    sty = None
    if found["kpsewhich"]:
        try:
            r = subprocess.run(["kpsewhich", "lmodern.sty"], capture_output=True, text=True, timeout=30)
            sty = r.stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            sty = None
    missing = [n for n, p in (("pdflatex", found["pdflatex"]), ("bibtex", found["bibtex"]), ("lmodern.sty", sty))
               if not p]
    if not missing:
        return Check("TeX", "ok", f"pdflatex {found['pdflatex']}, bibtex {found['bibtex']}, lmodern.sty {sty}")
    return Check("TeX", "warning", f"missing {', '.join(missing)}: a run does not need TeX; the slow tier's "
                 f"paper tests do (they skip here)", f"{TEX_APT} (Debian, Ubuntu; macOS: MacTeX)")


def hub_cache(name: str, source: str, revision: str | None) -> Check:
    """Where the Hugging Face cache is, whether the model is in it, and the offline flags."""
    from huggingface_hub import constants

    flags = [f"{f}={os.environ[f]}" for f in OFFLINE_FLAGS if os.environ.get(f)]
    where = f"{constants.HF_HUB_CACHE}; offline flags: {', '.join(flags) or 'none set'}"
    if os.path.isdir(source):
        return Check("hub cache", "ok", f"{where}; --model {name} is a local folder ({source}), not from the hub")
    from confidence_trap.models.identify import checkpoint_file

    config = checkpoint_file(source, "config.json", revision)
    weights = [w for w in ("model.safetensors.index.json", "model.safetensors")
               if checkpoint_file(source, w, revision)]
    if config and weights:
        return Check("hub cache", "ok", f"{where}; {source}: cached ({os.path.dirname(config)})")
    offline = any(os.environ.get(f, "0").lower() in ("1", "true", "yes") for f in OFFLINE_FLAGS[:2])
    said = f"{where}; {source}: {'config only, no weights' if config else 'not'} cached"
    if offline:
        return Check("hub cache", "problem", said + ", and downloads are off",
                     f"hf download {source} (on a networked machine, into this cache), or unset HF_HUB_OFFLINE")
    return Check("hub cache", "warning", said + ": the first load downloads it", f"hf download {source}")
