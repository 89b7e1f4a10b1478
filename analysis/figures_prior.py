"""Figure 6: does the prior's entropy predict the sign of Δ? Drawn from summary.json alone.

    from analysis.figures_prior import figure_prior
    figure_prior(summary, {}).savefig("figure_6_prior.png")      # or: analysis.figures.render_figures

One panel per attack at its strongest level: each point is one item (a cluster: its mean Δ over
its trials) against H_prior - H_clean, with a binned mean (equal-count bins of items) through
them; the panel label gives Spearman's ρ with its cluster-bootstrap CI, the items' count, and
the ρ that H_prior shuffled across items gives (the part forced by the shared -H_clean term).
Reads summary["prior"]["by_attack"][attack]["by_epsilon"][key]["clusters"] {x, delta}
(analysis/prior.py). Sized for print, as the paper sets it: 3.3 in wide (one column) for one
panel, 6.8 in (the full width) for more, every text at least 7 pt; no title inside the image,
the caption is the paper's. Same canvas rules as analysis.figures (Agg, no metadata).
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.prior_text import strongest
from analysis.summary import level_label

FIGURE_6 = "figure_6_prior.png"
MIN_PT = 7            # the smallest text at print size
COLUMN_IN, FULL_IN = 3.3, 6.8
MAX_BINS, PER_BIN = 8, 5   # at most 8 bins, at least 5 items in each
DPI = 200             # print resolution: a 7 pt letter is about 19 pixels tall


def binned_mean(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(mean x, mean y) of equal-count bins of the points sorted by x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0:
        return x, y
    order = np.argsort(x, kind="stable")
    bins = np.array_split(order, max(1, min(MAX_BINS, x.size // PER_BIN)))
    return np.array([x[b].mean() for b in bins]), np.array([y[b].mean() for b in bins])


def _label(attack: str, section: dict, key: str, e: dict) -> str:
    level = level_label(key, section["grouped_by"])
    where = f"{attack}, {'severity ' if section['grouped_by'] == 'severity' else 'ε = '}{level}"
    rho = e.get("spearman")
    ci = e.get("spearman_ci95")
    stat = "ρ undefined" if rho is None else f"Spearman ρ = {rho:.2f}" + (
        f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    shuffled = e.get("spearman_shuffled")  # what the shared -H_clean term gives alone
    base = "" if shuffled is None else f"\nwith H_prior shuffled: ρ = {shuffled:.2f}"
    return f"{where}\n{stat}, {e['n_clusters']} items{base}"


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
    ax.set_axis_off()


def figure_prior(summary: dict, run_info: dict | None = None) -> Figure:
    """Figure 6 (see the module docstring); run_info is unused: the caption names the run."""
    prior = summary.get("prior")
    attacks = sorted((prior or {}).get("by_attack") or {})
    n = max(1, len(attacks))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(COLUMN_IN if cols == 1 else FULL_IN, 2.3 * rows + 0.5),
                 layout="constrained", dpi=DPI)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    if prior is None:
        _note(axes[0], "no prior pass in this run\n(it ran with --no-prior)")
        return fig
    if not attacks:
        _note(axes[0], "no perturbed records")
        return fig
    handles = None
    for i, (ax, attack) in enumerate(zip(axes, attacks)):
        section = prior["by_attack"][attack]
        key, e = strongest(section)
        x, d = e["clusters"]["x"], e["clusters"]["delta"]
        if not x:
            _note(ax, f"{attack}: no item has a prior answer")
            continue
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.axvline(0.0, color="grey", lw=0.6, ls="--")
        pts = ax.scatter(x, d, s=6, alpha=0.5, color="tab:blue", linewidths=0)
        bx, by = binned_mean(x, d)
        (line,) = ax.plot(bx, by, color="black", marker="o", ms=3, lw=1.2)
        handles = handles or [pts, line]
        ax.set_title(_label(attack, section, key, e), fontsize=8)
        ax.set_xlabel("H_prior − H_clean (nats)", fontsize=8)
        if i % cols == 0:
            ax.set_ylabel("Δ = H_perturbed − H_clean (nats)", fontsize=8)
        ax.tick_params(labelsize=MIN_PT)
    if handles:
        fig.legend(handles, ["one item: its mean Δ over the trials",
                             "binned mean (equal-count bins of items)"],
                   loc="outside lower center", ncol=2 if cols > 1 else 1, fontsize=MIN_PT,
                   frameon=False, markerscale=2)
    return fig
