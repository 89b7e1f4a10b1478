"""What figure 7 (confidence_trap/analysis/figures_original.py) needs from files, read here because
the analysis reads none.

    from confidence_trap.runner.original_image import figure_image
    render_original_figure(summary, out, info, **figure_image(summary, info))

figure_image() gives figure 7 its image panels: the run's one image opened as the original opens
it (`Image.open(path).convert("RGB")`, confidence_trap/models/images.py says where load_image
differs, which it does not for the logo) and the processor's normalisation from run.json (image_mean,
image_std, which confidence_trap/runner/pipeline.py writes). Without them (a run of many images, a
run.json from before, an image no longer on disk) it gives {}, and the figure has the Δ panel alone.
PIL and numpy only: no torch, no model.
"""
from __future__ import annotations

import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def figure_image(summary: dict, run_info: dict) -> dict:
    """{image [H, W, 3] uint8, mean, std} for figure 7, or {} where it cannot be drawn."""
    from PIL import Image

    block = summary.get("original") or {}
    mean, std = run_info.get("image_mean"), run_info.get("image_std")
    if block.get("n_images") != 1 or mean is None or std is None:
        return {}
    name = block["images"][0]
    path = next((p for p in (name, os.path.join(REPO, name)) if os.path.isfile(p)), None)
    if path is None:
        return {}
    with Image.open(path) as im:
        return {"image": np.asarray(im.convert("RGB")), "mean": mean, "std": std}
