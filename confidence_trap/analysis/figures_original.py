"""figure_7_original.png: what the original code measured (summary["original"]).

    from confidence_trap.analysis.figures_original import figure_original, render_original_figure
    fig = figure_original(summary, run_info, image=logo_uint8, mean=run["image_mean"], std=run["image_std"])
    render_original_figure(summary, "results/original/figures", run_info, image=..., mean=..., std=...)

Left, where the caller passes the run's one image and the processor's normalisation (run.json's
image_mean and image_std): the image as the file holds it, and the same image after the clamp alone,
clamp(x_norm, 0, 1) mapped back to pixels (confidence_trap.analysis.original.clamp_pixels: every value
kept within [mean, mean + std] of its channel). Both at the file's resolution; the model sees them at its
input size, and the clamp acts pixel by pixel, so the picture is the same. Right: the mean Δ of the
prompt entropy by position kind for the clamp alone, the noise alone and both, at one ε (the largest at
which the original has runs, else the largest of the run); with one image, every noise draw as a
point and no interval (one cluster); with many, the 95% CI over images. The analysis touches no file:
the caller (confidence_trap/runner/analyze.py) reads the image. Drawn at print size in the style of
confidence_trap/analysis/figures.py.
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

from confidence_trap.analysis.plot import PANEL_H, PANEL_W, figure, label_axes, legend_below, save, stacked, styled
from confidence_trap.analysis.original import KINDS, clamp_pixels, shown_epsilon

FIGURE_NAME = "figure_7_original.png"
KIND_TICKS = {"all": "every\nposition", "image": "image\npositions", "text": "text\npositions", "last": "last\nposition"}
COLOURS = {"clamp": "tab:orange", "noise": "tab:blue", "both": "tab:red"}


def bars(block: dict) -> list[tuple[str, str, dict]]:
    """(part, legend label, {kind: entry}) of the bars, in drawing order."""
    key = shown_epsilon(block)
    e = block["by_epsilon"].get(key) if key else None
    out = [("clamp", "clamp alone (σ = 0)", block.get("clamp"))]
    if e:
        sigma = f"σ = {e['sigma']:g}" if e["sigma"] is not None else "σ unknown"
        out += [("noise", f"noise alone, {sigma} (ε {e['epsilon']:g})", e["noise"]),
                ("both", f"noise and clamp, {sigma} (ε {e['epsilon']:g})", e["both"])]
    return [b for b in out if b[2]]


def _delta_panel(ax, block: dict, place) -> None:
    """The Δ bars in `ax`, their legend in the axes `place`."""
    shown = bars(block)
    width = 0.8 / max(len(shown), 1)
    x = np.arange(len(KINDS))
    for i, (part, label, kinds) in enumerate(shown):
        entries = [kinds.get(k) for k in KINDS]
        means = np.array([np.nan if not e or e["mean_delta"] is None else e["mean_delta"] for e in entries])
        pos = x + (i - (len(shown) - 1) / 2) * width
        ax.bar(pos, means, width, color=COLOURS[part], alpha=0.8, label=label)
        for p, e in zip(pos, entries):
            if not e:
                continue
            if block["one_cluster"]:  # the noise draws on the one image: no interval over images
                ax.scatter(np.full(len(e["deltas"]), p), e["deltas"], s=5, color="black", linewidths=0, zorder=3)
            elif e["ci95"]:
                ax.errorbar(p, e["mean_delta"], yerr=[[e["mean_delta"] - e["ci95"][0]], [e["ci95"][1] - e["mean_delta"]]],
                            color="black", capsize=2, lw=0.8)
    ax.axhline(0.0, color="grey", lw=0.6, ls="--")
    ax.set_xticks(x, [KIND_TICKS[k] for k in KINDS])
    legend_below(place, ax, ncol=1)
    label_axes(ax, "one image: the points are its noise draws" if block["one_cluster"]
               else f"{block['n_images']} images: 95% CI over images", "", "Δ prompt entropy (nats)", loc=None)


@styled
def figure_original(summary: dict, run_info: dict, image: np.ndarray | None = None, mean=None,
                    std=None) -> Figure:
    """The figure (see the module docstring); without image, mean and std: the Δ panel alone."""
    block = summary["original"]
    if image is None or mean is None or std is None:
        fig, [(ax, place)] = stacked(1, ratio=(2.6, 1.0))
        _delta_panel(ax, block, place)
        return fig
    fig = figure(1, 2)
    fig.set_size_inches(2 * PANEL_W, PANEL_H * 1.2)
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 2], height_ratios=[3, 1])
    for i, (pixels, title) in enumerate([(image, "the image"), (clamp_pixels(image, mean, std),
                                                                 "after the clamp alone")]):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(pixels, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    _delta_panel(fig.add_subplot(grid[:, 2]), block, fig.add_subplot(grid[1, :2]))
    return fig


def render_original_figure(summary: dict, out_dir: str, run_info: dict | None = None, **image) -> list[str]:
    """Write FIGURE_NAME into out_dir where the summary has the block; its path, or []. `image`:
    figure_original's image, mean and std (none: the Δ panel alone)."""
    if not summary.get("original"):
        return []
    os.makedirs(out_dir, exist_ok=True)
    return [save(figure_original(summary, run_info or {}, **image), os.path.join(out_dir, FIGURE_NAME))]
