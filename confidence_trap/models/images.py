"""Image loading and LLaVA-1.5's preprocessing, up to the model's [0,1] input.

    x = to_model_input(load_image("data/photos/chelsea.jpg"), size=336)   # [3,336,336] in [0,1]

The original LLaVA-1.5 pads to a square with the CLIP mean colour (`expand2square`,
image_aspect_ratio "pad") and then resizes bicubically to 336 (CLIPImageProcessor). llava-hf's
preprocessor_config.json has no pad step: its CLIPImageProcessor resizes the shortest edge to 336
and centre-crops, which cuts the sides off a non-square image (LlavaImageProcessor's do_pad=True
would pad). So we pad here, in PIL on uint8 exactly as the original does, and stop before the
normalization so the attack acts on pixels in [0,1]; at ε = 0 the pixels equal the original's
bit for bit (docs/LLAVA_NOTES.md). confidence_trap.models.architectures normalizes afterwards.

Image loading differs from the original on purpose: the original does
`Image.open(path).convert("RGB")`, which ignores EXIF orientation and drops an alpha channel
(leaving whatever colour the transparent pixels hold); `load_image` applies the EXIF rotation
(a portrait photo is seen upright) and composites alpha on white. For a plain RGB file without
an EXIF rotation, such as the bundled images and COCO's, the two are identical.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from confidence_trap.errors import InputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's normalization, as LLaVA-1.5 uses it
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# An 8000×6000 photo is fine; PIL's default warns at 89 MP. Past this we refuse, never warn.
Image.MAX_IMAGE_PIXELS = 200_000_000


def _missing(path: str) -> str:
    if os.path.islink(path):
        return f"image {path} is a broken symbolic link (to {os.readlink(path)})"
    return f"image not found: {path}"


def _to_8bit(im: Image.Image) -> Image.Image:
    """16- and 32-bit grayscale -> 8-bit L, scaled by the mode's range instead of clipped at 255."""
    a = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        top = 65535.0
    elif im.mode == "F":
        top = 1.0 if a.max() <= 1 else 255.0
    else:  # "I": 32-bit container, usually a 16-bit file from an older decoder
        top = 65535.0 if a.max() > 255 else 255.0
    return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")


def load_image(path: str) -> Image.Image:
    """Open any common image as 8-bit RGB: EXIF rotation applied, alpha composited on white.

    Grayscale, palette (with transparency), RGBA, CMYK and 16-bit files all come out RGB.
    Anything that cannot be decoded in full (a missing, unreadable, truncated or non-image file,
    or one over Image.MAX_IMAGE_PIXELS) raises InputError with a one-line message.
    """
    if not os.path.exists(path):
        raise InputError(_missing(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()  # decode everything now: a truncated file fails here, not later
                im = ImageOps.exif_transpose(im)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InputError(f"image {path} is too large (over {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"cannot read image {path}: {reason}") from None
    if im.width < 1 or im.height < 1:
        raise InputError(f"image {path} is empty")
    return to_rgb(im)


def to_rgb(im: Image.Image) -> Image.Image:
    """A decoded image of any mode -> 8-bit RGB: 16- and 32-bit scaled to 8 bits, palette and
    alpha composited on white, anything else converted (load_image's rules, which a dataset's
    images follow too: confidence_trap/tasks/datasets.py)."""
    if im.mode.startswith("I") or im.mode == "F":
        im = _to_8bit(im)
    if im.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return im if im.mode == "RGB" else im.convert("RGB")  # no second copy of a 48 MP photo


def expand2square(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad to a square, centring the image, as the original LLaVA's expand2square."""
    w, h = im.size
    if w == h:
        return im
    side = max(w, h)
    out = Image.new(im.mode, (side, side), background)
    out.paste(im, ((side - w) // 2, (side - h) // 2))
    return out


def to_model_input(im: Image.Image, size: int, mean=CLIP_MEAN) -> torch.Tensor:
    """Pad with the mean colour, resize bicubically to size×size: float [3,size,size] in [0,1]."""
    background = tuple(int(m * 255) for m in mean)
    im = expand2square(im, background).resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def input_size(processor) -> int:
    """The square side x must have for this model: 336 for LLaVA-1.5; for processors with their
    own geometry (Qwen2-VL patches, Idefics3 tiles, LLaVA-NeXT anyres) the side their geometry
    takes without resampling (see confidence_trap.models.architectures)."""
    from .architectures import pixel_layout

    return pixel_layout(processor).side


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
            raise InputError(_missing(item))
    return paths
