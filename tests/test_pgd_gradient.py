"""True-gradient PGD: the loop's guarantees, the objectives through a whole (tiny) Llava, the
sweep's plumbing of clean answers to pgd units, entropy_min against the proxy on the embedded
model, and the GPU memory check's CPU-side logic. The command-line run of --attack pgd is in
tests/test_attacks_e2e.py."""
import json
import os

import pytest
import torch

from attacks.pgd import pgd_gradient
from attacks.proxy import pgd_proxy
from confidence_trap.runner.objectives import OBJECTIVES, make_objective
from confidence_trap.models.generation import generate
from confidence_trap.models.prompts import build_prompt
from probes.entropy import mean_token_entropy, token_entropy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_LLAVA = os.path.join(REPO, "models", "tiny-llava")


# --- the loop, with a plain loss ----------------------------------------------------------------

def quadratic(target):
    return lambda z: ((z - target) ** 2).sum()


@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.3, 1.0])
def test_the_loop_stays_in_the_ball_and_the_pixel_range_and_descends(eps):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    target = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    loss = quadratic(target)
    x_adv = pgd_gradient(x, eps, loss, generator=torch.Generator().manual_seed(2))
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert loss(x_adv) < loss(x)
    assert not x_adv.requires_grad


def test_the_loop_returns_each_images_best_iterate():
    """With a step far too large the iterates oscillate; the result is, per image, the iterate
    of least loss among the start and every step (each step's iterate is the last iterate of a
    run with that many steps, from the same seed)."""
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def per_image(z):
        return ((z - target) ** 2).flatten(1).sum(1) + 5 * torch.sin(40 * z).flatten(1).mean(1)

    def run(steps, alpha=0.15, **kw):
        return pgd_gradient(x, 0.2, per_image, steps=steps, alpha=alpha,
                            generator=torch.Generator().manual_seed(2), **kw)

    start = run(1, alpha=0.0, keep_best=False)
    iterates = [start] + [run(k, keep_best=False) for k in range(1, 7)]
    losses = torch.stack([per_image(z) for z in iterates])  # [7, B]
    best = run(6)
    want = torch.stack([iterates[int(i)][b] for b, i in enumerate(losses.argmin(0))])
    assert torch.equal(best, want)
    assert (per_image(best) <= per_image(iterates[-1])).all()
    assert (per_image(best) < per_image(iterates[-1])).any()  # the last step is not the best here
    with pytest.raises(ValueError, match="one loss per image"):
        pgd_gradient(x, 0.1, lambda z: z.sum(dim=(1, 2)))


