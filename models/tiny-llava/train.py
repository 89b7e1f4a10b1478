"""python models/tiny-llava/train.py --out models/tiny-llava

Train the embedded tiny LLaVA from scratch on procedurally drawn scenes (confidence_trap/tasks/scenes.py) and
write a Hugging Face folder: model + processor (`save_pretrained`), `training.json` (command,
seed, steps, wall time, machine, loss curves, held-out accuracy per question type on both
grammars, and on the ambiguous one the answers' mean token entropy, its share under 0.01 nats
and its AUROC for a wrong answer) and the model card `README.md` rendered from it.

The model is a real LlavaForConditionalGeneration (CLIP vision tower, projector, Llama decoder)
built by confidence_trap.models.checkpoint.build_llava. Images go through the processor that is saved with it
(pad to square with the CLIP mean, bicubic resize, CLIP normalisation) and questions through its
chat template, so training sees exactly what the experiment pipeline gives the model.
- Scenes: a share --exact-share of the exact grammar (four exact colours, large shapes), the
  rest of the ambiguous grammar (ambiguity 1: hues anywhere between the named colours, pale and
  small shapes, skewed answer frequencies), so the model is unsure where a scene is ambiguous.
  No noise, blur, JPEG, contrast or brightness augmentation: nothing the experiments apply.
- Stage 1 (--vision-steps): the vision tower and projector learn dense per-patch labels read off
  the scene geometry (colour, shape kind, left-to-right rank, count) through a linear head that
  is never saved; LLaVA likewise starts from a pretrained vision tower.
- Stage 2 (--steps): everything, teacher forced on " {answer}</s>" (answer tokens and </s>
  supervised, the rest -100), with the dense labels kept at --aux-weight. --batch-size counts
  scenes; each brings all its questions, packed after one shared image prefix with a tree-shaped
  attention mask (ScenePool.batch), which is exact, not an approximation. --curriculum: exact
  scenes first, then linearly more ambiguous ones.
Deterministic for a given seed, device and thread count (--threads 1 by default).
Other flags: --seed --eval-scenes --eval-seed --device --lr --pool-scenes --spec (JSON overrides
of the TinyLlavaSpec, for quick tests) --eval-every --log-every.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from dataclasses import asdict, replace

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from confidence_trap.models.checkpoint import TinyLlavaSpec, build_llava  # noqa: E402
from confidence_trap.models.prompts import LLAVA_V1_SYSTEM as SYSTEM  # noqa: E402
from confidence_trap.tasks.scenes import (ANSWER_PRIOR, COLORS, DIGIT_SHARE, MAX_SIDE, MIN_SIDE, NUMBERS,  # noqa: E402
                           PALEST, QUESTION_TYPES, SHAPES, SMALLEST_SIDE, all_question_texts,
                           draw_scene, phrasings, questions, shape_mask)

# 6×6 patches of 8 px. Four vision layers, of which LLaVA reads the features of the third (-2).
SPEC = TinyLlavaSpec(
    image_size=48, patch_size=8, vision_hidden=96, vision_layers=4, vision_heads=4,
    text_hidden=128, text_layers=3, text_heads=4, text_intermediate=384, vocab_size=512,
)
# Scenes are drawn at several sizes (always >= the model's input) so the model sees the
# processor's bicubic downsampling at several ratios, as it will on the bundled 224-px scenes.
DRAW_SIZES = (64, 96, 128, 224)
MAX_NEW_TOKENS = 24
VISION_BATCH = 64  # scenes per step of stage 1


def chat_prompt(processor, question: str) -> str:
    """The exact prompt the experiment gives the model: 'USER: <image>\\n{question} ASSISTANT:'."""
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(conversation, add_generation_prompt=True)


class ScenePool:
    """Scenes drawn once and put through the processor; batches pair them with fresh questions.

    pixels [n, 3, S, S] are the processor's pixel_values (pad, bicubic resize, CLIP
    normalisation); targets [n, P, 4] are dense per-patch labels (colour, kind, left-to-right
    rank of the shape covering the patch, 0 for background; and the scene's count), used only by
    the auxiliary head that speeds up training of the vision tower. Token ids of each
    (question, answer) come from the same processor and are cached (they do not depend on the image).
    """

    def __init__(self, processor, spec, n: int, rng: random.Random, chunk: int = 256,
                 exact_share: float = 1.0, phrasing_seed: int = 0):
        self.processor, self.spec = processor, spec
        # the phrasing of each answer is drawn apart from the scenes and batches
        self.phrasing = random.Random(f"phrasing:{phrasing_seed}")
        self.prompt_image = None
        pixels, targets, self.questions, self.exact = [], [], [], []
        for start in tqdm(range(0, n, chunk), desc="draw scenes", mininterval=2.0):
            images = []
            for _ in range(min(chunk, n - start)):
                size = rng.choice(DRAW_SIZES)
                ambiguity = 0.0 if rng.random() < exact_share else 1.0
                image, shapes = draw_scene(rng, size=size, ambiguity=ambiguity)
                self.exact.append(ambiguity == 0)
                images.append(image)
                self.questions.append(questions(shapes))
                targets.append(patch_targets(shapes, size, spec))
            prompt = chat_prompt(processor, "Describe the image.")
            pixels.append(processor(images=images, text=[prompt] * len(images), return_tensors="pt")["pixel_values"])
            self.prompt_image = self.prompt_image or images[0]
        self.pixels = torch.cat(pixels)
        self.targets = torch.from_numpy(np.stack(targets))
        self._ids, self.prefix, self._split = {}, None, None
        self.image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)

    def __len__(self):
        return len(self.questions)

    def sequence(self, question: str, answer: str) -> tuple[list[int], int]:
        """Token ids of prompt + ' {answer}</s>' (as the processor makes them) and the answer length."""
        key = (question, answer)
        if key not in self._ids:
            tok = self.processor.tokenizer
            text = chat_prompt(self.processor, question) + f" {answer}{tok.eos_token}"
            ids = self.processor(images=[self.prompt_image], text=[text])["input_ids"][0]
            target = tok(f" {answer}{tok.eos_token}", add_special_tokens=False)["input_ids"]
            # the answer must tokenize the same alone as after the prompt, or the mask would be off
            assert list(ids[-len(target):]) == target, text
            self._ids[key] = (list(ids), len(target))
        return self._ids[key]

    def branch(self, question: str, answer: str) -> tuple[list[int], int]:
        """The processor's ids split after '<s>USER: <image>…\\n': (question block, answer length)."""
        ids, n_answer = self.sequence(question, answer)
        cut = max(i for i, t in enumerate(ids) if t == self.image_token_id) + 2  # image tokens, '\n'
        assert self.prefix in (None, ids[:cut]), "the prompt prefix must not depend on the question"
        self.prefix = ids[:cut]
        return ids[cut:], n_answer

    def batch(self, rng: random.Random, n_scenes: int, type_weights=None, exact_prob=None) -> dict:
        """`n_scenes` random scenes, each with all its questions packed after one shared prefix.

        exact_prob: None draws scenes uniformly from the pool; else each scene is one of the exact
        grammar's with this probability (the curriculum), else one of the ambiguous grammar's.

        A row is [<s>USER: <image>…\\n][q1 ASSISTANT: a1</s>][q2 ASSISTANT: a2</s>]…; the 4D mask
        lets each question block see the prefix and itself only, and position_ids restart after
        the prefix, so every answer token sees exactly the tokens and positions of its own
        single-question prompt (what generate() gives it), while the image and the prefix are
        computed once per scene. A count's answer is its digit with probability
        confidence_trap.tasks.scenes.DIGIT_SHARE, else its word (drawn from the pool's own phrasing stream).
        Labels keep only the ' {answer}</s>' tokens; label_weights give a question
        type_weights[its type] in all, spread over its answer tokens, so the two-token answers
        are not drowned by the long descriptions.
        """
        if exact_prob is None:
            index = [rng.randrange(len(self)) for _ in range(n_scenes)]
        else:
            if self._split is None:
                self._split = ([i for i, e in enumerate(self.exact) if e], [i for i, e in enumerate(self.exact) if not e])
            index = []
            for _ in range(n_scenes):
                side = self._split[0] if (rng.random() < exact_prob or not self._split[1]) and self._split[0] else self._split[1]
                index.append(side[rng.randrange(len(side))])
        rows = []
        for i in index:
            qs = list(self.questions[i])
            rng.shuffle(qs)
            # a count is said as a digit DIGIT_SHARE of the time ("2" for "two"), both right
            qs = [(t, q, phrasings(t, a)[-1] if t == "count" and self.phrasing.random() < DIGIT_SHARE else a)
                  for t, q, a in qs]
            blocks = [self.branch(q, a) + ((type_weights or {}).get(t, 1.0),) for t, q, a in qs]
            n = len(self.prefix)
            ids, pos, block, labels, weights = list(self.prefix), list(range(n)), [0] * n, [-100] * n, [0.0] * n
            for b, (branch, n_answer, weight) in enumerate(blocks, start=1):
                ids += branch
                pos += range(n, n + len(branch))
                block += [b] * len(branch)
                labels += [-100] * (len(branch) - n_answer) + branch[len(branch) - n_answer:]
                weights += [0.0] * (len(branch) - n_answer) + [weight / n_answer] * n_answer
            rows.append((ids, pos, block, labels, weights))
        width = max(len(r[0]) for r in rows)
        input_ids = torch.full((n_scenes, width), self.processor.tokenizer.pad_token_id)
        position_ids = torch.zeros((n_scenes, width), dtype=torch.long)
        block = torch.full((n_scenes, width), -1)  # -1: padding
        labels = torch.full((n_scenes, width), -100)
        weights = torch.zeros((n_scenes, width))
        for r, (ids, pos, blk, lab, w) in enumerate(rows):
            input_ids[r, :len(ids)] = torch.tensor(ids)
            position_ids[r, :len(ids)] = torch.tensor(pos)
            block[r, :len(ids)] = torch.tensor(blk)
            labels[r, :len(ids)] = torch.tensor(lab)
            weights[r, :len(ids)] = torch.tensor(w)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        visible = (block[:, :, None] == block[:, None, :]) | (block[:, None, :] == 0)
        index = torch.tensor(index)
        return {"input_ids": input_ids, "attention_mask": (causal & visible)[:, None], "position_ids": position_ids,
                "labels": labels, "label_weights": weights, "pixel_values": self.pixels[index],
                "patch_targets": self.targets[index]}


def pretrain_vision(model, head, pool, rng, args, device) -> list[dict]:
    """Stage 1: the vision tower and projector learn the dense per-patch labels alone (cheap: no
    decoder), as LLaVA starts from a pretrained CLIP; the decoder then learns to read them."""
    params = (list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters())
              + list(head.parameters()))
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.98), weight_decay=0.05)
    curve, window = [], []
    bar = tqdm(range(args.vision_steps), desc="vision", mininterval=2.0)
    for step in bar:
        index = torch.tensor([rng.randrange(len(pool)) for _ in range(VISION_BATCH)])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.vision_steps, args.lr, max(1, min(100, args.vision_steps // 10)))
        image_outputs = model.model.get_image_features(pixel_values=pool.pixels[index].to(device), return_dict=True)
        loss = aux_loss(head, image_outputs, pool.targets[index].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        window.append(loss.item())
        if len(window) == args.log_every or step == args.vision_steps - 1:
            curve.append({"step": step + 1, "aux_loss": sum(window) / len(window)})
            bar.set_postfix(aux=f"{curve[-1]['aux_loss']:.4f}")
            window = []
    return curve


def patch_targets(shapes, size: int, spec) -> np.ndarray:
    """[P, 4] int64 per patch: colour (1..4), kind (1..3), rank from the left (1..3) of the shape
    covering at least 20% of the patch (0 if none), and the number of shapes minus one."""
    p, grid = 2 * spec.patch_size, spec.image_size // spec.patch_size
    mask = np.asarray(shape_mask(shapes, size, 2 * spec.image_size))
    mask = mask.reshape(grid, p, grid, p).transpose(0, 2, 1, 3).reshape(grid * grid, p * p)
    counts = np.stack([(mask == i + 1).sum(1) for i in range(len(shapes))], 1)  # [P, n]
    best = counts.argmax(1)
    covered = counts.max(1) >= 0.2 * p * p
    colors, kinds = sorted(COLORS), list(SHAPES)
    table = np.array([[0, 0, 0]] + [[1 + colors.index(s["color"]), 1 + kinds.index(s["shape"]), 1 + i]
                                    for i, s in enumerate(shapes)])
    out = table[np.where(covered, best + 1, 0)]
    return np.concatenate([out, np.full((grid * grid, 1), len(shapes) - 1)], 1).astype(np.int64)


AUX_CLASSES = (1 + len(COLORS), 1 + len(SHAPES), 4, 3)  # colour, kind, rank, count


def weighted_answer_loss(logits, labels, weights):
    """Next-token cross-entropy of the labelled tokens, weighted per token; logits [B, L, V]."""
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                           reduction="none")  # -100 gives 0
    return (ce * weights[:, 1:].flatten()).sum() / weights[:, 1:].sum()


def aux_loss(head, image_outputs, targets):
    """Cross-entropy of the dense per-patch labels, read off the projected image features."""
    feats = image_outputs.pooler_output
    feats = torch.stack(list(feats)) if isinstance(feats, (list, tuple)) else feats
    logits = head(feats.reshape(targets.shape[0], targets.shape[1], -1))
    losses, start = [], 0
    for k, n in enumerate(AUX_CLASSES):
        # kind and rank are averaged over the shapes' patches only, or the many background
        # patches would drown them (colour tells background from shape)
        losses.append(torch.nn.functional.cross_entropy(
            logits[..., start:start + n].reshape(-1, n), targets[..., k].reshape(-1),
            ignore_index=0 if k in (1, 2) else -100))
        start += n
    return sum(losses) / len(losses)


def auroc(negatives, positives):
    """P(a positive scores above a negative), ties counting half; None if either side is empty."""
    if not negatives or not positives:
        return None
    neg = np.sort(np.asarray(negatives, dtype=float))
    pos = np.asarray(positives, dtype=float)
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(neg) * len(pos)))


