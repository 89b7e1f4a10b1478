"""Figures 4 and 5 (calibration, selective prediction), drawn from summary.json alone.

    from confidence_trap.analysis.figures_calibration import render_calibration_figures
    render_calibration_figures(summary, "results/figures", {"model": "tiny", "device": "cpu"})

figure_4_reliability.png: per attack, the reliability curve (accuracy of each confidence bin
against its mean confidence, bins with n > 0 only) of the clean answers and of each ε / severity
level, the diagonal of perfect calibration and the ECE in the legend; below it, the number of
answers in each bin (log scale), in the same colours.
figure_5_risk_coverage.png: per attack, two panels. Left: risk (mean loss of the answers kept)
against coverage (share kept, most certain first) for the headline probe, the mean token entropy,
clean and at each level. Right: the prediction-rejection ratio (PRR) of every probe, clean and at
each level, each probe named in words (probes.label). A run without attacks: the clean panel.

Summary layout read (blocks from confidence_trap.analysis.calibration.calibration and
confidence_trap.analysis.selective.selective): summary["clean"]["calibration"], ["clean"]["selective"][probe];
summary["by_attack"][attack]["by_epsilon"][key] with "level", "calibration",
"calibration_max_prob", "selective"[probe]; summary["by_attack"][attack]["grouped_by"].
A missing block (no references) gives a panel that says so, not an error.

Drawn with confidence_trap/analysis/plot.py's canvas and print-size rules.
"""
from __future__ import annotations

import os

from matplotlib import colormaps

import probes as registry
from confidence_trap.analysis.findings import attack_title
from confidence_trap.analysis.levels import sorted_levels
from confidence_trap.analysis.plot import (EPS_AXIS, PANEL_H, attacks_of, colour, empty, figure, legend_below,
                                           level_legend, save, stacked, styled)

CALIBRATION_FIGURE_NAMES = ("figure_4_reliability.png", "figure_5_risk_coverage.png")
NO_CALIBRATION = "no references: no calibration"
NO_SELECTIVE = "no references: no risk-coverage"
HEADLINE = "mean_entropy"       # the probe whose risk-coverage curves figure 5 draws
_MARKERS = "osD^vP*Xh"


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _reliability_line(top, bottom, block: dict, label: str, **style) -> bool:
    """Draw one calibration block's non-empty bins and their counts; False when there are none."""
    bins = [b for b in (block or {}).get("bins") or []
            if b.get("n") and b.get("accuracy") is not None and b.get("confidence") is not None]
    if not bins:
        return False
    conf = [b["confidence"] for b in bins]
    top.plot(conf, [b["accuracy"] for b in bins], marker="o", label=f"{label}, ECE {_fmt(block.get('ece'))}",
             **style)
    bottom.plot(conf, [b["n"] for b in bins], marker="o", ms=2.5, **style)
    return True


def _reliability_axes(top, bottom, place, title: str, confidence: str):
    top.plot([0, 1], [0, 1], color="grey", lw=0.6, ls="--")
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.tick_params(labelbottom=False)
    top.set_title(title)
    top.set_ylabel("accuracy in bin")
    bottom.set_yscale("log")
    bottom.set_xlabel(f"confidence ({confidence.replace('_', ' ')}), bin mean")
    bottom.set_ylabel("answers")
    legend_below(place, top)


