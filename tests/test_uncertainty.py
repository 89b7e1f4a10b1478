import doctest
import math

import pytest
import torch

import probes.uncertainty as uncertainty_module
from probes.entropy import mean_token_entropy
import probes
from probes.uncertainty import uncertainty_measures

PROBES = probes.names("logits")


def _measures(logits, ids, mask):
    return {k: v.tolist() for k, v in uncertainty_measures(logits, ids, mask).items()}


def test_keys_and_shapes():
    out = uncertainty_measures(torch.randn(3, 5, 7), torch.zeros(3, 5, dtype=torch.long),
                               torch.ones(3, 5, dtype=torch.bool))
    assert set(out) == set(PROBES) | {"n_nonfinite"}
    assert len(PROBES) == 8
    for k in PROBES:  # mean_entropy sums the float32 entropies in float64, as the record's list reads
        assert out[k].shape == (3,) and out[k].dtype == (torch.float64 if k == "mean_entropy" else torch.float32)
    assert out["n_nonfinite"].tolist() == [0, 0, 0]


def test_mean_entropy_is_the_mean_of_the_records_token_entropies():
    """Computed once: the record's mean_entropy is exactly the Python mean of its token_entropies."""
    from probes.uncertainty import mean_entropy, token_stats

    g = torch.Generator().manual_seed(3)
    logits, mask = torch.randn(4, 9, 13, generator=g) * 4, torch.rand(4, 9, generator=g) > 0.3
    stats, _ = token_stats(logits, logits.argmax(-1), mask)
    for row, h, use in zip(mean_entropy(stats).tolist(), stats.entropy.tolist(), stats.use.tolist()):
        kept = [e for e, u in zip(h, use) if u]
        assert row == sum(kept) / len(kept)


def test_uniform_logits():
    V = 10
    m = _measures(torch.zeros(1, 3, V), torch.tensor([[2, 5, 9]]), torch.ones(1, 3))
    for k in ("mean_entropy", "max_entropy", "first_token_entropy"):
        assert m[k][0] == pytest.approx(math.log(V), abs=1e-5)
    assert m["mean_max_prob"][0] == pytest.approx(1 / V, abs=1e-6)
    assert m["min_max_prob"][0] == pytest.approx(1 / V, abs=1e-6)
    assert m["seq_nll"][0] == pytest.approx(3 * math.log(V), abs=1e-5)
    assert m["perplexity"][0] == pytest.approx(V, rel=1e-5)


def test_one_hot_ish():
    logits = torch.full((1, 2, 5), -1e4)
    logits[0, :, 3] = 0.0
    m = _measures(logits, torch.tensor([[3, 3]]), torch.ones(1, 2))
    assert m["mean_entropy"][0] == pytest.approx(0.0, abs=1e-6)
    assert m["max_entropy"][0] == pytest.approx(0.0, abs=1e-6)
    assert m["mean_max_prob"][0] == pytest.approx(1.0, abs=1e-6)
    assert m["seq_nll"][0] == pytest.approx(0.0, abs=1e-6)
    assert m["perplexity"][0] == pytest.approx(1.0, abs=1e-6)


def test_two_token_hand_case():
    # token 1: p = (1/2, 1/2), picked 1/2; token 2: logits (log 3, 0) so p = (3/4, 1/4), picked 1/4
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0]]])
    m = _measures(logits, torch.tensor([[0, 1]]), torch.ones(1, 2))
    h1 = math.log(2)
    h2 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    nll = math.log(2) + math.log(4)
    assert m["mean_entropy"][0] == pytest.approx((h1 + h2) / 2, abs=1e-6)
    assert m["max_entropy"][0] == pytest.approx(max(h1, h2), abs=1e-6)
    assert m["first_token_entropy"][0] == pytest.approx(h1, abs=1e-6)
    assert m["mean_max_prob"][0] == pytest.approx((0.5 + 0.75) / 2, abs=1e-6)
    assert m["min_max_prob"][0] == pytest.approx(0.5, abs=1e-6)
    assert m["seq_nll"][0] == pytest.approx(nll, abs=1e-6)               # log 8
    assert m["perplexity"][0] == pytest.approx(math.exp(nll / 2), rel=1e-6)  # sqrt 8


