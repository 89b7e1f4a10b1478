"""Figure 6: does the prior's entropy predict the sign of Δ? Drawn from summary.json alone.

    from confidence_trap.analysis.figures_prior import figure_prior
    figure_prior(summary, {})          # a Figure; confidence_trap.analysis.figures.render_figures writes the PNG

One panel per attack at its strongest level: each point is one item (a cluster: its mean Δ over
its trials) against H_prior - H_clean, with a binned mean (equal-count bins of items) through
them; the panel title gives the items' count, Spearman's ρ with its crossed-bootstrap CI, and
the ρ that H_prior permuted across questions gives (the part forced by the shared -H_clean term).
Reads summary["prior"]["by_attack"][attack]["by_epsilon"][key]["clusters"] {x, delta}
(confidence_trap/analysis/prior.py). Drawn with confidence_trap/analysis/plot.py for print: panels of PANEL_W inches, two
across, STYLE's sizes (no text under 7 pt), no title in the image, the legend in words below.
"""
from __future__ import annotations

import numpy as np

from confidence_trap.analysis.findings import attack_title
from confidence_trap.analysis.levels import level_label
from confidence_trap.analysis.plot import PANEL_H, empty, figure, legend_below, styled
from confidence_trap.analysis.prior_text import strongest

FIGURE_6 = "figure_6_prior.png"
MAX_BINS, PER_BIN = 8, 5   # at most 8 bins, at least 5 items in each
LEGEND_H = 0.45            # inches under the panels for the legend
X_LABEL = r"$H_\mathrm{prior} - H_\mathrm{clean}$ (nats)"
Y_LABEL = r"$\Delta = H_\mathrm{perturbed} - H_\mathrm{clean}$ (nats)"


def binned_mean(x, y) -> tuple[np.ndarray, np.ndarray]:
    """(mean x, mean y) of equal-count bins of the points sorted by x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size == 0:
        return x, y
    order = np.argsort(x, kind="stable")
    bins = np.array_split(order, max(1, min(MAX_BINS, x.size // PER_BIN)))
    return np.array([x[b].mean() for b in bins]), np.array([y[b].mean() for b in bins])


def _title(attack: str, section: dict, key: str, e: dict) -> str:
    """Three short lines (a panel is PANEL_W wide): the attack, its level and items, and ρ
    with its CI and the ρ of H_prior permuted across questions."""
    level = level_label(key, section["grouped_by"])
    where = f"{'severity ' if section['grouped_by'] == 'severity' else 'ε = '}{level}, {e['n_clusters']} items"
    rho, ci, shuffled = e.get("spearman"), e.get("spearman_ci95"), e.get("spearman_shuffled")
    stat = "Spearman ρ undefined" if rho is None else f"ρ = {rho:.2f}" + (
        f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    if shuffled is not None:
        stat += f"; questions permuted: {shuffled:.2f}"
    return f"{attack_title(attack)}\n{where}\n{stat}"


def _layout(n: int):
    """(figure, n panel axes, the legend's axes) for n panels, two across."""
    cols = max(1, min(2, n))
    rows = max(1, -(-n // cols))
    fig = figure(rows + 1, cols, [PANEL_H] * rows + [LEGEND_H])
    grid = fig.add_gridspec(rows + 1, cols, height_ratios=[PANEL_H] * rows + [LEGEND_H])
    axes = [fig.add_subplot(grid[divmod(i, cols)]) for i in range(n)]
    return fig, axes, fig.add_subplot(grid[rows, :])


@styled
def figure_prior(summary: dict, run_info: dict | None = None):
    """Figure 6 (see the module docstring); run_info is unused: the caption names the run."""
    prior = summary.get("prior")
    attacks = sorted((prior or {}).get("by_attack") or {})
    fig, axes, place = _layout(max(1, len(attacks)))
    place.set_axis_off()
    if prior is None or not attacks:
        empty(axes[0], "no prior pass in this run (--no-prior)" if prior is None else "no perturbed records")
        return fig
    source = None
    for ax, attack in zip(axes, attacks):
        section = prior["by_attack"][attack]
        key, e = strongest(section)
        x, d = e["clusters"]["x"], e["clusters"]["delta"]
        if not x:
            empty(ax, f"{attack_title(attack)}: no item has a prior answer")
            continue
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.axvline(0.0, color="grey", lw=0.6, ls="--")
        ax.scatter(x, d, s=6, alpha=0.5, color="tab:blue", linewidths=0,
                   label="one item: its mean Δ over the trials")
        ax.plot(*binned_mean(x, d), color="black", marker="o", ms=3,
                label="binned mean (equal-count bins of items)")
        ax.set_title(_title(attack, section, key, e))
        ax.set_xlabel(X_LABEL)
        ax.set_ylabel(Y_LABEL)
        source = source or ax
    if source is not None:
        legend_below(place, source, ncol=1 if len(axes) == 1 else 2, markerscale=2)
    return fig

