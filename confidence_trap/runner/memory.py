"""Peak memory of one true-gradient PGD step on the LLaVA-1.5-7B architecture, batch 1.

    python experiments/gpu_memory_check.py --out results/gpu_memory.json   # a CUDA GPU, ~1 min
    python experiments/gpu_memory_check.py --tiny --out /tmp/gpu_memory.json   # same code, tiny Llava, CPU, seconds

Builds LLaVA-1.5-7B with random weights straight on the GPU in FP16 (configs/llava-1.5-7b.json,
confidence_trap.models.checkpoint.random_llava, with llava-hf's processor and the real Llama-2 tokenizer), and runs
attacks.pgd.pgd_gradient for --steps steps at ε = 8/255 with the entropy_min objective
(confidence_trap.runner.objectives, the sweep's own code) on the llava_v1 prompt and a 32-token answer,
with SDPA attention and gradient checkpointing. Writes --out (JSON: peak_gib, the 14.5 GiB T4
budget, fits_t4, seconds per step, token counts, versions) and prints one line.
The vision tower runs in float32 by default, as the original LLaVA-1.5 runs it on CUDA
(--vision-dtype float16 for the all-FP16 model).
Flags: --attention sdpa|eager, --no-checkpointing, --steps, --answer-tokens, --device, --vision-dtype.
measure(model, processor, device) runs the same step on a model already loaded (scripts/gpu_measure.py
runs it on the 7B loaded once through models.load, with CLIP in float32 and then in float16).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

try:
    import torch

    from attacks.pgd import pgd_gradient
    from confidence_trap.models.architectures import pixel_layout
    from confidence_trap.models.checkpoint import REPO, random_llava
    from confidence_trap.models.dtypes import vision_dtype_of
    from confidence_trap.models.prompts import build_prompt
    from confidence_trap.models.vocab import scored_vocab
    from confidence_trap.runner.objectives import make_objective
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

T4_BUDGET_GIB = 14.5
CONFIG_FILE = os.path.join(REPO, "configs", "llava-1.5-7b.json")


def build(tiny: bool, device: str, attention: str):
    if tiny:
        from confidence_trap.models.checkpoint import build_llava

        model, processor = build_llava(None, seed=0)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        model = model.to(device=device, dtype=dtype)
        return model, processor, "confidence_trap.models.checkpoint.build_llava (tiny, random)"
    model, processor = random_llava(CONFIG_FILE, device, torch.float16, attention)
    return model, processor, CONFIG_FILE


def measure(model, processor, device: str, original: bool = True, checkpointing: bool = True,
            steps: int = 1, answer_tokens: int = 32) -> dict:
    """One PGD step (or `steps`) at batch 1 on a model already built or loaded: what the report
    holds besides where the model came from. On CUDA the peak is counted from here, so memory
    already allocated (the weights) is in it."""
    cuda = device.startswith("cuda")
    weights_gib = None
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        weights_gib = torch.cuda.memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    side = pixel_layout(processor).side
    prompt = build_prompt(processor, "What is shown in this image? Describe it in detail.", "llava_v1")
    vocab = scored_vocab(model, processor).size
    g = torch.Generator().manual_seed(0)
    special = {model.config.image_token_index, getattr(model.config, "pad_token_id", None)}
    answer = [int(i) for i in torch.randint(3, vocab, (4 * answer_tokens,), generator=g)
              if int(i) not in special][:answer_tokens - 1] + [processor.tokenizer.eos_token_id]
    loss = make_objective("entropy_min", model, processor, prompt, answer,
                          checkpointing=checkpointing, original_ids=original)
    x = torch.rand(1, 3, side, side, generator=g).to(device)

    with torch.no_grad():
        clean = float(loss(x))
    times = []
    x_adv = x
    for _ in range(steps):
        t = time.time()
        x_adv = pgd_gradient(x_adv, 8 / 255, loss, steps=1, generator=torch.Generator(device=device).manual_seed(0))
        if cuda:
            torch.cuda.synchronize()
        times.append(time.time() - t)
    with torch.no_grad():
        after = float(loss(x_adv))

    xg = x.clone().requires_grad_(True)
    loss(xg).backward()
    nonzero = float((xg.grad != 0).float().mean())
    report = {
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "dtype": str(model.get_output_embeddings().weight.dtype).split(".")[-1],
        "vision_dtype": vision_dtype_of(model), "attention": model.config._attn_implementation,
        "checkpointing": checkpointing, "batch": 1, "steps": steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompt_tokens": int(loss.inputs["input_ids"].shape[1] - (len(answer) - 1)),  # image tokens included
        "answer_tokens": len(answer), "image_side": side,
        "seconds_per_step": [round(t, 3) for t in times],
        "objective_clean": clean, "objective_after": after, "grad_nonzero_fraction": nonzero,
        "t4_budget_gib": T4_BUDGET_GIB,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    return {**report, **peak(weights_gib if cuda else None)}


def peak(weights_gib: float | None) -> dict:
    """The step's peak: CUDA's allocator statistics (weights_gib given), else the process's peak
    resident set (no allocator statistics on the CPU)."""
    if weights_gib is not None:
        top = torch.cuda.max_memory_allocated() / 2**30
        return {"weights_gib": round(weights_gib, 3), "peak_gib": round(top, 3),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3), "fits_t4": top <= T4_BUDGET_GIB}
    return {"peak_gib": None, "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "fits_t4": None}


def line(report: dict, out: str) -> str:
    """The one line main() prints."""
    peak = f"peak {report['peak_gib']} GiB (T4 budget {T4_BUDGET_GIB}: {'fits' if report['fits_t4'] else 'over'})" \
        if report["peak_gib"] is not None else f"peak RSS {report['peak_rss_gib']} GiB (CPU: no GPU figure)"
    return (f"{report['model']}, {report['dtype']} (vision {report['vision_dtype']}), {report['attention']}, "
            f"checkpointing {'on' if report['checkpointing'] else 'off'}: {peak}, "
            f"{report['seconds_per_step'][-1]:.2f} s/step -> {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--out", default=os.path.join("results", "gpu_memory.json"))
    p.add_argument("--tiny", action="store_true", help="a tiny random Llava instead of the 7B (tests, CPU)")
    p.add_argument("--device", default=None, help="default: cuda (required for the 7B), cpu for --tiny without a GPU")
    p.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"])
    p.add_argument("--no-checkpointing", action="store_true")
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--answer-tokens", type=int, default=32)
    p.add_argument("--vision-dtype", default="float32", choices=["float16", "float32"],
                   help="the vision tower's dtype (default float32, the original's on CUDA)")
    args = p.parse_args(argv)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not args.tiny and not device.startswith("cuda"):
        print("error: the 7B check needs a CUDA GPU (use --tiny to test the code on CPU)", file=sys.stderr)
        return 2
    t0 = time.time()
    model, processor, source = build(args.tiny, device, args.attention)
    if device.startswith("cuda") and args.vision_dtype == "float32":
        from confidence_trap.models import set_vision_dtype

        set_vision_dtype(model, torch.float32)
    build_s = time.time() - t0
    report = {"model": "tiny random Llava" if args.tiny else "LLaVA-1.5-7B architecture, random weights",
              "config_source": source, "build_s": round(build_s, 1),
              **measure(model, processor, device, original=not args.tiny,  # the 7B stand-in: the original ids
                        checkpointing=not args.no_checkpointing, steps=args.steps, answer_tokens=args.answer_tokens)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    print(line(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