def test_masked_positions_are_ignored():
    logits = torch.zeros(2, 4, 6)
    logits[:, 2:] = torch.randn(2, 2, 6) * 5  # past EOS: anything
    ids = torch.tensor([[1, 2, 3, 4], [0, 0, -100, 10 ** 6]])  # padding ids need not be valid
    mask = torch.tensor([[True, True, False, False]] * 2)
    out = uncertainty_measures(logits, ids, mask)
    ref = uncertainty_measures(logits[:, :2], ids[:, :2], mask[:, :2])
    for k in PROBES:
        assert torch.allclose(out[k], ref[k])
        assert out[k][0] == pytest.approx(out[k][1])
    assert out["seq_nll"][0] == pytest.approx(2 * math.log(6), abs=1e-5)
    assert torch.allclose(uncertainty_measures(logits, ids, mask.float())["mean_entropy"],
                          out["mean_entropy"])


def test_matches_mean_token_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=g) * 3
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]).bool()
    ids = logits.argmax(-1)
    out = uncertainty_measures(logits, ids, mask)
    assert torch.allclose(out["mean_entropy"].float(), mean_token_entropy(logits, mask), atol=1e-6)
    # greedy tokens: per-token NLL is -log max_prob, so min_max_prob bounds it
    assert (out["seq_nll"] >= -torch.log(out["min_max_prob"]) - 1e-5).all()


def test_nonfinite_positions_are_excluded_and_counted():
    logits = torch.zeros(1, 4, 4)
    logits[0, 1, 0] = float("nan")
    logits[0, 2, 1] = float("inf")
    logits[0, 3, 2] = float("-inf")  # a single -inf is a zero-probability token, not excluded
    out = _measures(logits, torch.tensor([[0, 0, 0, 0]]), torch.ones(1, 4))
    assert out["n_nonfinite"] == [2]
    h3 = math.log(3)
    assert out["mean_entropy"][0] == pytest.approx((math.log(4) + h3) / 2, abs=1e-6)
    assert out["max_entropy"][0] == pytest.approx(math.log(4), abs=1e-6)
    assert out["seq_nll"][0] == pytest.approx(math.log(4) + math.log(3), abs=1e-6)
    assert out["perplexity"][0] == pytest.approx(math.sqrt(12), rel=1e-6)
    for k in PROBES:
        assert math.isfinite(out[k][0])


def test_nonfinite_first_token_is_skipped_and_masked_nonfinite_not_counted():
    logits = torch.zeros(1, 3, 2)
    logits[0, 0] = float("nan")
    logits[0, 1] = torch.tensor([math.log(3), 0.0])
    logits[0, 2] = float("nan")  # after EOS: neither counted nor used
    out = _measures(logits, torch.tensor([[0, 0, 0]]), torch.tensor([[True, True, False]]))
    assert out["n_nonfinite"] == [1]
    assert out["first_token_entropy"][0] == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-6)


def test_no_finite_counted_token_gives_nan():
    logits = torch.zeros(3, 2, 3)
    logits[0] = float("nan")
    logits[1] = float("-inf")  # all -inf: no distribution
    mask = torch.tensor([[True, True], [True, True], [False, False]])  # row 2: nothing counted
    out = uncertainty_measures(logits, torch.zeros(3, 2, dtype=torch.long), mask)
    for k in PROBES:
        assert torch.isnan(out[k]).all(), k
    assert out["n_nonfinite"].tolist() == [2, 2, 0]


def test_half_precision_input_is_computed_in_float32():
    logits = torch.zeros(1, 2, 8, dtype=torch.float16)
    out = uncertainty_measures(logits, torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2))
    assert out["max_entropy"].dtype == torch.float32
    assert float(out["mean_entropy"]) == pytest.approx(math.log(8), abs=1e-6)


def test_bad_shapes():
    with pytest.raises(ValueError):
        uncertainty_measures(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2))
    with pytest.raises(ValueError):
        uncertainty_measures(torch.zeros(2, 3, 4), torch.zeros(2, 2, dtype=torch.long),
                             torch.ones(2, 3))


def test_docstring_example():
    assert doctest.testmod(uncertainty_module).failed == 0
