"""The core pipeline: proxy guarantees, entropy by hand, LLaVA preprocessing, and the sweep's
records against an independent greedy recomputation with plain transformers code."""
import json
import re
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from attacks.proxy import pgd_proxy
from confidence_trap.models import MODELS, available_models, resolve
from confidence_trap.errors import InputError
from confidence_trap.models.generation import counted_mask
from confidence_trap.models.images import input_size, to_model_input
from confidence_trap.models.prompts import LLAVA_V1_SYSTEM, build_prompt, default_format
from probes.entropy import mean_token_entropy, token_entropy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(REPO, "data", "photos")


# --- the PGD-style proxy ------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.01, 8 / 255, 0.1, 0.3, 0.5, 1.0])
def test_proxy_stays_in_the_ball_and_the_pixel_range(eps):
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    x_adv = pgd_proxy(x, eps, generator=torch.Generator().manual_seed(2))
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.5 * min(eps, 0.5)  # it really perturbs


def test_proxy_is_deterministic_by_seed_and_identity_at_zero():
    x = torch.rand(2, 3, 16, 16)
    a = pgd_proxy(x, 0.3, generator=torch.Generator().manual_seed(7))
    b = pgd_proxy(x, 0.3, generator=torch.Generator().manual_seed(7))
    c = pgd_proxy(x, 0.3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(pgd_proxy(x, 0.0), x)


def test_proxy_rejects_bad_input():
    with pytest.raises(ValueError):
        pgd_proxy(torch.rand(1, 3, 8, 8), 1.5)
    with pytest.raises(ValueError):
        pgd_proxy(torch.rand(3, 8, 8), 0.1)


# --- entropy ----------------------------------------------------------------------------

def test_token_entropy_by_hand():
    assert token_entropy(torch.zeros(5)).item() == pytest.approx(math.log(5), abs=1e-6)
    # p = (0.25, 0.75): H = -(0.25 ln 0.25 + 0.75 ln 0.75)
    h = token_entropy(torch.tensor([0.0, math.log(3.0)])).item()
    assert h == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6)
    # a -inf logit is a token of probability 0, not a nan
    assert token_entropy(torch.tensor([0.0, 0.0, -float("inf")])).item() == pytest.approx(math.log(2))
    # half precision in, float32 out
    assert token_entropy(torch.zeros(2, 4, dtype=torch.float16)).dtype == torch.float32


def test_mean_entropy_counts_up_to_and_including_the_first_eos():
    eos = 2
    ids = torch.tensor([[5, 6, 2, 2, 2], [5, 2, 7, 2, 0], [5, 6, 7, 8, 9]])
    mask = counted_mask(ids, [eos])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    logits = torch.zeros(3, 5, 4)
    logits[:, :, 0] = torch.arange(5.0)  # entropy falls with position
    h = token_entropy(logits)
    got = mean_token_entropy(logits, mask)
    for b in range(3):
        assert got[b].item() == pytest.approx(h[b][mask[b]].mean().item(), abs=1e-6)


# --- the model registry and the prompt --------------------------------------------------

def test_registry():
    assert MODELS["llava-1.5-7b"] == "llava-hf/llava-1.5-7b-hf"
    assert {"llava-1.5-7b", "llava-1.5-13b", "tiny"} <= set(available_models())
    with pytest.raises(InputError, match="llava-1.5-7b"):
        resolve("no-such-model")


def test_llava_v1_prompt_is_the_original_template():
    assert build_prompt(None, "What is it?", "llava_v1") == (
        "A chat between a curious human and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the human's questions. "
        "USER: <image>\nWhat is it? ASSISTANT:")
    assert LLAVA_V1_SYSTEM.startswith("A chat between")
    assert default_format("llava-hf/llava-1.5-7b-hf") == "llava_v1"
    assert default_format("llava-hf/llava-1.5-13b-hf") == "llava_v1"
    assert default_format("/some/folder") == "chat_template"


# --- preprocessing: the same pixels as the HF processor with do_pad (the original's expand2square)

def test_preprocessing_matches_the_hf_processor_with_padding(tiny_ckpt):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_ckpt)
    assert processor.image_processor.do_pad
    im = Image.open(os.path.join(PHOTOS, "rocket.jpg")).convert("RGB")  # not square
    assert im.width != im.height
    ref = processor.image_processor(images=im, return_tensors="pt")["pixel_values"][0]
    ip = processor.image_processor
    x = to_model_input(im, input_size(processor), ip.image_mean)
    mine = (x - torch.tensor(ip.image_mean).view(3, 1, 1)) / torch.tensor(ip.image_std).view(3, 1, 1)
    assert mine.shape == ref.shape
    assert torch.allclose(mine, ref, atol=1e-5)


# --- the sweep against plain transformers ------------------------------------------------

def _run(args, **kw):
    return subprocess.run([sys.executable, "experiments/entropy_analysis.py", *args], cwd=REPO,
                          capture_output=True, text=True, **kw)


