"""The original experiment as the study's code ran it (configs/original.yaml): the plain prompt's
ids, the three attacks against their formulas, and the teacher-forced probe against an independent
transformers forward pass written here (nothing of the engine's: ids, pixels, clamp and entropies
by hand)."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import attacks
from attacks.original import original, sigma

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOGO = os.path.join(REPO, "data", "original", "llava_logo.png")
TINY = os.path.join(REPO, "models", "tiny-llava")
FIXTURE = os.path.join(REPO, "tests", "fixtures", "llava-1.5-7b-hf-processor")
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073]).reshape(3, 1, 1)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711]).reshape(3, 1, 1)
PROMPT = "<image>\nDescribe this image in detail."


# --- the plain prompt's ids --------------------------------------------------------------------

@pytest.mark.parametrize("with_config", [False, True])
def test_the_plain_prompt_has_the_originals_ids(tmp_path, with_config):
    """LLaVA's tokenizer_image_token on "<image>\\nDescribe this image in detail.", the study's
    prompt with no conversation: BOS, the image, then the chunk after it tokenised on its own
    (its leading ▁, 29871), whichever tokenizer class transformers builds for the folder."""
    from transformers import AutoProcessor

    from confidence_trap.models.generation import encode
    from confidence_trap.models.prompts import build_prompt, original_ids

    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    if with_config:
        shutil.copy(os.path.join(REPO, "configs", "llava-1.5-7b.json"), tmp_path / "config.json")
    processor = AutoProcessor.from_pretrained(tmp_path)
    prompt = build_prompt(processor, "Describe this image in detail.", "plain")
    assert prompt == PROMPT and original_ids("plain")
    ids = encode(processor, [prompt], torch.zeros(1, 3, 336, 336), "cpu", torch.float32, True)["input_ids"][0]
    ids = ids.tolist()
    image = [i for i, t in enumerate(ids) if t == 32000]
    assert len(image) == 576 and image == list(range(1, 577))  # llava-hf expands <image> to 576 features
    assert ids[:2] + ids[577:] == [1, 32000, 29871, 13, 4002, 29581, 445, 1967, 297, 9493, 29889]


# --- the attacks against their formulas ----------------------------------------------------------

def logo_pixels(side: int) -> np.ndarray:
    """The logo as the original's process_images gives it before normalizing (it is square: no
    padding), at `side` px: float64 [3,side,side] in [0,1], written with PIL and numpy alone."""
    im = Image.open(LOGO).convert("RGB").resize((side, side), Image.BICUBIC)
    return np.asarray(im, dtype=np.float64).transpose(2, 0, 1) / 255.0


@pytest.mark.parametrize("side", [336, 48])  # LLaVA-1.5's input and the embedded model's
def test_the_clamp_alone_against_its_formula(side):
    x = logo_pixels(side)
    xn = (x - CLIP_MEAN) / CLIP_STD
    below, above = xn < 0, xn > 1
    got = original(torch.tensor(x, dtype=torch.float32)[None], "clamp", [None], CLIP_MEAN.ravel(),
                   CLIP_STD.ravel())[0].double().numpy()
    want = np.clip(xn, 0, 1) * CLIP_STD + CLIP_MEAN
    assert np.abs(got - want).max() < 1e-6
    changed = np.abs(got - x) > 1e-6
    assert (changed == (below | above)).all()  # it binds exactly where x_norm leaves [0, 1]
    assert (got >= CLIP_MEAN - 1e-6).all() and (got <= CLIP_MEAN + CLIP_STD + 1e-6).all()
    if side == 336:  # the figures ../shared/original/README.md gives for the original's input
        assert below.mean() == pytest.approx(0.249, abs=1e-3) and above.mean() == pytest.approx(0.105, abs=1e-3)
        assert np.abs(want - x).max() * 255 == pytest.approx(123, abs=1)


@pytest.mark.parametrize("side", [336, 48])
@pytest.mark.parametrize("eps", [0.1, 0.3, 0.5])
def test_the_noise_with_and_without_its_clamp_against_their_formulas(side, eps):
    x = logo_pixels(side)
    xt = torch.tensor(x, dtype=torch.float32)[None]
    s = sigma(eps)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)).double().numpy()
    gens = lambda: [torch.Generator().manual_seed(7)]  # noqa: E731 - the same draw for each attack
    noise = original(xt, "noise", [eps], CLIP_MEAN.ravel(), CLIP_STD.ravel(), gens())[0].double().numpy()
    alone = original(xt, "noise_unclamped", [eps], CLIP_MEAN.ravel(), CLIP_STD.ravel(), gens())[0].double().numpy()
    xn = (x - CLIP_MEAN) / CLIP_STD
    assert np.abs(noise - (np.clip(xn + s * z, 0, 1) * CLIP_STD + CLIP_MEAN)).max() < 1e-5
    raw = x + s * CLIP_STD * z          # the noise alone, in pixel units: σ·std·z
    assert np.abs(alone - np.clip(raw, 0, 1)).max() < 1e-5
    inside = (raw >= 0) & (raw <= 1)
    measured = ((alone - x) / CLIP_STD)[inside].std()
    assert measured == pytest.approx(s, rel=0.03)  # the noise's std is σ in normalized units
    # the clip to valid pixels binds where the noise pushes a value past 0 or 1: only values
    # within a few σ·std of 0 or 1 (the logo's white and black), and only there do values stay put
    edge = np.minimum(x, 1 - x) <= 6 * s * CLIP_STD
    assert 0 < (~inside).mean() <= edge.mean() and (~inside <= edge).all()
    assert ((np.abs(alone - x) < 1e-9) <= ~inside).all()


def test_the_three_attacks_are_registered_as_the_record_contract_says():
    noise, clamp, alone = (attacks.get(n) for n in ("original_noise", "original_clamp", "original_noise_unclamped"))
    assert noise.level == alone.level == "epsilon" and clamp.level == "none" and not clamp.is_pass
    assert noise.needs == clamp.needs == alone.needs == ("image_mean", "image_std")
    assert noise.fields(0.3) == {"sigma": 0.03} and clamp.fields(None) == {"sigma": 0.0}
    assert {"original_noise", "original_clamp", "original_noise_unclamped"} <= set(attacks.names(True))


# --- the teacher-forced probe against an independent forward pass --------------------------------

def independent(pixel_values: torch.Tensor) -> dict:
    """The original protocol by hand on the embedded model: ids as tokenizer_image_token makes
    them, one forward pass, float32 softmax over the rows an ordinary token maps to (all but the
    image and padding tokens), the entropy at every position, split by position kind."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(TINY)
    model = LlavaForConditionalGeneration.from_pretrained(TINY, dtype=torch.float32).eval()
    cfg = model.config
    before, after = PROMPT.split("<image>")
    ids = tok(before).input_ids + [cfg.image_token_index] * cfg.image_seq_length + tok(after).input_ids[1:]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), pixel_values=pixel_values).logits[0].float()
    keep = [i for i in range(min(len(tok), logits.shape[-1])) if i not in (cfg.image_token_index, cfg.pad_token_id)]
    p = torch.softmax(logits[:, keep], -1)
    h = -(torch.where(p > 0, p * p.log(), torch.zeros_like(p))).sum(-1)
    image = torch.tensor(ids) == cfg.image_token_index
    return {"prompt_entropy": float(h.mean()), "prompt_entropy_image": float(h[image].mean()),
            "prompt_entropy_text": float(h[~image].mean()), "prompt_entropy_last": float(h[-1]),
            "n_positions": len(ids), "n_image_positions": int(image.sum())}


