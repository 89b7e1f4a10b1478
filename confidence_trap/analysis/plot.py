"""The figures' one plot helper module: print size, style, canvas, panels, legends, atomic save.

    from confidence_trap.analysis.plot import figure, panels, save, styled
    fig, axes = panels(2)                       # two panels side by side, at print size
    save(fig, "results/figures/figure_x.png")   # atomic, no version or date in the PNG

Every figure module (figures.py, figures_calibration.py, figures_prior.py) draws with these and
imports nothing from another figure module's internals. Print size: each figure is drawn at the
size it is printed (panels of PANEL_W inches, at most two across, so a figure is never wider
than the paper's text, TEXT_WIDTH_IN), and the paper includes it at that width
(printed_width()), so every text is printed at its size in STYLE, no smaller than MIN_PT. No
titles in the images: captions live in the paper and the README. Uses the Agg canvas directly
(no pyplot state), so the same summary gives the same bytes.
"""
from __future__ import annotations

import functools
import os
import struct

from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from confidence_trap.analysis.levels import level_label

TEXT_WIDTH_IN = 8.5 - 2 * 2.3 / 2.54  # the paper's \linewidth: US letter, 2.3 cm margins (paper.tex.j2)
PANEL_W, PANEL_H = 3.2, 2.3            # inches; two panels side by side fit TEXT_WIDTH_IN
DPI = 200
MIN_PT = 7                             # the smallest text printed
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7,
         "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7, "lines.linewidth": 1.2,
         "lines.markersize": 4, "axes.linewidth": 0.6, "legend.framealpha": 0.85}
EPS_AXIS = "ε ([0,1] pixel units)"


def styled(make):
    """Draw a figure inside STYLE, so every text it makes is at least MIN_PT at print size."""
    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        with rc_context(STYLE):
            return make(*args, **kwargs)
    return wrapper


def figure(rows: int, cols: int, heights=None) -> Figure:
    """An empty figure of `cols` panels across and rows of `heights` inches (default PANEL_H)."""
    fig = Figure(figsize=(PANEL_W * cols, sum(heights or [PANEL_H] * rows)), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03, hspace=0.02, wspace=0.04)
    FigureCanvasAgg(fig)
    return fig


def panels(n: int):
    """A figure of n panels, two across, and their axes."""
    cols = max(1, min(2, n))
    rows = max(1, -(-n // cols))
    fig = figure(rows, cols)
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(max(n, 1))]


def stacked(n: int, ratio=(2.6, 1.0, 1.3)):
    """n tuples of axes, two across: a plot, the axes below it sharing its x (a count axis), and
    last a place for their legend under them all; one axes per entry of `ratio`."""
    cols = max(1, min(2, n))
    rows = max(1, -(-n // cols))
    fig = figure(rows, cols, [PANEL_H * 1.5 * sum(ratio) / 4.9] * rows)
    outer = fig.add_gridspec(rows, cols)
    out = []
    for i in range(max(n, 1)):
        inner = outer[divmod(i, cols)].subgridspec(len(ratio), 1, height_ratios=ratio)
        top = fig.add_subplot(inner[0])
        out.append((top, *(fig.add_subplot(inner[j], sharex=top) for j in range(1, len(ratio) - 1)),
                    fig.add_subplot(inner[len(ratio) - 1])))
    return fig, out


def printed_width(path: str) -> float:
    """The width in inches at which the paper prints a PNG of ours: its pixels over DPI."""
    with open(path, "rb") as f:
        return struct.unpack(">I", f.read(24)[16:20])[0] / DPI


def save(fig: Figure, path: str) -> str:
    """Write atomically: a temporary file in the same folder, then rename over the target."""
    tmp = f"{path}.tmp{os.getpid()}"
    with rc_context(STYLE):
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    os.replace(tmp, path)
    return path


def attacks_of(summary: dict) -> list[str]:
    """The attacks of a summary, in the order every figure draws them."""
    return sorted(summary.get("by_attack") or {})


def axis_label(section: dict) -> str:
    """The x label of a section's levels."""
    return "severity" if section["grouped_by"] == "severity" else EPS_AXIS


def level_legend(key: str, section: dict) -> str:
    """A level as a legend entry: "ε = 0.3 (≈77/255)" or "severity 3"."""
    if section["grouped_by"] == "severity":
        return f"severity {key}"
    return f"ε = {level_label(key, section['grouped_by'])}"


def label_axes(ax, title: str, xlabel: str, ylabel: str, loc: str | None = "best"):
    """A panel's title, axis labels and legend (loc None: none, legend_below draws it), in the
    figures' one style (STYLE's sizes)."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if loc is not None:
        ax.legend(loc=loc)


def legend_below(place, source, ncol: int | None = None, **kw) -> None:
    """The legend of `source`'s lines in the axes `place` (kept for it, under the plot); two
    columns where the labels are short enough to fit."""
    place.set_axis_off()
    handles, labels = source.get_legend_handles_labels()
    ncol = ncol or (2 if max(map(len, labels), default=0) <= 22 else 1)
    place.legend(handles, labels, loc="upper center", ncol=ncol, frameon=False, columnspacing=1.0,
                 handlelength=1.5, borderaxespad=0, **kw)


def empty(ax, text="no perturbed records"):
    """A panel that says why it has nothing to draw."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def colour(i: int, n: int):
    """The i-th of n level colours (viridis, the strongest level lightest)."""
    return colormaps["viridis"](0.85 * i / max(n - 1, 1))