def uncertainty_stats(entropies, correct) -> dict:
    """What the study needs of clean answers: entropy level and spread, accuracy, and how well
    mean token entropy flags a wrong answer (AUROC, wrong = positive)."""
    h = np.asarray(entropies, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    return {"n": int(len(h)), "accuracy": float(ok.mean()), "mean_entropy": float(h.mean()),
            "median_entropy": float(np.median(h)), "share_below_0.01": float((h < 0.01).mean()),
            "mean_entropy_right": float(h[ok].mean()) if ok.any() else None,
            "mean_entropy_wrong": float(h[~ok].mean()) if (~ok).any() else None,
            "auroc_wrong": auroc(h[ok].tolist(), h[~ok].tolist())}


@torch.no_grad()
def evaluate(model, processor, seed: int, n_scenes: int, device="cpu", batch_size=64, size=None,
             ambiguity: float = 0.0):
    """Exact-match greedy accuracy (any of the answer's phrasings) per question type on
    `n_scenes` fresh scenes (every question), drawn with `ambiguity`, and the mean token
    entropy of each answer (nats, every generated token up to and including the first </s>,
    from the raw logits: the pipeline's definition).

    Returns {qtype: {"correct", "total", "accuracy"}, ..., "errors": [...], "uncertainty": {...}}
    with "uncertainty" = uncertainty_stats over all answers and per question type.
    """
    rng = random.Random(seed)
    by_type = {t: [] for t in QUESTION_TYPES}
    for _ in range(n_scenes):
        image, shapes = draw_scene(rng, size=size or rng.choice(DRAW_SIZES), ambiguity=ambiguity)
        for qtype, question, answer in questions(shapes):
            by_type[qtype].append((image, question, answer))
    model.eval()
    tok = processor.tokenizer
    tok.padding_side = "left"  # batched generation
    result, errors, scored = {}, [], {t: ([], []) for t in QUESTION_TYPES}
    for qtype, items in by_type.items():
        correct = 0
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            batch = processor(images=[im for im, _, _ in chunk],
                              text=[chat_prompt(processor, q) for _, q, _ in chunk],
                              return_tensors="pt", padding=True).to(device)
            out = model.generate(**batch, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                                 return_dict_in_generate=True, output_logits=True,
                                 pad_token_id=tok.pad_token_id)
            new = out.sequences[:, batch["input_ids"].shape[1]:]
            logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1)
            h = -(logp.exp() * logp).nan_to_num().sum(-1)  # [B, T]
            is_eos = new == tok.eos_token_id
            counted = (torch.cumsum(is_eos.long(), 1) - is_eos.long()) == 0
            mean_h = ((h * counted).sum(1) / counted.sum(1).clamp_min(1)).tolist()
            answers = tok.batch_decode(new, skip_special_tokens=True)
            for (_, question, ref), got, hh in zip(chunk, answers, mean_h):
                right = got.strip() in phrasings(qtype, ref)
                correct += right
                scored[qtype][0].append(hh)
                scored[qtype][1].append(right)
                if not right and len(errors) < 20:
                    errors.append({"question": question, "answer": got.strip(), "reference": ref,
                                   "mean_entropy": round(hh, 4)})
        result[qtype] = {"correct": correct, "total": len(items),
                         "accuracy": correct / max(len(items), 1)}
    result["errors"] = errors
    every = ([h for t in QUESTION_TYPES for h in scored[t][0]], [c for t in QUESTION_TYPES for c in scored[t][1]])
    result["uncertainty"] = {"all": uncertainty_stats(*every),
                             **{t: uncertainty_stats(*scored[t]) for t in QUESTION_TYPES if scored[t][0]}}
    return result


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def machine_info(device: str) -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"nproc": os.cpu_count(), "cpu": cpu, "threads": torch.get_num_threads(),
            "device": device, "python": platform.python_version(), "torch": torch.__version__}
    try:
        info["loadavg_at_start"] = os.getloadavg()[0]
    except OSError:
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    import transformers
    info["transformers"] = transformers.__version__
    return info


