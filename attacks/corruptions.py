"""Natural image corruptions in the style of ImageNet-C, five severities each.

    >>> import torch
    >>> x = torch.rand(2, 3, 64, 64)
    >>> y = corrupt(x, "gaussian_noise", 3, generator=torch.Generator().manual_seed(0))
    >>> y.shape, float(y.min()) >= 0, float(y.max()) <= 1
    (torch.Size([2, 3, 64, 64]), True, True)

Threat model: none adversarial. A corruption is a model-agnostic, non-norm-bounded shift of the
image the model sees (after pad-to-square and resize, before CLIP normalization); the severity
1..5 plays the part that ε plays for PGD. Pixels are in [0,1] units throughout.

Parameters are the severity tables of Hendrycks & Dietterich (2019, `make_imagenet_c.py`), which
were set for 224x224 images. Lengths given in pixels there (gaussian_blur σ, defocus disk radius,
motion_blur radius and σ) are multiplied by s = min(H, W) / 224, so a severity blurs the same
fraction of the image at 336 px (LLaVA-1.5) as at 224 px; the defocus kernel's 3x3/5x5
anti-aliasing σ is a property of the kernel's edge and is not scaled. pixelate is already
relative to size; the noise, jpeg, contrast and brightness parameters are per pixel.

Everything is plain torch (no torchvision, no cv2/scipy/skimage), except JPEG, which round-trips
through PIL at ImageNet-C's quality levels (so its output is quantised to /255), and pixelate,
which uses PIL's own BOX and NEAREST resampling on float images, as ImageNet-C does on 8-bit ones. Borders are
replicate-padded (ImageNet-C uses reflection), an edge effect of a pixel or two. Gaussian kernels
are truncated at 4σ (scipy's default). gaussian_noise, shot_noise and motion_blur's angle draw from
`generator`; every other corruption is deterministic.
"""
from __future__ import annotations

import io
import math
import operator

import torch
import torch.nn.functional as F

_PARAMS = {
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),                # noise std, pixel units
    "shot_noise": (60, 25, 12, 5, 3),                                # Poisson photons per unit
    "gaussian_blur": (1, 2, 3, 4, 6),                                # σ, px at 224
    "defocus_blur": ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),  # radius at 224, alias σ
    "motion_blur": ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),  # radius, σ, px at 224
    "jpeg": (25, 18, 15, 10, 7),                                     # JPEG quality
    "contrast": (0.4, 0.3, 0.2, 0.1, 0.05),                          # factor towards the mean
    "brightness": (0.1, 0.2, 0.3, 0.4, 0.5),                         # added to HSV value
    "pixelate": (0.6, 0.5, 0.4, 0.3, 0.25),                          # downsampling factor (BOX)
}