@styled
def figure_reliability(summary: dict, run_info: dict, block: str = "calibration"):
    """Figure 4; `block` = "calibration_max_prob" draws the mean-max-prob confidence instead."""
    attacks = attacks_of(summary)
    fig, triples = stacked(len(attacks))
    clean = (summary.get("clean") or {}).get(block)
    for (top, bottom, place), attack in zip(triples, attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        drawn = _reliability_line(top, bottom, clean, "clean", color="black", lw=2)
        names = [clean.get("confidence")] if clean else []
        for i, k in enumerate(keys):
            b = sec["by_epsilon"][k].get(block)
            if _reliability_line(top, bottom, b, level_legend(k, sec), color=colour(i, len(keys))):
                drawn = True
                names.append(b.get("confidence"))
        if not drawn:
            for ax in (top, bottom, place):
                empty(ax, NO_CALIBRATION if ax is top else "")
            continue
        _reliability_axes(top, bottom, place, attack_title(attack), next((n for n in names if n), block))
    if not attacks:
        top, bottom, place = triples[0]
        if _reliability_line(top, bottom, clean, "clean", color="black", lw=2):
            _reliability_axes(top, bottom, place, "clean", clean.get("confidence") or block)
        else:
            for ax in (top, bottom, place):
                empty(ax, NO_CALIBRATION if ax is top else "")
    return fig


def _probes(summary: dict) -> list[str]:
    """Every probe with a selective block anywhere, in the registry's order: fixes its colour."""
    found = set((summary.get("clean") or {}).get("selective") or {})
    for sec in (summary.get("by_attack") or {}).values():
        for entry in sec["by_epsilon"].values():
            found.update(entry.get("selective") or {})
    order = registry.names()
    return sorted(found, key=lambda p: (order.index(p) if p in order else len(order), p))


def _risk_line(ax, sel: dict, label: str, **style) -> bool:
    curve = (sel or {}).get("curve") or {}
    cov, risk = curve.get("coverage") or [], curve.get("risk") or []
    if not cov:
        return False
    ax.plot(cov, risk, label=f"{label}, PRR {_fmt(sel.get('prr'), '.2f')}", **style)
    return True


def _risk_panel(ax, place, series: list, title: str) -> None:
    """series: (label, selective block, colour), the headline probe's curve for each."""
    drawn = False
    for label, sel, colour in series:
        drawn |= _risk_line(ax, (sel or {}).get(HEADLINE), label, color=colour,
                            lw=2 if label == "clean" else 1.2)
    if not drawn:
        for a in (ax, place):
            empty(a, NO_SELECTIVE if a is ax else "")
        return
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.02)  # risk is a mean loss in [0, 1]: panels share one scale
    ax.set_title(title)
    ax.set_xlabel("coverage (share kept, most certain first)")
    ax.set_ylabel("risk (mean loss of kept answers)")
    legend_below(place, ax, title=f"answers ranked by {registry.label(HEADLINE)}")


def _prr_panel(ax, place, series: list, probes: list, xlabel: str) -> None:
    """The PRR of every probe at each column of `series` (clean, then each level)."""
    tab = colormaps["tab10"]
    drawn = False
    for j, p in enumerate(probes):
        ys = [((sel or {}).get(p) or {}).get("prr") for _, sel in series]
        if all(y is None for y in ys):
            continue
        drawn = True
        ax.plot(range(len(series)), [float("nan") if y is None else y for y in ys], color=tab(j % 10),
                marker=_MARKERS[j % len(_MARKERS)], label=registry.label(p))
    if not drawn:
        for a in (ax, place):
            empty(a, NO_SELECTIVE if a is ax else "")
        return
    ax.axhline(0.0, color="grey", lw=0.6, ls="--")
    ax.set_xticks(range(len(series)), [lab for lab, _ in series])
    ax.set_title("every probe")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PRR (1: perfect, 0: chance)")
    legend_below(place, ax, title="probe")


@styled
def figure_risk_coverage(summary: dict, run_info: dict):
    """Figure 5: per attack, the headline probe's risk-coverage curves and every probe's PRR."""
    attacks = attacks_of(summary)
    probes = _probes(summary)
    clean = (summary.get("clean") or {}).get("selective") or {}
    rows, cols = max(len(attacks), 1), 2 if attacks else 1
    fig = figure(rows, cols, [PANEL_H * 1.45] * rows)
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[2.3, 1.0] * rows)
    cells = [(fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c]))
             for r in range(rows) for c in range(cols)]
    if not attacks:
        _risk_panel(*cells[0], [("clean", clean, "black")], "clean")
    for i, attack in enumerate(attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        sels = [sec["by_epsilon"][k].get("selective") or {} for k in keys]
        _risk_panel(*cells[2 * i], [("clean", clean, "black")] + [
            (level_legend(k, sec), s, colour(j, len(keys))) for j, (k, s) in enumerate(zip(keys, sels))],
            attack_title(attack))
        _prr_panel(*cells[2 * i + 1], [("clean", clean)] + [
            (f"{sec['by_epsilon'][k]['level']:.4g}", s) for k, s in zip(keys, sels)], probes,
            "severity" if sec["grouped_by"] == "severity" else EPS_AXIS)
    return fig


def render_calibration_figures(summary: dict, out_dir: str,
                               run_info: dict | None = None) -> list[str]:
    """Write figures 4 and 5 into out_dir (created if missing); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    makers = (figure_reliability, figure_risk_coverage)
    return [save(make(summary, run_info or {}), os.path.join(out_dir, name))
            for make, name in zip(makers, CALIBRATION_FIGURE_NAMES)]