def train(args) -> dict:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    spec = replace(SPEC, **json.loads(args.spec)) if args.spec else SPEC
    machine = machine_info(device)
    start, cpu_start = time.time(), time.process_time()

    model, processor = build_llava(None, corpus=[SYSTEM] + all_question_texts(), spec=spec, seed=args.seed)
    # dense per-patch labels on the projected image features; trained alongside, never saved
    head = torch.nn.Linear(spec.text_hidden, sum(AUX_CLASSES))
    model.to(device).train()
    head.to(device)
    named = list(model.named_parameters()) + [("aux." + n, p) for n, p in head.named_parameters()]
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98))
    warmup = max(1, min(100, args.steps // 10))
    rng = random.Random(args.seed)
    pool = ScenePool(processor, spec, args.pool_scenes, rng, exact_share=args.exact_share, phrasing_seed=args.seed)
    seconds = {"draw": time.time() - start}
    vision_curve = pretrain_vision(model, head, pool, rng, args, device) if args.vision_steps else []
    seconds["vision"] = time.time() - start - seconds["draw"]
    curve, window = [], []
    bar = tqdm(range(args.steps), desc="train", mininterval=2.0)
    for step in bar:
        exact_prob = None
        if args.curriculum:  # the exact grammar alone until hold·steps, then linearly the mix by curriculum·steps
            hold, ramp = args.hold * args.steps, max((args.curriculum - args.hold) * args.steps, 1.0)
            exact_prob = args.exact_share + (1 - args.exact_share) * min(1.0, max(0.0, 1 - (step - hold) / ramp))
        batch = {k: v.to(device) for k, v in pool.batch(rng, args.batch_size, {"color": args.color_weight},
                                                          exact_prob).items()}
        targets, labels, weights = batch.pop("patch_targets"), batch.pop("labels"), batch.pop("label_weights")
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, warmup)
        output = model(**batch)
        answer_loss = weighted_answer_loss(output.logits, labels, weights)
        aux = aux_loss(head, output.image_outputs, targets) if args.aux_weight else torch.zeros(())
        loss = answer_loss + args.aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        window.append((answer_loss.item(), aux.item()))
        if len(window) == args.log_every or step == args.steps - 1:
            curve.append({"step": step + 1, "loss": sum(w[0] for w in window) / len(window),
                          "aux_loss": sum(w[1] for w in window) / len(window)})
            bar.set_postfix(loss=f"{curve[-1]['loss']:.4f}", aux=f"{curve[-1]['aux_loss']:.3f}")
            window = []
        if args.eval_every and (step + 1) % args.eval_every == 0 and step + 1 < args.steps:
            for a in (0.0, 1.0):
                quick = evaluate(model, processor, args.eval_seed + 1, 50, device=device, ambiguity=a)
                quick.pop("errors")
                u = quick.pop("uncertainty")["all"]
                tqdm.write(f"step {step + 1} ambiguity {a}: " + " ".join(f"{t}={r['accuracy']:.3f}" for t, r in quick.items())
                           + f" H={u['mean_entropy']:.3f} auroc={u['auroc_wrong']}")
            model.train()
    seconds["joint"] = time.time() - start - seconds["draw"] - seconds["vision"]

    os.makedirs(args.out, exist_ok=True)
    model.eval().to("cpu")
    model.save_pretrained(args.out)
    processor.tokenizer.padding_side = "left"  # the experiment batches generation
    processor.save_pretrained(args.out)

    # Evaluate what was written, loaded the way the experiment loads it.
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    saved = LlavaForConditionalGeneration.from_pretrained(args.out).to(device)
    saved_processor = AutoProcessor.from_pretrained(args.out)
    accuracy = evaluate(saved, saved_processor, args.eval_seed, args.eval_scenes, device=device)
    errors = accuracy.pop("errors")
    exact_uncertainty = accuracy.pop("uncertainty")
    ambiguous = evaluate(saved, saved_processor, args.eval_seed, args.eval_scenes, device=device, ambiguity=1.0)
    ambiguous_errors = ambiguous.pop("errors")
    ambiguous_uncertainty = ambiguous.pop("uncertainty")
    for name, acc, unc in (("exact", accuracy, exact_uncertainty), ("ambiguous", ambiguous, ambiguous_uncertainty)):
        for qtype, r in acc.items():
            print(f"held-out {name:9s} {qtype:9s} {r['correct']:4d}/{r['total']:4d} = {r['accuracy']:.4f}"
                  f"  H={unc[qtype]['mean_entropy']:.4f}")
        u = unc["all"]
        print(f"held-out {name:9s} all: accuracy {u['accuracy']:.4f} mean H {u['mean_entropy']:.4f} "
              f"H<0.01 {u['share_below_0.01']:.3f} AUROC(wrong) {u['auroc_wrong']}")
    for e in ambiguous_errors[:5]:
        print("  wrong:", e)

    report = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        "seed": args.seed, "vision_steps": args.vision_steps, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "warmup_steps": warmup, "schedule": "linear warmup, cosine to 2% of peak", "optimizer": "AdamW",
        "spec": asdict(spec), "draw_sizes": list(DRAW_SIZES),
        "parameters": sum(p.numel() for p in model.parameters()),
        "pool_scenes": args.pool_scenes, "aux_weight": args.aux_weight,
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "total_wall_seconds": round(time.time() - start, 1),
        "cpu_seconds": round(time.process_time() - cpu_start, 1),
        "machine": machine,
        "exact_share": args.exact_share, "curriculum": args.curriculum, "hold": args.hold,
        "grammar": {"answer_prior": {k: {str(a): p for a, p in d.items()} for k, d in ANSWER_PRIOR.items()},
                    "min_side": MIN_SIDE, "max_side": MAX_SIDE, "smallest_side": SMALLEST_SIDE,
                    "palest": PALEST, "digit_share": DIGIT_SHARE},
        "eval": {"seed": args.eval_seed, "scenes": args.eval_scenes, "draw_sizes": list(DRAW_SIZES),
                 "decoding": "greedy", "match": "exact", "ambiguity": 0.0, "per_type": accuracy,
                 "uncertainty": exact_uncertainty, "first_errors": errors},
        "eval_ambiguous": {"seed": args.eval_seed, "scenes": args.eval_scenes, "draw_sizes": list(DRAW_SIZES),
                           "decoding": "greedy", "match": "exact", "ambiguity": 1.0, "per_type": ambiguous,
                           "uncertainty": ambiguous_uncertainty, "first_errors": ambiguous_errors},
        "vision_loss_curve": vision_curve, "loss_curve": curve,
    }
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(model_card(report, len(processor.tokenizer)))
    print(f"wrote {args.out} in {report['total_wall_seconds']:.0f} s")
    return report


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def uncertainty_rows(ev: dict) -> str:
    """Markdown rows: per question type and all, accuracy / entropy / floor share / AUROC."""
    out = []
    for name in list(QUESTION_TYPES) + ["all"]:
        u = ev["uncertainty"].get(name)
        if u is None:
            continue
        out.append(f"| {name} | {u['n']} | {_pct(u['accuracy'])} | {_num(u['mean_entropy'])} | "
                   f"{_num(u['mean_entropy_right'])} | {_num(u['mean_entropy_wrong'])} | "
                   f"{_pct(u['share_below_0.01'])} | {_num(u['auroc_wrong'], 2)} |")
    return "\n".join(out)