def _conv(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Per-channel correlation of x [B,C,H,W] with kernel [kh,kw], replicate-padded, same size."""
    kh, kw = kernel.shape
    c = x.shape[1]
    x = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="replicate")
    return F.conv2d(x, kernel.to(x).expand(c, 1, kh, kw), groups=c)


def _gauss1d(sigma: float, radius: int | None = None) -> torch.Tensor:
    radius = int(4 * sigma + 0.5) if radius is None else radius
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t**2 / (2 * sigma**2))
    return k / k.sum()


def _gaussian_blur(x, sigma, scale, generator):
    k = _gauss1d(sigma * scale)
    return _conv(_conv(x, k[None, :]), k[:, None])


def _defocus_blur(x, c, scale, generator):
    radius, alias_sigma = c[0] * scale, c[1]
    r, a = math.ceil(radius), 1 if radius <= 8 else 2  # ImageNet-C: 3x3 anti-alias, 5x5 past 8 px
    t = torch.arange(-r - a, r + a + 1, dtype=torch.float32)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).float()
    g = _gauss1d(alias_sigma, a)
    disk = F.conv2d(disk[None, None], g[:, None][None, None], padding=(a, 0))
    disk = F.conv2d(disk, g[None, :][None, None], padding=(0, a))[0, 0]
    return _conv(x, disk / disk.sum())


def _motion_blur(x, c, scale, generator):
    # bethgelab/imagecorruptions' re-implementation of ImageMagick's motion blur: a one-sided
    # Gaussian trail of 2r+1 taps along a random angle in [-45°, 45°], one angle per image.
    radius, sigma = max(1, round(c[0] * scale)), c[1] * scale
    width = 2 * radius + 1
    w = torch.exp(-torch.arange(width, dtype=torch.float32) ** 2 / (2 * sigma**2))
    w = (w / w.sum()).tolist()
    angles = torch.empty(x.shape[0], device=x.device).uniform_(-45, 45, generator=generator)
    p = width
    xp = F.pad(x, (p, p, p, p), mode="replicate")
    h, wd = x.shape[-2:]
    out = torch.zeros_like(x)
    for b, angle in enumerate(angles.tolist()):
        sy, sx = math.sin(math.radians(angle)), math.cos(math.radians(angle))
        for i in range(width):
            dy, dx = -math.ceil(i * sy - 0.5), -math.ceil(i * sx - 0.5)
            out[b] += w[i] * xp[b, :, p - dy:p - dy + h, p - dx:p - dx + wd]
    return out


def _gaussian_noise(x, std, scale, generator):
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return x + std * noise


def _shot_noise(x, photons, scale, generator):
    return torch.poisson(x.clamp(0, 1) * photons, generator=generator) / photons


def _jpeg(x, quality, scale, generator):
    import numpy as np
    from PIL import Image  # PIL for JPEG only; the rest of attacks/ is plain torch

    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr in u8:
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out.append(torch.from_numpy(np.asarray(Image.open(buf).convert("RGB")).copy()))
    return torch.stack(out).permute(0, 3, 1, 2).to(x.device, torch.float32) / 255


def _contrast(x, c, scale, generator):
    means = x.mean(dim=(-2, -1), keepdim=True)  # [B,3,1,1], per channel as in ImageNet-C
    return (x - means) * c + means


def _brightness(x, c, scale, generator):
    # ImageNet-C adds c to V in HSV and clips. With H and S fixed, RGB is linear in V = max(r,g,b),
    # so that is a rescale of each pixel by V'/V (black, where H and S are 0, becomes grey V').
    v = x.amax(dim=1, keepdim=True)  # [B,1,H,W]
    v_new = (v + c).clamp(max=1)
    return torch.where(v > 0, x * v_new / v.clamp_min(1e-12), v_new.expand_as(x))


def _pixelate(x, c, scale, generator):
    # ImageNet-C (bethgelab/imagecorruptions): PIL's BOX filter down to c of the size, then
    # NEAREST back up. PIL resizes float ("F") images with the same filters, so each channel
    # goes through PIL in float32: the same arithmetic, without rounding to /255 in between.
    import numpy as np
    from PIL import Image

    h, w = x.shape[-2:]
    small = (max(1, int(w * c)), max(1, int(h * c)))
    planes = x.detach().float().cpu().numpy().reshape(-1, h, w)
    out = [np.asarray(Image.fromarray(p, "F").resize(small, Image.BOX).resize((w, h), Image.NEAREST))
           for p in planes]
    return torch.from_numpy(np.stack(out)).reshape(x.shape).to(x.device)


_FNS = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise,
    "gaussian_blur": _gaussian_blur, "defocus_blur": _defocus_blur, "motion_blur": _motion_blur,
    "jpeg": _jpeg, "contrast": _contrast, "brightness": _brightness, "pixelate": _pixelate,
}
CORRUPTIONS = tuple(_FNS)


def corrupt(images: torch.Tensor, name: str, severity: int, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply corruption `name` at `severity` to a batch.

    images: float [B,3,H,W] in [0,1] at the model's input resolution.
    name: one of CORRUPTIONS. severity: int 1 (mildest) .. 5 (strongest), ImageNet-C's scale.
    generator: torch.Generator on the images' device, used by gaussian_noise, shot_noise and
    motion_blur (its angle); None draws from torch's global RNG. The same seed gives the same
    output. Returns a new tensor of the same shape and dtype, clamped to [0,1].
    """
    if name not in _FNS:
        raise ValueError(f"unknown corruption {name!r}; valid names: {', '.join(CORRUPTIONS)}")
    try:
        level = operator.index(severity)
    except TypeError:
        level = None
    if level is None or isinstance(severity, bool) or not 1 <= level <= 5:
        raise ValueError(f"severity must be one of 1, 2, 3, 4, 5; got {severity!r}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B,3,H,W], got {tuple(images.shape)}")
    x = images.detach().float()
    scale = min(x.shape[-2:]) / 224
    out = _FNS[name](x, _PARAMS[name][level - 1], scale, generator)
    return out.clamp(0.0, 1.0).to(images.dtype)
