"""Check the environment, then load a model and answer one bundled image: proof that the stack
works before a long sweep.

    python experiments/sanity_check.py --model tiny
    python experiments/sanity_check.py --model llava-1.5-7b      # on a GPU (Colab T4: ~13.5 GiB)

Prints one line each for torch, transformers and torchvision (whether it imports against this
torch, tried in a subprocess), CUDA and its memory, TeX for the paper, the Hugging Face cache,
then the model: its class, dtype, device, parameter count, peak GPU memory (where there is a
GPU), the question, the answer and its mean token entropy. For a LLaVA-1.5 model it adds the
clean entropy the original study reported for its own input (paper/original_study.json), and the
command that measures it here. It ends with a verdict and, for each problem, the command that
fixes it. Exit status: 0 when the model runs (missing TeX or a broken torchvision the model does
not need are warnings), 2 on bad input (one line on stderr), 1 when the model cannot run here.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

try:
    from confidence_trap.errors import InputError
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

from confidence_trap.runner.environment import REPO, Check, probe_torchvision

ORIGINAL_CONFIG = "configs/original.yaml"  # the original experiment, as its code ran (issue 25)
ORIGINAL_IMAGE = "data/original/llava_logo.png"


def parse(argv):
    p = argparse.ArgumentParser(description="Check the environment, answer one bundled image, print its entropy.",
                                allow_abbrev=False)
    p.add_argument("--model", default="llava-1.5-7b")
    p.add_argument("--device")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--vision-dtype", default="auto", help="auto: float32 for LLaVA-1.5 on CUDA, as the original")
    p.add_argument("--image", help="default: the first image of the model's bundled set")
    p.add_argument("--max-new-tokens", type=int, default=128)

    def refuse(message):  # one line, not argparse's usage block
        raise InputError(f"{message} (see --help)")

    p.error = refuse
    args = p.parse_args(argv)
    if args.max_new_tokens < 1:
        raise InputError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    return args


def show(check: Check) -> None:
    mark = {"ok": "", "warning": "warning: ", "problem": "PROBLEM: "}[check.status]
    print(f"{check.name + ':':<14}{mark}{check.text}")


def answer_one(args, source: str, device: str, item) -> list[Check]:
    """Load the model, answer one image, print what it did. Returns the problems it met."""
    import torch

    from confidence_trap.models import load, vision_dtype_of
    from confidence_trap.models.generation import generate, text_dtype
    from confidence_trap.models.images import input_size, load_image, to_model_input
    from confidence_trap.models.prompts import build_prompt, default_format, original_ids
    from confidence_trap.models.vocab import scored_vocab
    from probes.entropy import mean_token_entropy

    image = load_image(item.path)
    model, processor = load(args.model, device=device, dtype=args.dtype, vision_dtype=args.vision_dtype)
    x = to_model_input(image, input_size(processor), processor.image_processor.image_mean)[None]
    fmt = default_format(source)
    prompt = build_prompt(processor, item.question, fmt)
    out = generate(model, processor, x.to(device), [prompt], args.max_new_tokens, original_ids=original_ids(fmt))
    h = float(mean_token_entropy(out.logits, out.mask)[0])
    print(f"{'model:':<14}{args.model} ({source})")
    print(f"{'class:':<14}{type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters")
    print(f"{'dtype:':<14}{text_dtype(model)} (vision tower {vision_dtype_of(model)})   device: {model.device}")
    print(f"{'vocabulary:':<14}{scored_vocab(model, processor).size} scored rows of "
          f"{model.get_output_embeddings().weight.shape[0]}")
    if str(device).startswith("cuda"):
        print(f"{'peak GPU:':<14}{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"{'image:':<14}{item.key}")
    print(f"{'question:':<14}{item.question}")
    print(f"{'answer:':<14}{out.answers[0]!r}")
    print(f"{'entropy:':<14}{h:.4f} nats (mean over {int(out.mask[0].sum())} tokens)")
    if h != h:
        return [Check("model", "problem", "the entropy is not finite (non-finite logits)",
                      "--dtype float32 (FP16 overflow), or check the checkpoint's weights")]
    return []


def original_line(args, source: str) -> str | None:
    """For a LLaVA-1.5 model: the clean entropy the original study reported for its own input."""
    from confidence_trap.models.identify import llava_1_5_evidence

    path = os.path.join(REPO, "paper", "original_study.json")
    if not llava_1_5_evidence(source)[0] or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        code = json.load(f).get("code")
    if not code:
        return None
    model = "" if args.model == "llava-1.5-7b" else f" --model {args.model}"
    return (f"{'original:':<14}{code['clean']:.{code['decimals']}f} nats: the clean entropy the original study "
            f"reported for its own input (theirs, not measured here: {code['model'].split(' (')[0]}, "
            f"{code['hardware']}; {code['author']} {code['year']}, {code['repository']} {code['file']}): "
            f"{ORIGINAL_IMAGE}, {code['prompt'].splitlines()[-1]!r} without a chat template, {code['measure']}. "
            f"Measure it here: python experiments/entropy_analysis.py --config {ORIGINAL_CONFIG}{model}")


def verdict(checks: list[Check]) -> int:
    problems = [c for c in checks if c.status == "problem"]
    warnings = [c for c in checks if c.status == "warning"]
    if problems:
        head = f"the model cannot run here: {len(problems)} problem{'s' * (len(problems) > 1)}"
    else:
        head = "healthy: the model runs here"
    if warnings:
        head += f" ({len(warnings)} warning{'s' * (len(warnings) > 1)})"
    print(f"{'verdict:':<14}{head}")
    for c in problems + warnings:
        print(f"  fix {c.name}: {c.fix or 'see its line above'}")
    return 1 if problems else 0


def run(argv=None) -> int:
    args = parse(argv)
    found = ("absent", "not installed")
    if importlib.util.find_spec("torchvision") is not None:
        found = probe_torchvision()  # in a subprocess, before this process imports it
        if found[0] == "broken":
            sys.modules["torchvision"] = None  # never tried here; transformers goes without it

    from confidence_trap.models import TINY_DIR, check_device, parse_dtype, resolve, torchvision_guard
    from confidence_trap.models.identify import checkpoint_config
    from confidence_trap.runner import environment as env
    from confidence_trap.tasks.imagesets import resolve_items

    torchvision_guard.record(*found)
    source = resolve(args.model)  # bad input: one line, exit 2, before any check prints
    device = check_device(args.device)
    for value in (args.dtype, args.vision_dtype):
        parse_dtype(value, device)
    item = resolve_items([args.image] if args.image else [], None, "scenes" if source == TINY_DIR else "photos")[0]

    checks = env.versions()
    checks.append(env.torchvision_check(found, torchvision_guard.needs_it(checkpoint_config(source), source)))
    checks.append(env.cuda(device))
    if device == "cpu" and source != TINY_DIR:
        checks[-1] = Check("CUDA", "warning", checks[-1].text + f"; --model {args.model} on a CPU runs in "
                           "float32, slowly (LLaVA-1.5-7B: about 28 GB of memory)", "a machine with a GPU")
    checks += [env.tex(), env.hub_cache(args.model, source, None)]
    for c in checks:
        show(c)
    checks += model_checks(args, source, device, item, blocked=any(c.status == "problem" for c in checks))
    line = original_line(args, source)
    if line:
        print(line)
    return verdict(checks)


def model_checks(args, source: str, device: str, item, blocked: bool) -> list[Check]:
    """The model's lines (answer_one), or the one line that says why it did not run."""
    if blocked:  # the load would only fail on them
        print(f"{'model:':<14}not loaded: the problems above come first")
        return []
    try:
        return answer_one(args, source, device, item)
    except InputError as e:  # preflight's word: offline and not cached, torchvision needed, no config.json
        check = Check("model", "problem", str(e), None)
    except Exception as e:  # noqa: BLE001 - the point of this command is a verdict, not a traceback
        check = Check("model", "problem", f"cannot load or run {args.model}: {type(e).__name__}: "
                      f"{(str(e).strip().splitlines() or [''])[0]}", None)
    show(check)
    return [check]


def main(argv=None) -> int:
    try:
        return run(argv)
    except InputError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