def model_card(report: dict, vocab: int) -> str:
    """README.md of the saved folder, rendered from training.json (no number typed by hand)."""
    sp, ev, m = report["spec"], report["eval"], report["machine"]
    amb, g = report["eval_ambiguous"], report["grammar"]
    grid = sp["image_size"] // sp["patch_size"]
    rows = "\n".join(f"| {t} | {r['correct']} / {r['total']} | {100 * r['accuracy']:.1f}% |"
                     for t, r in ev["per_type"].items())
    where = m.get("gpu") or f"{m['cpu']}, {m['threads']} thread(s) of {m['nproc']} cores"
    prior = "; ".join(f"{key}: " + ", ".join(f"{NUMBERS[int(a) - 1] if key == 'count' else a} {100 * p:.0f}%"
                                               for a, p in dist.items())
                      for key, dist in g["answer_prior"].items())
    ua, ue = amb["uncertainty"]["all"], ev["uncertainty"]["all"]
    smallest_px = g["smallest_side"] * sp["image_size"]
    return f"""# tiny-llava: a small LLaVA that sees drawn shapes, and knows when it cannot

A real `LlavaForConditionalGeneration` (CLIP vision tower, GELU projector, Llama decoder) and its
`LlavaProcessor`, saved with `save_pretrained`, trained from scratch by this project on scenes
drawn by `confidence_trap/tasks/scenes.py`. It loads and runs through exactly the code path of
`llava-hf/llava-1.5-7b-hf` (AutoProcessor + LlavaForConditionalGeneration, greedy `generate`),
offline, in seconds on a laptop. Every number here is read from `training.json`.

| | this model | LLaVA-1.5-7B |
| --- | --- | --- |
| image input | {sp['image_size']}×{sp['image_size']}, patch {sp['patch_size']}, {grid * grid} image tokens | 336×336, patch 14, 576 image tokens |
| vision tower | CLIP, width {sp['vision_hidden']}, {sp['vision_layers']} layers (features of layer -2) | CLIP ViT-L/14, width 1024, 24 layers (layer -2) |
| decoder | Llama, width {sp['text_hidden']}, {sp['text_layers']} layers | Vicuna-7B, width 4096, 32 layers |
| vocabulary | {vocab} (byte-level BPE on the scene grammar and the LLaVA system sentence) | 32064 |
| parameters | {report['parameters']:,} | 7.06 B |

Preprocessing is LLaVA-1.5's: pad to a square with the CLIP mean colour (`do_pad=True`), bicubic
resize, CLIP normalisation. The chat template is llava-hf's: `USER: <image>\\n{{question}} ASSISTANT:`.

## What it answers

Scenes of 1–3 filled circles, squares and (apex-up) triangles named red, green, blue or yellow,
on white, left to right without horizontal overlap. Answers are lower case, without a final
period:

| type | question | answers |
| --- | --- | --- |
| count | How many shapes are there? | one, two, three (or 1, 2, 3) |
| color | What color is the circle? (only if exactly one circle) | red, green, blue, yellow |
| shape | Which shape is red? (only if exactly one red shape) | circle, square, triangle |
| describe | Describe the image. | a red circle, a blue square and a green triangle |

Outside this grammar (photos, other questions) its answers mean nothing.

```python
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration
processor = AutoProcessor.from_pretrained("models/tiny-llava")
model = LlavaForConditionalGeneration.from_pretrained("models/tiny-llava")
prompt = processor.apply_chat_template([{{"role": "user", "content": [
    {{"type": "image"}}, {{"type": "text", "text": "Describe the image."}}]}}], add_generation_prompt=True)
inputs = processor(images=Image.open("data/scenes/scene_000.png"), text=prompt, return_tensors="pt")
out = model.generate(**inputs, do_sample=False, max_new_tokens=24)
print(processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```

## Where its uncertainty comes from

A model that is always right and always sure cannot host the study's question: its entropy sits
at the floor, so it can only rise, and with no wrong answers entropy cannot be scored as a
detector of them. So it is trained on two grammars of `confidence_trap/tasks/scenes.py`:

- the **exact grammar** ({_pct(report['exact_share'])} of the training scenes): four exact
  colours, shapes {100 * g['min_side']:.0f}–{100 * g['max_side']:.0f}% of the image side: what
  the first embedded model was trained on (accuracy below);
- the **ambiguous grammar** (the rest, `ambiguity=1`), where the right answer is genuinely
  hard or impossible to read off the {sp['image_size']}-px input:
  - *hues on a continuum*: each colour lies anywhere on the straight RGB segments joining the
    named colours around the loop red, yellow, green, blue, and is named after the nearest one;
    halfway (orange, lime, teal, purple) the name is a toss-up;
  - *pale shapes*: blended with white down to {100 * g['palest']:.0f}% of full contrast, which
    shrinks the colour differences the hue is read from;
  - *small shapes*: sides from {100 * g['smallest_side']:.0f}% of the image side, that is about
    {smallest_px:.1f} px of the model's input, too few to tell a circle from a square;
  - *skewed answers* ({prior}): where the model cannot see, it falls back to the commoner
    answer, the language-prior mechanism the study proposes for LLaVA.

These were chosen because each is a property of the scene, never of the pixels' noise: the model
is never trained on random sign noise, uniform or Gaussian noise, shot noise, blur, JPEG,
contrast, brightness or pixelation (what `attacks/` applies), so a perturbation experiment on it
tests generalisation, not memory.

One source is not in the scene: *phrasing*. In both grammars a count is said as a digit ("2")
{_pct(g['digit_share'])} of the time in training, else as a word ("two"); both are right. A real
VLM spreads probability over paraphrases in the same way, which is why token entropy and
semantic entropy (which puts "two" and "2" in one cluster) can disagree; without it, the count
answers that the model can see sat at the entropy floor, where a fall cannot show. The cost is
known: it raises the entropy of right count answers by the phrasing alone, which says nothing
about whether the model saw the scene, so it is kept small.

## Held-out accuracy and uncertainty

Greedy decoding, exact match (any phrasing), every question of {ev['scenes']} freshly drawn scenes of each grammar
(seed {ev['seed']}; training used seed {report['seed']}), drawn at {', '.join(map(str, ev['draw_sizes']))} px.
Entropy is the mean token entropy of the answer in nats (every generated token up to and
including `</s>`, from the raw logits), as the experiments measure it; AUROC is how well it
ranks wrong answers above right ones (0.5: no better than chance).

Exact grammar (the first model's scenes):

| type | correct | accuracy |
| --- | --- | --- |
{rows}

Its answers have mean entropy {ue['mean_entropy']:.3f} nats, {_pct(ue['share_below_0.01'])} of them under 0.01.

Ambiguous grammar:

| type | answers | accuracy | mean entropy | right | wrong | under 0.01 nats | AUROC (wrong) |
| --- | --- | --- | --- | --- | --- | --- | --- |
{uncertainty_rows(amb)}

{verdict(ua)}

## What it can and cannot tell us about LLaVA-1.5-7B

It can check the study's machinery end to end on a model with real, measured uncertainty:
that Δ = H_adv − H_clean, the entropy-threshold defence, the AUROC and the bootstrap behave, that
a true-gradient attack can lower or raise entropy, and whether a perturbation that degrades what
the model sees makes it fall back to its answer prior, confidently or not. It cannot say how
LLaVA-1.5-7B behaves: its {report['parameters']:,} parameters never saw a photo or a sentence
outside this grammar; its input is {sp['image_size']} px, not 336; its "language prior" is the answer
frequencies above, not Vicuna's; its uncertainty comes from the sources listed here, not from
the open world. Any size of effect measured on it is a property of this testbed only.

## Training

    {report['command']}

Deterministic for a given seed, device and thread count. {report['pool_scenes']} scenes are
drawn once (seed {report['seed']}, at {', '.join(map(str, report['draw_sizes']))} px; each from the exact grammar
with probability {report['exact_share']}, else from the ambiguous one) and put through the saved processor.
- Stage 1, {report['vision_steps']} steps of {VISION_BATCH} scenes: the vision tower and projector
  alone learn dense per-patch labels read off the scene geometry (colour name, shape, left-to-right
  rank, count) through a linear head, as LLaVA starts from a pretrained CLIP.
- Stage 2, {report['steps']} steps of {report['batch_size']} scenes with all their questions:
  everything, teacher forced on `" {{answer}}</s>"` (all else masked; each question weighs the
  same), plus the dense labels at weight {report['aux_weight']}. {curriculum_words(report)} The
  per-patch head is then dropped. A scene's questions share one image prefix through a
  tree-shaped attention mask with restarted position ids, so each answer sees exactly the tokens
  and positions of its own single-question prompt.
AdamW, peak lr {report['lr']}, warmup then cosine; no noise augmentation.
{SELECTION}

Wall time {report['total_wall_seconds'] / 60:.1f} min ({report['cpu_seconds'] / 60:.1f} CPU-min) on {where}
(load average {m.get('loadavg_at_start', float('nan')):.1f} at the start), {m['device']}, torch {m['torch']},
transformers {m['transformers']}.
"""


