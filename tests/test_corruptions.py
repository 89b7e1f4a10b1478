import doctest

import pytest
import torch

import attacks.corruptions as corruptions_module
from attacks.corruptions import CORRUPTIONS, corrupt


def _image(b=2, size=64):
    """Smooth gradients plus mild texture, mid-range, so every corruption has room to act."""
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, size)
    base = torch.stack([t[None, :].expand(size, size), t[:, None].expand(size, size),
                        0.5 + 0.3 * torch.sin(6 * t)[None, :] * torch.cos(4 * t)[:, None]])
    x = 0.2 + 0.6 * base[None].expand(b, 3, size, size)
    return (x + 0.1 * torch.rand(b, 3, size, size, generator=g)).clamp(0, 1)


def _run(x, name, severity, seed=0):
    return corrupt(x, name, severity, generator=torch.Generator().manual_seed(seed))


def test_names():
    assert CORRUPTIONS == ("gaussian_noise", "shot_noise", "gaussian_blur", "defocus_blur",
                           "motion_blur", "jpeg", "contrast", "brightness", "pixelate")


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_range_dtype_and_severity_order(name):
    x = _image()
    diffs = []
    for severity in (1, 5):
        y = _run(x, name, severity)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        assert torch.isfinite(y).all()
        diffs.append(float((y - x).abs().mean()))
    assert diffs[1] > diffs[0], diffs
    assert diffs[1] > 0.01


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_by_seed(name):
    x = _image(size=32)
    assert torch.equal(_run(x, name, 3, seed=1), _run(x, name, 3, seed=1))


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "motion_blur"])
def test_random_corruptions_follow_the_seed(name):
    x = _image(b=4, size=32)
    assert not torch.equal(_run(x, name, 3, seed=1), _run(x, name, 3, seed=2))


def test_input_is_not_modified():
    x = _image(size=32)
    before = x.clone()
    for name in CORRUPTIONS:
        _run(x, name, 5)
    assert torch.equal(x, before)


@pytest.mark.parametrize("name", ["gaussian_blur", "defocus_blur", "motion_blur", "pixelate"])
def test_blurs_keep_a_flat_image(name):
    x = torch.full((1, 3, 40, 40), 0.37)
    assert torch.allclose(_run(x, name, 5), x, atol=1e-5)


def test_contrast_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    x[0, :, 0, 0] = 1.0  # channel mean 0.25
    y = corrupt(x, "contrast", 1)  # factor 0.4 towards the mean: 0.25 ± 0.4·(x − 0.25)
    assert torch.allclose(y[0], torch.tensor([[0.55, 0.15], [0.15, 0.15]]).expand(3, 2, 2))


def test_brightness_by_hand():
    # HSV value +0.1 with hue and saturation kept: (0.5, 0.25, 0) -> (0.6, 0.3, 0); black -> grey
    x = torch.zeros(1, 3, 1, 2)
    x[0, :, 0, 0] = torch.tensor([0.5, 0.25, 0.0])
    y = corrupt(x, "brightness", 1)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.6, 0.3, 0.0]))
    assert torch.allclose(y[0, :, 0, 1], torch.full((3,), 0.1))


def test_gaussian_noise_std():
    x = torch.full((1, 3, 64, 64), 0.5)
    y = _run(x, "gaussian_noise", 1)  # σ = 0.08, far from the clamp
    assert abs(float((y - x).std()) - 0.08) < 0.005


def test_jpeg_is_quantised_and_preserves_mean():
    x = _image(size=32)
    y = _run(x, "jpeg", 1)
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)
    assert abs(float(y.mean() - x.mean())) < 0.02


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True, "3", None])
def test_bad_severity(severity):
    with pytest.raises(ValueError, match="1, 2, 3, 4, 5"):
        corrupt(_image(size=8), "contrast", severity)


def test_bad_name_lists_names():
    with pytest.raises(ValueError, match="gaussian_noise.*pixelate"):
        corrupt(_image(size=8), "fog", 1)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        corrupt(torch.rand(3, 8, 8), "contrast", 1)


def test_docstring_example():
    assert doctest.testmod(corruptions_module).failed == 0


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("side", [224, 336, 48])
def test_pixelate_is_imagenet_cs(severity, side):
    """ImageNet-C's pixelate (bethgelab/imagecorruptions 1.1.2) on an 8-bit image: PIL BOX down to
    int(side * c), NEAREST back up. Ours works in float, so it differs only by that rounding."""
    import numpy as np
    from PIL import Image

    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    rng = np.random.default_rng(severity)
    u8 = (rng.random((side, side, 3)) ** 2 * 255).round().astype(np.uint8)
    im = Image.fromarray(u8, "RGB").resize((int(side * c), int(side * c)), Image.BOX)
    want = np.asarray(im.resize((side, side), Image.NEAREST), dtype=np.float32) / 255
    x = torch.from_numpy(u8.astype(np.float32) / 255).permute(2, 0, 1)[None]
    got = corrupt(x, "pixelate", severity)[0].permute(1, 2, 0).numpy()
    diff = np.abs(got - want)
    assert diff.max() <= 1 / 255 + 1e-6 and diff.mean() <= 0.6 / 255
