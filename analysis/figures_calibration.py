"""Figures 4 and 5 (calibration, selective prediction), drawn from summary.json alone.

    from analysis.figures_calibration import render_calibration_figures
    render_calibration_figures(summary, "results/figures", {"model": "tiny", "device": "cpu"})

figure_4_reliability.png: one panel per attack; in each, the reliability curve (accuracy of
each confidence bin against its mean confidence, bins with n > 0 only) of the clean answers and
of each ε / severity level, the diagonal of perfect calibration, and the ECE in the legend.
figure_5_risk_coverage.png: a clean panel, then one panel per attack; risk (mean loss of the
answers kept) against coverage (share kept, most certain first) for each probe, AURC and PRR
in the legend. Colour = probe (the same in every panel); in attack panels the line style marks
the level (solid, dashed, dotted, dash-dot, then again).

Summary layout read (blocks from analysis.calibration.calibration and
analysis.selective.selective): summary["clean"]["calibration"], ["clean"]["selective"][probe];
summary["by_attack"][attack]["by_epsilon"][key] with "level", "calibration",
"calibration_max_prob", "selective"[probe]; summary["by_attack"][attack]["grouped_by"].
A missing block (no references) gives a panel that says so, not an error.

Same canvas rules as analysis.figures: Agg directly, no pyplot state, no date or version in
the PNG, so the same summary gives the same bytes.
"""
from __future__ import annotations

import os

from matplotlib import colormaps

from analysis.figures import _colour, _empty, _legend, _panels, _save, label_axes
from analysis.summary import sorted_levels

CALIBRATION_FIGURE_NAMES = ("figure_4_reliability.png", "figure_5_risk_coverage.png")
NO_CALIBRATION = "no references: no calibration"
NO_SELECTIVE = "no references: no risk-coverage"
_STYLES = ("-", "--", ":", "-.")


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _attacks(summary: dict) -> list[str]:
    return sorted(summary.get("by_attack") or {})


def _reliability_line(ax, block: dict, label: str, **style) -> bool:
    """Draw one calibration block's non-empty bins; False when there is nothing to draw."""
    bins = [b for b in (block or {}).get("bins") or []
            if b.get("n") and b.get("accuracy") is not None and b.get("confidence") is not None]
    if not bins:
        return False
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
            ms=4, label=f"{label}, ECE {_fmt(block.get('ece'))}", **style)
    return True


def _reliability_axes(ax, title: str, confidence: str):
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    label_axes(ax, title, f"confidence ({confidence}), bin mean", "accuracy in bin", 7, "upper left")


def figure_reliability(summary: dict, run_info: dict, block: str = "calibration"):
    """Figure 4; `block` = "calibration_max_prob" draws the mean-max-prob confidence instead."""
    attacks = _attacks(summary)
    fig, axes = _panels(len(attacks), "Figure 4: reliability (accuracy vs confidence)",
                        run_info)
    clean = (summary.get("clean") or {}).get(block)
    for ax, attack in zip(axes, attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        drawn = _reliability_line(ax, clean, "clean", color="black", lw=2)
        names = [clean.get("confidence")] if clean else []
        for i, k in enumerate(keys):
            b = sec["by_epsilon"][k].get(block)
            if _reliability_line(ax, b, _legend(k, sec), color=_colour(i, len(keys))):
                drawn = True
                names.append(b.get("confidence"))
        if not drawn:
            _empty(ax, NO_CALIBRATION)
            continue
        _reliability_axes(ax, attack, next((n for n in names if n), block))
    if not attacks:
        if _reliability_line(axes[0], clean, "clean", color="black", lw=2):
            _reliability_axes(axes[0], "clean", clean.get("confidence") or block)
        else:
            _empty(axes[0], NO_CALIBRATION)
    return fig


def _probes(summary: dict) -> list[str]:
    """Every probe with a selective block anywhere, sorted: fixes each probe's colour."""
    found = set((summary.get("clean") or {}).get("selective") or {})
    for sec in (summary.get("by_attack") or {}).values():
        for entry in sec["by_epsilon"].values():
            found.update(entry.get("selective") or {})
    return sorted(found)


def _risk_line(ax, sel: dict, label: str, **style) -> bool:
    curve = (sel or {}).get("curve") or {}
    cov, risk = curve.get("coverage") or [], curve.get("risk") or []
    if not cov:
        return False
    ax.plot(cov, risk, label=f"{label}: AURC {_fmt(sel.get('aurc'))}, "
                             f"PRR {_fmt(sel.get('prr'), '.2f')}", **style)
    return True


def _risk_axes(ax, title: str):
    ax.set_xlim(0, 1.02)
    ax.set_ylim(-0.02, 1.02)  # risk is a mean loss in [0, 1]: panels share one scale
    label_axes(ax, title, "coverage (share of answers kept, most certain first)",
               "risk (mean loss of kept answers)", 6)


def _finish(ax, title: str, drawn: bool):
    if drawn:
        _risk_axes(ax, title)
    else:
        _empty(ax, NO_SELECTIVE)


def figure_risk_coverage(summary: dict, run_info: dict):
    """Figure 5: the clean panel first, then one per attack and level, a line per probe."""
    probes = _probes(summary)
    tab = colormaps["tab10"]
    colour = {p: tab(i % 10) for i, p in enumerate(probes)}
    panels = [("clean", (summary.get("clean") or {}).get("selective") or {})]
    for attack in _attacks(summary):
        sec = summary["by_attack"][attack]
        panels += [(f"{attack}, {_legend(k, sec)}", sec["by_epsilon"][k].get("selective") or {})
                   for k in sorted_levels(sec["by_epsilon"])]
    fig, axes = _panels(len(panels), "Figure 5: risk-coverage by probe", run_info)
    for ax, (title, sel) in zip(axes, panels):
        drawn = False
        for p in probes:
            drawn |= _risk_line(ax, sel.get(p), p, color=colour[p], lw=1.3)
        _finish(ax, title, drawn)
    return fig


def render_calibration_figures(summary: dict, out_dir: str,
                               run_info: dict | None = None) -> list[str]:
    """Write figures 4 and 5 into out_dir (created if missing); returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    makers = (figure_reliability, figure_risk_coverage)
    return [_save(make(summary, run_info or {}), os.path.join(out_dir, name))
            for make, name in zip(makers, CALIBRATION_FIGURE_NAMES)]
