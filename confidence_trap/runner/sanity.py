"""Load a model and answer one bundled image: proof that the stack works before a long sweep.

    python experiments/sanity_check.py --model tiny
    python experiments/sanity_check.py --model llava-1.5-7b      # on a GPU (Colab T4: ~13.5 GiB)

Prints the model id, dtype, device, parameter count, peak GPU memory (where there is a GPU),
the question, the answer and its mean token entropy. Exits 2 on bad input, 1 on any other failure.
"""
from __future__ import annotations

import argparse
import sys

try:
    from confidence_trap.errors import InputError
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")


def run(argv=None) -> int:
    p = argparse.ArgumentParser(description="Answer one bundled image and print its entropy.")
    p.add_argument("--model", default="llava-1.5-7b")
    p.add_argument("--device")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--vision-dtype", default="auto", help="auto: float32 for LLaVA-1.5 on CUDA, as the original")
    p.add_argument("--image", help="default: the first image of the model's bundled set")
    p.add_argument("--max-new-tokens", type=int, default=128)
    args = p.parse_args(argv)

    import torch

    from confidence_trap.models import TINY_DIR, check_device, load, resolve
    from confidence_trap.models.generation import generate, text_dtype
    from confidence_trap.models.images import input_size, load_image, to_model_input
    from confidence_trap.models.prompts import build_prompt, default_format, original_ids
    from confidence_trap.tasks.imagesets import resolve_items
    from probes.entropy import mean_token_entropy

    source = resolve(args.model)
    device = check_device(args.device)
    items = resolve_items([args.image] if args.image else [], None,
                          "scenes" if source == TINY_DIR else "photos")
    item = items[0]
    image = load_image(item.path)
    model, processor = load(args.model, device=device, dtype=args.dtype, vision_dtype=args.vision_dtype)
    x = to_model_input(image, input_size(processor), processor.image_processor.image_mean)[None]
    fmt = default_format(source)
    prompt = build_prompt(processor, item.question, fmt)
    out = generate(model, processor, x.to(device), [prompt], args.max_new_tokens, original_ids=original_ids(fmt))
    h = float(mean_token_entropy(out.logits, out.mask)[0])
    print(f"model:      {args.model} ({source})")
    print(f"class:      {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters")
    from confidence_trap.models import vision_dtype_of
    from confidence_trap.models.vocab import scored_vocab

    print(f"dtype:      {text_dtype(model)} (vision tower {vision_dtype_of(model)})   device: {model.device}")
    print(f"vocabulary: {scored_vocab(model, processor).size} scored rows of {model.get_output_embeddings().weight.shape[0]}")
    if str(device).startswith("cuda"):
        print(f"peak GPU:   {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"image:      {item.key}")
    print(f"question:   {item.question}")
    print(f"answer:     {out.answers[0]!r}")
    print(f"entropy:    {h:.4f} nats (mean over {int(out.mask[0].sum())} tokens)")
    if h != h:
        print("error: the entropy is not finite (non-finite logits)", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    try:
        return run(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the point of this script is a clear verdict, not a traceback
        print(f"error: sanity check failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
