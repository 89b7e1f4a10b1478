"""Peak memory of one true-gradient PGD step on the LLaVA-1.5-7B architecture, batch 1.

    python experiments/gpu_memory_check.py --out results/gpu_memory.json   # a CUDA GPU, ~1 min
    python experiments/gpu_memory_check.py --tiny --out /tmp/gpu_memory.json   # same code, tiny Llava, CPU, seconds

Builds LLaVA-1.5-7B with random weights straight on the GPU in FP16 (configs/llava-1.5-7b.json
where it holds a LlavaConfig, else the config below, from LLAVA_NOTES.md), a stand-in processor
(the real image geometry, a word-level tokenizer with `<image>` at id 32000), and runs
attacks.pgd_visual.pgd_gradient for --steps steps at ε = 8/255 with the entropy_min objective
(experiments.objectives, the sweep's own code) on the llava_v1 prompt and a 32-token answer,
with SDPA attention and gradient checkpointing. Writes --out (JSON: peak_gib, the 14.5 GiB T4
budget, fits_t4, seconds per step, token counts, versions) and prints one line.
The vision tower runs in float32 by default, as the original LLaVA-1.5 runs it on CUDA
(--vision-dtype float16 for the all-FP16 model).
Flags: --attention sdpa|eager, --no-checkpointing, --steps, --answer-tokens, --device, --vision-dtype.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402

T4_BUDGET_GIB = 14.5
CONFIG_FILE = os.path.join(REPO, "configs", "llava-1.5-7b.json")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def llava_7b_config():
    """llava-hf/llava-1.5-7b-hf's architecture: CLIP ViT-L/14-336, 2-layer GELU projector, Vicuna-7B."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if os.path.isfile(CONFIG_FILE):
        with open(CONFIG_FILE, encoding="utf-8") as f:
            data = json.load(f)
        data = data.get("config", data)  # the file may wrap the config in other benchmark data
        if "text_config" in data and "vision_config" in data:
            return LlavaConfig.from_dict(data), CONFIG_FILE
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=336, patch_size=14,
                              projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, bos_token_id=1,
                       eos_token_id=2, pad_token_id=32001, tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000,
                         image_seq_length=576, vision_feature_layer=-2,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu",
                         pad_token_id=32001)
    return config, "inline (LLAVA_NOTES.md)"


def stand_in_processor(config):
    """The real LLaVA-1.5 image geometry; a word-level tokenizer with the checkpoint's special ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlavaProcessor, PreTrainedTokenizerFast
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    n = config.text_config.vocab_size
    special = {0: "<unk>", 1: "<s>", 2: "</s>", config.image_token_index: "<image>",
               config.pad_token_id: "<pad>"}
    vocab = {special.get(i, f"w{i}"): i for i in range(n)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(special.values()))  # whole tokens, never split by the pre-tokenizer
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>",
                                   extra_special_tokens={"image_token": "<image>"})
    vc = config.vision_config
    ip = LlavaImageProcessorPil(size={"shortest_edge": vc.image_size},
                                crop_size={"height": vc.image_size, "width": vc.image_size},
                                do_pad=True, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return LlavaProcessor(image_processor=ip, tokenizer=fast, patch_size=vc.patch_size,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1)


def build(tiny: bool, device: str, attention: str):
    if tiny:
        from models.checkpoint import build_llava

        model, processor = build_llava(None, seed=0)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        model = model.to(device=device, dtype=dtype)
        return model, processor, "models.checkpoint.build_llava (tiny, random)"
    from transformers import LlavaForConditionalGeneration

    config, source = llava_7b_config()
    with torch.device(device):  # random init straight on the GPU: no 28 GB float32 copy on the host
        model = LlavaForConditionalGeneration._from_config(config, dtype=torch.float16,
                                                           attn_implementation=attention)
    return model.eval(), stand_in_processor(config), source


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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

    from attacks.pgd_visual import pgd_gradient
    from experiments.objectives import make_objective
    from models.architectures import pixel_layout
    from models.prompts import build_prompt

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not args.tiny and not device.startswith("cuda"):
        print("error: the 7B check needs a CUDA GPU (use --tiny to test the code on CPU)", file=sys.stderr)
        return 2
    cuda = device.startswith("cuda")
    t0 = time.time()
    model, processor, source = build(args.tiny, device, args.attention)
    if cuda and args.vision_dtype == "float32":
        from models import set_vision_dtype

        set_vision_dtype(model, torch.float32)
    build_s = time.time() - t0
    if cuda:
        torch.cuda.synchronize()
        weights_gib = torch.cuda.memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()

    side = pixel_layout(processor).side
    prompt = build_prompt(processor, "What is shown in this image? Describe it in detail.", "llava_v1")
    vocab = model.config.text_config.vocab_size
    g = torch.Generator().manual_seed(0)
    special = {model.config.image_token_index, getattr(model.config, "pad_token_id", None)}
    answer = [int(i) for i in torch.randint(3, vocab, (4 * args.answer_tokens,), generator=g)
              if int(i) not in special][:args.answer_tokens - 1] + [processor.tokenizer.eos_token_id]
    loss = make_objective("entropy_min", model, processor, prompt, answer,
                          checkpointing=not args.no_checkpointing)
    x = torch.rand(1, 3, side, side, generator=g).to(device)

    with torch.no_grad():
        clean = float(loss(x))
    times = []
    x_adv = x
    for _ in range(args.steps):
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
        "model": "tiny random Llava" if args.tiny else "LLaVA-1.5-7B architecture, random weights",
        "config_source": source, "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "dtype": str(model.get_output_embeddings().weight.dtype).split(".")[-1],
        "vision_dtype": __import__("models").vision_dtype_of(model), "attention": args.attention,
        "checkpointing": not args.no_checkpointing, "batch": 1, "steps": args.steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompt_tokens": int(loss.inputs["input_ids"].shape[1] - (len(answer) - 1)),  # image tokens included
        "answer_tokens": len(answer), "image_side": side,
        "seconds_per_step": [round(t, 3) for t in times], "build_s": round(build_s, 1),
        "objective_clean": clean, "objective_after": after, "grad_nonzero_fraction": nonzero,
        "t4_budget_gib": T4_BUDGET_GIB,
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__},
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        report.update(weights_gib=round(weights_gib, 3), peak_gib=round(peak, 3),
                      peak_reserved_gib=round(torch.cuda.max_memory_reserved() / 2**30, 3),
                      fits_t4=peak <= T4_BUDGET_GIB)
    else:  # no allocator statistics on the CPU: the process's peak resident set instead
        report.update(peak_gib=None, peak_rss_gib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                      fits_t4=None)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    peak = f"peak {report['peak_gib']} GiB (T4 budget {T4_BUDGET_GIB}: {'fits' if report['fits_t4'] else 'over'})" \
        if cuda else f"peak RSS {report['peak_rss_gib']} GiB (CPU: no GPU figure)"
    print(f"{report['model']}, {report['dtype']}, {args.attention}, checkpointing "
          f"{'on' if report['checkpointing'] else 'off'}: {peak}, {times[-1]:.2f} s/step -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