@pytest.fixture(scope="module")
def by_hand():
    """Clean and clamped, from the logo through the processor (the original's Image.open +
    process_images), the clamp taken on the normalized tensor."""
    from transformers import AutoProcessor

    pv = AutoProcessor.from_pretrained(TINY).image_processor(Image.open(LOGO).convert("RGB"),
                                                             return_tensors="pt")["pixel_values"]
    return {"clean": independent(pv), "clamp": independent(pv.clamp(0, 1))}


FIELDS = ("prompt_entropy", "prompt_entropy_image", "prompt_entropy_text", "prompt_entropy_last")


def check_against_hand(records: list[dict], by_hand: dict) -> None:
    clean = next(r for r in records if r["attack"] == "none")
    clamp = next(r for r in records if r["attack"] == "original_clamp")
    for k in FIELDS:
        assert clean[k] == pytest.approx(by_hand["clean"][k], abs=1e-4), k
        assert clamp[k] - clean[k] == pytest.approx(by_hand["clamp"][k] - by_hand["clean"][k], abs=1e-4), k
    for k in ("n_positions", "n_image_positions"):
        assert clean[k] == by_hand["clean"][k]
    assert clamp["epsilon"] is None and clamp["sigma"] == 0.0 and clamp["level_kind"] == "none"


def test_the_engines_prompt_probe_equals_the_forward_pass_by_hand(by_hand):
    """The engine on configs/original.yaml with the embedded model, the clean and clamp units of
    one batch (the whole run is the slow tier's)."""
    from confidence_trap.runner import pipeline
    from confidence_trap.runner.config import Config, coerce, load_yaml

    cfg = Config(**{k: coerce(k, v) for k, v in load_yaml(os.path.join(REPO, "configs", "original.yaml")).items()})
    cfg.model, cfg.device = "tiny", "cpu"
    sweep = pipeline.prepare(pipeline.plan(cfg, check_out=False))
    units = [u for u in pipeline.make_units(cfg, sweep.items) if u.attack in ("none", "original_clamp")]
    records = pipeline.run_batch(sweep, units)
    check_against_hand(records, by_hand)
    assert not {"answer", "token_entropies", "mean_entropy", "answer_ids", "n_tokens"} & set(records[0])


@pytest.mark.slow  # the whole run, analysis and figures included, in a subprocess
def test_the_original_config_runs_offline_and_equals_the_forward_pass_by_hand(by_hand, tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=REPO)
    out = tmp_path / "original"
    done = subprocess.run([sys.executable, "experiments/entropy_analysis.py", "--config", "configs/original.yaml",
                           "--model", "tiny", "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in open(out / "records.jsonl")]
    check_against_hand(records, by_hand)
    noise = [r for r in records if r["attack"] == "original_noise"]
    assert sorted({(r["epsilon"], r["sigma"]) for r in noise}) == [(0.1, 0.01), (0.2, 0.02), (0.3, 0.03), (0.5, 0.05)]
    assert len(noise) == 4 * 5 and [r["attack"] for r in records].count("original_clamp") == 1
    assert [r["attack"] for r in records].count("repeat") == 1 and "blank" not in {r["attack"] for r in records}
