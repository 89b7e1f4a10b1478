"""The two passes every run adds (confidence_trap/runner/sweep.py): the null control ('repeat', the clean
input generated again beside other neighbours and at another padded length) and the prior pass
('blank'); and the answer_entropy probe, which leaves out the step that emits EOS."""
import json
import math
import os

import pytest
import torch

from confidence_trap.runner.config import Config
from confidence_trap.cli import main
from confidence_trap.tasks.imagesets import Item
from confidence_trap.runner.sweep import NULL_PAD, batch_spans, make_units

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = [os.path.join(REPO, "data", "scenes", f"scene_00{i}.png") for i in range(6)]


def _items(n):
    return [Item(f"img{i}.png", f"img{i}.png", "What is this?") for i in range(n)]


def test_the_null_pass_meets_other_neighbours():
    """Cut into the run's batches, no repeat unit shares its batch with the same set of items its
    clean unit was generated with."""
    items, batch = _items(40), 8
    units = make_units(Config(model="tiny", epsilons=[0.1], trials=1), items)
    batches = [units[s:e] for s, e in batch_spans(units, batch)]
    where = {}
    for b in batches:
        for u in b:
            where.setdefault((u.attack, u.item), {v.item for v in b if v.attack == u.attack})
    moved = sum(where[("repeat", i)] != where[("none", i)] for i in range(len(items)))
    assert moved == len(items)
    assert [u.attack for u in units].count("repeat") == len(items) == [u.attack for u in units].count("blank")


@pytest.mark.parametrize("n_items, batch", [(1, 64), (3, 64), (5, 4)])
def test_a_repeat_never_shares_a_batch_with_its_clean_unit(n_items, batch):
    """Even where the whole run fits in one batch (the original protocol's 43 forward passes), the
    null control's repeats start a batch of their own: generated beside their clean unit, with the
    same padding, they could only agree and the noise floor would be 0 by construction."""
    units = make_units(Config(model="tiny", epsilons=[0.1], trials=2), _items(n_items))
    spans = batch_spans(units, batch)
    assert [i for s, e in spans for i in range(s, e)] == list(range(len(units)))  # every unit once, in order
    assert all(0 < e - s <= batch for s, e in spans)
    for s, e in spans:
        kinds = {units[i].attack == "repeat" for i in range(s, e)}
        assert len(kinds) == 1, "a batch mixes repeats with the units they repeat"


def test_the_passes_can_be_turned_off():
    units = make_units(Config(model="tiny", epsilons=[0.1], trials=2, prior=False, null_control=False), _items(3))
    assert {u.attack for u in units} == {"none", "proxy"} and len(units) == 3 * 3


def test_extra_padding_leaves_the_answers_as_they_were(tiny_ckpt):
    """What the null control changes is numerics, not the question: NULL_PAD more masked padding
    positions give the same tokens and entropies up to float rounding."""
    from confidence_trap.models import load
    from confidence_trap.models.generation import generate
    from confidence_trap.models.prompts import build_prompt

    model, processor = load(tiny_ckpt, device="cpu")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prompts = [build_prompt(processor, q, "chat_template") for q in ("What drink is in the cup?", "Describe the image.")]
    a = generate(model, processor, x, prompts, 6)
    b = generate(model, processor, x, prompts, 6, pad_left=NULL_PAD)
    assert torch.equal(a.token_ids, b.token_ids)
    assert torch.allclose(a.logits, b.logits, atol=1e-4)


def test_a_run_records_both_passes_and_answer_entropy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--model", "tiny", "--images", *SCENES[:4], "--epsilons", "0.3", "--trials", "1",
                 "--batch-size", "3", "--out", str(out)]) == 0
    recs = [json.loads(line) for line in open(out / "records.jsonl")]
    clean = {r["image"]: r for r in recs if r["attack"] == "none"}
    assert [r["attack"] for r in recs].count("blank") == 4 == [r["attack"] for r in recs].count("repeat")
    for r in recs:
        if r["attack"] == "repeat":  # the same clean input: the same answer on this CPU
            assert r["answer"] == clean[r["image"]]["answer"]
            assert r["mean_entropy"] == pytest.approx(clean[r["image"]]["mean_entropy"], abs=1e-5)
        # answer_entropy by hand: the counted entropies without the step that emitted EOS
        ended = r["n_tokens"] and r["answer_ids"][-1] == 2  # the embedded model's </s>
        kept = r["token_entropies"][:-1] if ended else r["token_entropies"]
        if kept:
            assert r["answer_entropy"] == pytest.approx(sum(kept) / len(kept), rel=1e-5)
        else:
            assert r["answer_entropy"] is None
    blank = [r for r in recs if r["attack"] == "blank"]
    assert len({r["answer"] for r in blank}) == 1  # one question, one blank image: one prior answer
    s = json.load(open(out / "summary.json"))
    assert set(s["by_attack"]) == {"proxy"}  # the passes are not perturbations


def test_answer_entropy_leaves_out_the_eos_step_only():
    from probes.uncertainty import uncertainty_measures

    logits = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[5, 6, 2, 0], [5, 6, 7, 8], [2, 0, 0, 0]])  # ends with EOS / cut short / empty
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    m = uncertainty_measures(logits, ids, mask, eos_ids=[2])
    h = -(logits.log_softmax(-1).exp() * logits.log_softmax(-1)).sum(-1)
    assert float(m["answer_entropy"][0]) == pytest.approx(float(h[0, :2].mean()), rel=1e-5)
    assert float(m["answer_entropy"][1]) == pytest.approx(float(h[1].mean()), rel=1e-5)
    assert math.isnan(float(m["answer_entropy"][2]))
    assert float(m["mean_entropy"][0]) == pytest.approx(float(h[0, :3].mean()), rel=1e-5)


@pytest.mark.parametrize("name", ["blank", "repeat"])
def test_a_pass_is_not_an_attack_to_ask_for(name, capsys):
    assert main(["--model", "tiny", "--attack", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a perturbation" in err and "proxy" in err


def test_units_of_like_questions_are_batched_together():
    """Within each block the items run in the order of their questions, so a batch of colour
    questions is not held up decoding beside a batch of descriptions."""
    items = [Item(f"img{i}.png", f"img{i}.png", q) for i, q in enumerate(["b?", "a?", "b?", "a?"])]
    units = make_units(Config(model="tiny", epsilons=[0.1], trials=1, null_control=False), items)
    assert [items[u.item].question for u in units] == ["a?", "a?", "b?", "b?"] * 3
    assert [u.item for u in units[:4]] == [1, 3, 0, 2]  # stable: the items' own order within a question


def test_cpu_threads_never_exceed_the_cpus_the_process_may_use(monkeypatch):
    """A container's CPU quota, not the host's cores, bounds torch's threads on a CPU run."""
    import confidence_trap.models as models

    threads = torch.get_num_threads()
    try:
        monkeypatch.setattr(models, "cpu_quota", lambda: 1)
        torch.set_num_threads(2)
        assert models.fit_cpu_threads() == 1 == torch.get_num_threads()
        monkeypatch.setattr(models, "cpu_quota", lambda: 64)  # never raised above torch's own choice
        assert models.fit_cpu_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert models.cpu_quota() >= 1