def verdict(u: dict) -> str:
    """One sentence on the ambiguous grammar's figures, worded from them."""
    auc = u["auroc_wrong"]
    if auc is None:
        ranks = "with no wrong answers, entropy cannot be scored as a detector"
    elif auc > 0.5:
        ranks = f"entropy is higher on its wrong answers than on its right ones (AUROC {auc:.2f})"
    else:
        ranks = f"entropy is not higher on its wrong answers than on its right ones (AUROC {auc:.2f})"
    return (f"So on ambiguous scenes the model is wrong {_pct(1 - u['accuracy'])} of the time, its mean "
            f"entropy is {u['mean_entropy']:.3f} nats with {_pct(u['share_below_0.01'])} of answers under "
            f"0.01, and {ranks}.")


def curriculum_words(report: dict) -> str:
    c, hold = report.get("curriculum") or 0, report.get("hold") or 0
    if not c:
        return "Scenes are drawn from the pool uniformly."
    return (f"A curriculum: the first {100 * hold:.0f}% of the steps draw exact-grammar scenes only, then "
            f"ever more ambiguous ones, reaching the pool's mix at {100 * c:.0f}% of the steps.")


# How the defaults were chosen: on the held-out exact-grammar scenes alone (the old-scenes
# floors: 95% on count, colour and shape, 85% on describe), never on the bundled default set.
# The first model used seed 1 (its seed 0 had reached 82% on colour). With the digit phrasings,
# seed 1 at peak lr 3e-3 reached 89.1% on colour (3000 steps) and 78.1% on shape (3600 steps),
# seed 2 at 3e-3 95.4% on shape; seed 1 at 2e-3, these defaults, was the first to clear every
# floor with room. Runs of this script, logs in /tmp, not results files.
SELECTION = ("The seed and learning rate were chosen on the held-out exact-grammar scenes alone, never "
             "on the bundled default set; the others tried fell short of the old-scenes floors on colour "
             "or shape (train.py, above `parse_args`, lists them).")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--out", default=os.path.join(ROOT, "models", "tiny-llava"))
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--vision-steps", type=int, default=1200, help="stage 1: vision tower on dense labels")
    # Seed 1 and lr 2e-3 were chosen on the held-out exact-grammar scenes (SELECTION below).
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16, help="scenes per step of stage 2, each with all its questions")
    p.add_argument("--eval-scenes", type=int, default=500)
    p.add_argument("--eval-seed", type=int, default=10_001)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1,
                   help="1 by default: bitwise reproducible, and robust on a shared machine")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--pool-scenes", type=int, default=16384, help="scenes drawn once, reused across steps")
    p.add_argument("--aux-weight", type=float, default=0.5, help="weight of the dense per-patch loss (0: off)")
    p.add_argument("--color-weight", type=float, default=1.0)
    # Exact scenes alone for the first 40% of the steps, the mix by 60%: without the hold the
    # "What color is the <shape>?" binding had not formed by 3000 steps (86-89% on exact scenes).
    p.add_argument("--curriculum", type=float, default=0.6,
                   help="stage 2 draws exact-grammar scenes only at first, then linearly more ambiguous "
                        "ones until this fraction of the steps (0: the pool's mix throughout)")
    p.add_argument("--hold", type=float, default=0.4,
                   help="with --curriculum: the fraction of the steps that draws exact-grammar scenes only")
    p.add_argument("--exact-share", type=float, default=0.35,
                   help="share of training scenes drawn from the exact grammar (the rest: ambiguity 1)")
    p.add_argument("--eval-every", type=int, default=0, help="quick held-out check every N steps (0: off)")
    p.add_argument("--spec", default="", help='JSON overrides of TinyLlavaSpec, e.g. \'{"text_layers": 1}\'')
    return p.parse_args(argv)


if __name__ == "__main__":
    train(parse_args())