def test_the_loop_is_deterministic_by_seed_identity_at_zero_and_works_under_no_grad():
    x = torch.rand(1, 3, 8, 8)
    loss = quadratic(torch.full_like(x, 0.5))
    a = pgd_gradient(x, 0.1, loss, generator=torch.Generator().manual_seed(3))
    b = pgd_gradient(x, 0.1, loss, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(pgd_gradient(x, 0.0, loss), x)
    # same random start as the proxy: one step of each from the same seed differs only in direction
    with torch.no_grad():
        c = pgd_gradient(x, 0.1, loss, steps=1, alpha=0.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(c, pgd_proxy(x, 0.1, steps=1, alpha=0.0, generator=torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match="scalar"):
        pgd_gradient(x, 0.1, lambda z: z.sum(dim=0))


# --- through a whole tiny Llava ---------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tiny_ckpt):
    from confidence_trap.models import load

    model, processor = load(tiny_ckpt, device="cpu")
    prompt = build_prompt(processor, "Describe the image.", "chat_template")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = generate(model, processor, x, [prompt], max_new_tokens=6)
    return model, processor, prompt, x, out


def test_teacher_forcing_scores_the_positions_the_clean_record_holds(tiny):
    model, processor, prompt, x, out = tiny
    ids = out.token_ids[0][out.mask[0]].tolist()
    loss = make_objective("entropy_min", model, processor, prompt, ids)
    with torch.no_grad():
        logits = loss.logits(x)
    assert torch.allclose(logits, out.logits[0][out.mask[0]].float()[None], atol=1e-4)
    clean_h = float(mean_token_entropy(out.logits, out.mask)[0])
    assert float(loss(x)) == pytest.approx(clean_h, abs=1e-4)
    assert float(make_objective("entropy_max", model, processor, prompt, ids)(x)) == pytest.approx(-clean_h, abs=1e-4)
    ce = torch.nn.functional.cross_entropy(logits[0], torch.tensor(ids))
    assert float(make_objective("ce", model, processor, prompt, ids)(x)) == pytest.approx(-float(ce), abs=1e-4)


def test_entropy_gradients_stay_finite_beside_excluded_vocabulary_rows():
    """An excluded row (-inf logit, confidence_trap.models.vocab) takes no mass and no gradient; the others get
    the gradient the entropy over the kept rows alone has."""
    logits = torch.randn(2, 3, 6, generator=torch.Generator().manual_seed(0))
    full = logits.clone().requires_grad_(True)
    masked = torch.cat([full[..., :4], torch.full_like(full[..., 4:], float("-inf"))], -1)
    token_entropy(masked).sum().backward()
    kept = logits[..., :4].clone().requires_grad_(True)
    token_entropy(kept).sum().backward()
    assert torch.isfinite(full.grad).all() and (full.grad[..., 4:] == 0).all()
    assert torch.allclose(full.grad[..., :4], kept.grad, atol=1e-6)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_gradient_reaches_the_pixels_and_no_parameter(tiny, checkpointing, objective):
    model, processor, prompt, x, out = tiny
    flags = [p.requires_grad for p in model.parameters()]
    loss = make_objective(objective, model, processor, prompt, out.token_ids[0][out.mask[0]].tolist(),
                          checkpointing=checkpointing)
    xg = x.clone().requires_grad_(True)
    loss(xg).backward()
    assert torch.isfinite(xg.grad).all() and (xg.grad != 0).float().mean() > 0.9
    assert all(p.grad is None for p in model.parameters())
    assert not model.training and not model.is_activation_checkpointing
    assert [p.requires_grad for p in model.parameters()] == flags
    if checkpointing:  # the same gradient as without
        plain = make_objective(objective, model, processor, prompt, out.token_ids[0][out.mask[0]].tolist(),
                               checkpointing=False)
        xp = x.clone().requires_grad_(True)
        plain(xp).backward()
        assert torch.allclose(xg.grad, xp.grad, atol=1e-6)


def test_pgd_through_the_vlm_stays_in_the_ball_and_moves_each_objective(tiny):
    model, processor, prompt, x, out = tiny
    ids = out.token_ids[0][out.mask[0]].tolist()
    for name in OBJECTIVES:
        loss = make_objective(name, model, processor, prompt, ids)
        for eps in ([1 / 255, 8 / 255, 0.3] if name == "ce" else [8 / 255]):
            x_adv = pgd_gradient(x, eps, loss, steps=3, generator=torch.Generator().manual_seed(0))
            assert (x_adv - x).abs().max() <= eps + 1e-6, (name, eps)
            assert x_adv.min() >= 0 and x_adv.max() <= 1, (name, eps)
        # from the clean image the best iterate is never above the clean loss; ce, whose
        # landscape is not flat on a random model (its entropies sit near log V), moves below it
        x_adv = pgd_gradient(x, 8 / 255, loss, steps=3, random_start=False)
        assert float(loss(x_adv)) <= float(loss(x)), name
        if name == "ce":
            assert float(loss(x_adv)) < float(loss(x))


# --- the sweep: clean answers reach the pgd units ----------------------------------------------

def make_sweep(model, processor, items, pixels, prompts, clean=None, **overrides):
    from confidence_trap.runner.config import Config
    from confidence_trap.runner.pipeline import Pixels
    from confidence_trap.runner.sweep import Sweep

    from confidence_trap.models.vlm import VLM

    cfg = Config(model="tiny", trials=1, max_new_tokens=6, **overrides)
    return Sweep(VLM(model, processor), cfg, items, prompts, Pixels.of(pixels), clean=dict(clean or {}))


def sweep(model, processor, items, pixels, prompts, **overrides):
    from confidence_trap.runner.sweep import make_units, run_batch

    s = make_sweep(model, processor, items, pixels, prompts, **overrides)
    units = make_units(s.cfg, items)
    records = run_batch(s, units)
    return s.cfg, units, records, s.clean


def test_pgd_units_attack_the_clean_records_answer(tiny):
    from confidence_trap.tasks.imagesets import Item
    from confidence_trap.models.vlm import VLM
    from confidence_trap.runner.sweep import clean_answers, run_batch

    model, processor, prompt, x, _ = tiny
    items = [Item("a", "a.png", "Describe the image."), Item("b", "b.png", "Describe the image.")]
    pixels = torch.cat([x, torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(5))])
    prompts = [prompt, prompt]
    cfg, units, records, clean = sweep(model, processor, items, pixels, prompts, attack="pgd",
                                       objective="entropy_min", epsilons=[8 / 255], steps=3)
    assert [r["attack"] for r in records] == ["none", "none", "blank", "blank", "pgd:entropy_min",
                                              "pgd:entropy_min", "repeat", "repeat"]
    assert clean == {0: records[0]["answer_ids"], 1: records[1]["answer_ids"]}
    assert clean_answers(records, items, VLM(model, processor)) == clean
    # a resumed run: the pgd units alone, with the clean answers handed in, regenerated, or
    # re-tokenised from an older record without ids, give the same records
    pgd = units[4:6]
    attack = dict(attack="pgd", objective="entropy_min", epsilons=[8 / 255], steps=3)
    again = run_batch(make_sweep(model, processor, items, pixels, prompts, clean, **attack), pgd)
    regenerated = run_batch(make_sweep(model, processor, items, pixels, prompts, **attack), pgd)
    for a, b, c in zip(again, records[4:6], regenerated):  # batch size moves the last float bits only
        assert a["answer_ids"] == b["answer_ids"] == c["answer_ids"] and a["seed"] == b["seed"]
        assert a["mean_entropy"] == pytest.approx(b["mean_entropy"], abs=1e-4)
        assert c["mean_entropy"] == pytest.approx(b["mean_entropy"], abs=1e-4)
    old = [{k: v for k, v in r.items() if k != "answer_ids"} for r in records[:2]]
    retok = clean_answers(old, items, VLM(model, processor))
    assert set(retok) == {0, 1} and all(ids[-1] == processor.tokenizer.eos_token_id for ids in retok.values())


def mean_entropy_after(model, processor, items, pixels, prompts, **attack):
    _, _, records, _ = sweep(model, processor, items, pixels, prompts, **attack)
    by_attack = {}
    for r in records:
        by_attack.setdefault(r["attack"], []).append(r["mean_entropy"])
    return {k: sum(v) / len(v) for k, v in by_attack.items()}


def embedded_scenes(n):
    """The committed embedded model and the first n pairs of the default scene set:
    (model, processor, items, pixels, prompts)."""
    from confidence_trap.tasks.imagesets import resolve_items
    from confidence_trap.models import load
    from confidence_trap.models.images import input_size, load_image, to_model_input

    assert os.path.isfile(os.path.join(TINY_LLAVA, "config.json")), "models/tiny-llava is missing"
    model, processor = load(TINY_LLAVA, device="cpu")
    items = resolve_items([], None, "scenes")[:n]
    size = input_size(processor)
    pixels = torch.stack([to_model_input(load_image(it.path), size, processor.image_processor.image_mean)
                          for it in items])
    prompts = [build_prompt(processor, it.question, "chat_template") for it in items]
    return model, processor, items, pixels, prompts


def test_entropy_min_lowers_entropy_more_than_the_proxy():
    """On the embedded model (committed), at ε = 8/255, 10 steps, over three scenes: the mean
    token entropy of the greedy answers."""
    model, processor, items, pixels, prompts = embedded_scenes(3)
    eps = dict(epsilons=[8 / 255], steps=10)
    proxy = mean_entropy_after(model, processor, items, pixels, prompts, attack="proxy", **eps)
    pgd = mean_entropy_after(model, processor, items, pixels, prompts, attack="pgd", objective="entropy_min", **eps)
    assert pgd["none"] == pytest.approx(proxy["none"])  # the same clean generations
    assert pgd["pgd:entropy_min"] < proxy["proxy"], (pgd, proxy)
    assert pgd["pgd:entropy_min"] < pgd["none"], pgd


@pytest.mark.slow
def test_confidence_attacks_move_the_entropy_the_way_they_are_built_to():
    """On the embedded model (committed), over the first 64 pairs of the default scene set (all
    four question types): entropy_min lowers the mean token entropy of the greedy answers and
    entropy_max raises it, at 4/255, 8/255 and 16/255, each against the clean answers (the same
    clean generations). The whole set is results/controls/ (scripts/committed_runs.sh)."""
    model, processor, items, pixels, prompts = embedded_scenes(64)
    for eps in (4 / 255, 8 / 255, 16 / 255):
        low = mean_entropy_after(model, processor, items, pixels, prompts, attack="pgd",
                                 objective="entropy_min", epsilons=[eps])
        high = mean_entropy_after(model, processor, items, pixels, prompts, attack="pgd",
                                  objective="entropy_max", epsilons=[eps])
        assert low["none"] == pytest.approx(high["none"])
        assert low["pgd:entropy_min"] < low["none"] < high["pgd:entropy_max"], (eps, low, high)


def test_an_unknown_objective_is_refused_before_anything_runs(tiny_ckpt, tmp_path, capsys):
    from confidence_trap.cli import main

    assert main(["--model", tiny_ckpt, "--attack", "pgd", "--objective", "nope", "--device", "cpu",
                 "--out", str(tmp_path / "run")]) == 2
    assert "entropy_min" in capsys.readouterr().err and not (tmp_path / "run").exists()


# --- the GPU memory check, CPU side -------------------------------------------------------------

def test_gpu_memory_check_runs_on_a_tiny_llava(tmp_path):
    from confidence_trap.runner import memory as gpu_memory_check

    out = tmp_path / "gpu_memory.json"
    assert gpu_memory_check.main(["--tiny", "--device", "cpu", "--steps", "1", "--answer-tokens", "8",
                                  "--out", str(out)]) == 0
    report = json.load(open(out))
    assert report["checkpointing"] and report["attention"] == "sdpa" and report["answer_tokens"] == 8
    assert report["grad_nonzero_fraction"] > 0.9 and report["peak_rss_gib"] > 0
    assert report["t4_budget_gib"] == 14.5 and report["fits_t4"] is None  # no GPU figure on a CPU
    assert gpu_memory_check.main(["--device", "cpu", "--out", str(out)]) == 2  # the 7B wants CUDA


def test_the_7b_stand_in_has_llava_1_5s_shape():
    from transformers import LlavaForConditionalGeneration

    from transformers import AutoProcessor

    from confidence_trap.runner.memory import CONFIG_FILE
    from confidence_trap.models.checkpoint import STAND_IN_PROCESSOR, llava_config
    from confidence_trap.models.generation import encode

    config = llava_config(CONFIG_FILE)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(7.063e9, rel=1e-3)
    processor = AutoProcessor.from_pretrained(STAND_IN_PROCESSOR)
    prompt = build_prompt(processor, "What is shown in this image?", "llava_v1")
    enc = encode(processor, [prompt], torch.zeros(1, 3, 336, 336), "cpu", torch.float16, original_ids=True)
    assert int((enc["input_ids"] == 32000).sum()) == 576
    assert enc["input_ids"][0, 0] == 1 and enc["pixel_values"].shape == (1, 3, 336, 336)