def _plain_greedy_entropies(folder, image_path, prompt, max_new_tokens):
    """Independent recomputation: the HF processor on the PIL image, generate, entropy in float64."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder)
    model = LlavaForConditionalGeneration.from_pretrained(folder).eval()
    inputs = processor(images=Image.open(image_path).convert("RGB"), text=prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens,
                             return_dict_in_generate=True, output_logits=True)
    ents = []
    for step, logits in enumerate(out.logits):
        z = logits[0].double().numpy()
        logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
        ents.append(float(-(np.exp(logp) * logp).sum()))
        if out.sequences[0, inputs["input_ids"].shape[1] + step] == processor.tokenizer.eos_token_id:
            break
    answer = processor.tokenizer.decode(out.sequences[0, inputs["input_ids"].shape[1]:],
                                        skip_special_tokens=True).strip()
    return ents, answer


@pytest.mark.slow  # a whole CLI run in a subprocess, ~6 s: keeps the fast tier well under a minute
def test_clean_entropies_equal_an_independent_recomputation(peaky_ckpt, tmp_path):
    out = tmp_path / "run"
    r = _run(["--model", peaky_ckpt, "--images", os.path.join(PHOTOS, "rocket.jpg"),
              os.path.join(PHOTOS, "chelsea.jpg"), "--epsilons", "0.3", "--trials", "1",
              "--max-new-tokens", "6", "--batch-size", "2", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    records = [json.loads(l) for l in (out / "records.jsonl").read_text().splitlines()]
    clean = [r for r in records if r["attack"] == "none"]
    assert len(clean) == 2 and len(records) == 8  # and per image a blank, a proxy and a repeat
    for rec in clean:
        ents, answer = _plain_greedy_entropies(peaky_ckpt, os.path.join(REPO, rec["image"]),
                                               rec["prompt"], 6)
        assert rec["n_tokens"] == len(ents)
        assert rec["token_entropies"] == pytest.approx(ents, abs=1e-4)
        assert rec["mean_entropy"] == pytest.approx(float(np.mean(ents)), abs=1e-4)
        assert rec["answer"] == answer
    pert = [r for r in records if r["attack"] == "proxy"]
    assert all(r["epsilon"] == 0.3 and r["trial"] == 0 for r in pert)
    assert len({r["seed"] for r in pert}) == 2
    for name in ("summary.json", "entropy_report.txt", "run.json", "figures/figure_1_epsilon_delta.png"):
        assert (out / name).exists(), name
    run = json.loads((out / "run.json").read_text())
    assert run["dtype"] == "float32" and run["device"] == "cpu"
    assert run["versions"]["transformers"]


def test_no_module_bootstraps_sys_path():
    """The package is installed (pip install -e .), so no script puts the repository on sys.path."""
    import glob

    offenders = []
    for path in glob.glob(os.path.join(REPO, "**", "*.py"), recursive=True):
        with open(path, encoding="utf-8") as f:
            if re.search(r"sys\.path\.(insert|append)|sys\.path\[", f.read()):
                offenders.append(os.path.relpath(path, REPO))
    assert not offenders


@pytest.mark.slow
def test_scripts_run_as_users_type_them_from_any_folder(tiny_ckpt, tmp_path):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, os.path.join(REPO, "experiments", "sanity_check.py"), "--model",
                        tiny_ckpt, "--max-new-tokens", "3"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "entropy:" in r.stdout and "LlavaForConditionalGeneration" in r.stdout
    r = _run(["--model", tiny_ckpt, "--images", os.path.join(PHOTOS, "coffee.jpg"), "--epsilons",
              "8/255", "--trials", "1", "--max-new-tokens", "2", "--out", str(tmp_path / "o")], env=env)
    assert r.returncode == 0, r.stderr
    eps = {json.loads(l)["epsilon"] for l in (tmp_path / "o" / "records.jsonl").read_text().splitlines()}
    assert eps == {0.0, 8 / 255}


@pytest.mark.slow
def test_pip_install_e_works_in_a_fresh_virtual_environment(tmp_path):
    """pip install -e . (offline, no dependencies) into a new venv makes every package importable
    from any folder. The new venv sees the packages of the environment that runs the tests (a
    user's venv made as the README says, or CI's interpreter), as plain paths, so their pip and
    setuptools build it, and an editable install of the environment's own stays inactive there.
    `--system-site-packages` would show the base interpreter's instead, whatever they are."""
    import setuptools
    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    assert (major, minor) >= (70, 1), (  # older ones build an editable wheel only with `wheel`
        f"setuptools {setuptools.__version__} here; pip install -e '.[dev]' installs setuptools>=70.1")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    own = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, env=env).stdout.strip()
    with open(os.path.join(own, "_outer_environment.pth"), "w") as f:  # plain paths: no .pth runs
        f.write("\n".join(p for p in sys.path if p.endswith("-packages")) + "\n")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", REPO],
                       cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    code = "import confidence_trap.cli, attacks, probes; print(confidence_trap.__file__)"
    r = subprocess.run([py, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().startswith(os.path.realpath(REPO))


def test_yaml_config_with_flag_overrides(tmp_path):
    from confidence_trap.runner.config import build_config, add_arguments
    import argparse

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("epsilons: [0.1, 8/255]\ntrials: 3\nmax-new-tokens: 7\n")
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg, changed = build_config(p.parse_args(["--config", str(cfg_file), "--trials", "2"]))
    assert cfg.epsilons == [0.1, 8 / 255] and cfg.trials == 2 and cfg.max_new_tokens == 7
    assert changed["trials"] == 2


def _proxy_loop(x, eps, steps, alpha, generator):
    """The proxy written out plainly, one image, one draw per step: what batching must match."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    noise = torch.rand(x.shape, generator=generator)
    x_adv = torch.min(torch.max(x + (noise * 2 - 1) * eps, x - eps), x + eps).clamp(0, 1)
    for _ in range(steps):
        d = torch.randint(0, 2, x.shape, generator=generator).float() * 2 - 1
        x_adv = torch.min(torch.max(x_adv + alpha * d, x - eps), x + eps).clamp(0, 1)
    return x_adv


@pytest.mark.parametrize("steps,alpha", [(10, None), (3, 0.05)])
def test_proxy_batch_equals_one_image_at_a_time(steps, alpha):
    """One generator and one ε per image: the batch gives each image exactly the pixels it gets
    alone, so a unit's perturbation does not depend on the batch it lands in."""
    x = torch.rand(4, 3, 20, 20, generator=torch.Generator().manual_seed(3))
    eps = [0.1, 8 / 255, 0.5, 0.0]
    seeds = [11, 12, 13, 14]
    batch = pgd_proxy(x, eps, steps=steps, alpha=alpha,
                      generator=[torch.Generator().manual_seed(s) for s in seeds])
    for i in range(4):
        alone = _proxy_loop(x[i:i + 1], eps[i], steps, alpha, torch.Generator().manual_seed(seeds[i]))
        assert torch.equal(batch[i:i + 1], alone), i
    assert torch.equal(batch[3], x[3])  # ε = 0 leaves its image alone
    # one generator for a whole batch draws in the loop's order too
    one = pgd_proxy(x[:2], 0.3, steps=steps, alpha=alpha, generator=torch.Generator().manual_seed(5))
    assert torch.equal(one, _proxy_loop(x[:2], 0.3, steps, alpha, torch.Generator().manual_seed(5)))


def test_proxy_rejects_mismatched_per_image_arguments():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError):
        pgd_proxy(x, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        pgd_proxy(x, [0.1, 1.2])
    with pytest.raises(ValueError):
        pgd_proxy(x, 0.1, generator=[torch.Generator()])


def test_sweep_perturbs_a_batch_as_it_perturbs_each_unit():
    """confidence_trap.runner.sweep.perturb_batch (a batch's units in one registry call, one generator each)
    = the attack's own function, unit by unit; the blank pass is the processor's mean colour and
    the repeat pass the clean image."""
    from types import SimpleNamespace

    from attacks.corruptions import corrupt
    from confidence_trap.runner.config import Config
    from confidence_trap.tasks.imagesets import Item
    from confidence_trap.runner.sweep import Sweep, make_units, perturb_batch

    items = [Item(f"img{i}.png", f"img{i}.png", "What is this?") for i in range(3)]
    pixels = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for attack in ("proxy", "corruption:gaussian_noise"):
        levels = dict(epsilons=[0.1, 0.5]) if attack == "proxy" else dict(severities=[1, 5])
        cfg = Config(model="tiny", attack=attack, trials=2, **levels)
        mean = (0.25, 0.5, 0.75)
        sweep = Sweep(SimpleNamespace(image_mean=mean), cfg, items, [], None)  # what the blank pass needs
        units = make_units(cfg, items)
        assert [u.attack for u in units][:6] == ["none"] * 3 + ["blank"] * 3
        assert sorted(u.item for u in units[-3:]) == [0, 1, 2] and {u.attack for u in units[-3:]} == {"repeat"}
        order = [5, 0, 9, 2, 16, 7, 4, 11, 1, 14]  # mixed clean, blank, perturbed and repeat units
        blank = torch.tensor([int(m * 255) / 255 for m in mean]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
        got = perturb_batch(sweep, pixels[[units[k].item for k in order]], [units[k] for k in order], {})
        for j, k in enumerate(order):
            u, x = units[k], pixels[units[k].item][None]
            g = torch.Generator().manual_seed(u.seed)
            want = (x if u.attack in ("none", "repeat") else blank if u.attack == "blank"
                    else pgd_proxy(x, u.epsilon, generator=g) if attack == "proxy"
                    else corrupt(x, "gaussian_noise", u.severity, generator=g))
            assert torch.equal(got[j:j + 1], want), (attack, k)
        assert torch.equal(pixels, torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("module", ["attacks.proxy", "attacks.pgd", "attacks.corruptions", "probes.entropy",
                                    "probes.uncertainty", "probes.semantic", "confidence_trap.analysis.stats",
                                    "confidence_trap.analysis.calibration", "confidence_trap.analysis.selective"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0, module
