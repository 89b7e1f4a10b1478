"""Image loading and LLaVA-1.5's preprocessing, up to the model's [0,1] input.

    x = load_batch(["data/photos/chelsea.jpg"], size=336)   # [1,3,336,336] in [0,1]

The original LLaVA-1.5 pads to a square with the CLIP mean colour (`expand2square`,
image_aspect_ratio "pad") and then resizes bicubically to 336; the HF processor does the same
with do_pad=True. We do that here, in PIL on uint8 exactly as they do, and stop before the
normalisation so the attack acts on pixels in [0,1]. The processor normalises afterwards.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
Image.MAX_IMAGE_PIXELS = 200_000_000  # an 8000×6000 photo is fine; PIL's default warns at 89 MP


def load_image(path: str) -> Image.Image:
    """Open any common image as 8-bit RGB: EXIF rotation applied, alpha composited on white."""
    if not os.path.exists(path):
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"cannot read image {path}: {e}") from None
    if im.width < 1 or im.height < 1:
        raise InputError(f"image {path} is empty")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (and 32-bit integer) grayscale: scale to 8 bits instead of clipping at 255
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(a * (255.0 if a.max() <= 1 else 1) + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode == "P" or im.mode == "LA" or "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return im.convert("RGB")


def expand2square(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad to a square, centring the image, as the original LLaVA's expand2square."""
    w, h = im.size
    if w == h:
        return im
    side = max(w, h)
    out = Image.new(im.mode, (side, side), background)
    out.paste(im, ((side - w) // 2, (side - h) // 2))
    return out


def to_model_input(im: Image.Image, size: int, mean=(0.48145466, 0.4578275, 0.40821073)) -> torch.Tensor:
    """Pad with the mean colour, resize bicubically to size×size: float [3,size,size] in [0,1]."""
    background = tuple(int(m * 255) for m in mean)
    im = expand2square(im, background).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def input_size(processor) -> int:
    """The square side the model's vision tower takes (336 for LLaVA-1.5)."""
    ip = processor.image_processor
    crop = getattr(ip, "crop_size", None)
    if getattr(ip, "do_center_crop", False) and crop:
        return int(crop["height"] if isinstance(crop, dict) else crop.height)
    size = ip.size
    size = size if isinstance(size, dict) else size.__dict__
    for key in ("shortest_edge", "height"):
        if size.get(key):
            return int(size[key])
    raise InputError(f"cannot tell the input size of image processor {type(ip).__name__}")


def expand_paths(items) -> list[str]:
    """Files and folders (searched non-recursively, sorted) -> image file paths."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item)
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise InputError(f"no images in folder {item}")
            paths.extend(found)
        elif os.path.exists(item):
            paths.append(item)
        else:
            raise InputError(f"image not found: {item}")
    return paths
