"""render_figures(summary, out_dir, run_info, original=None) -> the six PNGs of a run.

    from confidence_trap.analysis.figures import render_figures
    render_figures(summary, "results/figures", {"model": "tiny", "device": "cpu"},
                   original=json.load(open("paper/original_study.json")))

figure_1_epsilon_delta.png: mean Δ with its 95% CI against ε, every Δ as a faint jittered point,
a panel per attack; with `original`, the study's reported Δ in a panel of its own (never on our
axes: another model, precision and image set). figure_2_defense.png: the entropy filter's pass
rate against the τ percentile, clean and each ε. figure_3_token_entropy.png: mean token entropy
by position, clean and each ε, above the number of answers still running at each position (a
curve stops where fewer than MIN_POSITION_ANSWERS remain). Figures 4 and 5 are
confidence_trap/analysis/figures_calibration.py's.

Print size, style and saving are confidence_trap/analysis/plot.py's, the one helper module every
figure module draws with; the jitter is seeded, so the same summary gives the same bytes.
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from confidence_trap.analysis.figures_calibration import figure_reliability, figure_risk_coverage
from confidence_trap.analysis.figures_prior import figure_prior
from confidence_trap.analysis.findings import attack_title
from confidence_trap.analysis.levels import sorted_levels
from confidence_trap.analysis.original_text import answerless
from confidence_trap.analysis.plot import (EPS_AXIS, attacks_of, axis_label, colour, empty, label_axes,
                                           legend_below, level_legend, panels, save, stacked, styled)

FIGURE_NAMES = ("figure_1_epsilon_delta.png", "figure_2_defense.png", "figure_3_token_entropy.png",
                "figure_4_reliability.png", "figure_5_risk_coverage.png", "figure_6_prior.png")
MIN_POSITION_ANSWERS = 20  # figure 3 stops a curve where fewer answers than this still run


def _original(ax, original: dict) -> None:
    """The original study's reported Δ, in a panel of its own, labelled as the study's."""
    rows = original["rows"]
    ax.plot([r["epsilon"] for r in rows], [r["delta"] for r in rows], color="tab:red", marker="D",
            mfc="none", ls="--", label="the study, as reported")
    ax.axhline(0.0, color="grey", lw=0.6, ls="--")
    ax.set_xticks([r["epsilon"] for r in rows], [f"{r['epsilon']:.4g}" for r in rows])
    label_axes(ax, f"the study: {original['model']}, {original['dtype']} (not ours)",
               EPS_AXIS, "reported Δ (nats)", loc="lower left")


@styled
def figure_epsilon_delta(summary: dict, run_info: dict, original: dict | None = None) -> Figure:
    attacks = attacks_of(summary)
    fig, axes = panels(len(attacks) + (original is not None))
    rng = np.random.default_rng(0)  # fixed: the jitter is decoration, not data
    for ax, attack in zip(axes, attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        xs = np.array([sec["by_epsilon"][k]["level"] for k in keys])
        gap = np.min(np.diff(xs)) if xs.size > 1 else (abs(xs[0]) or 1.0) * 0.5
        for x, k in zip(xs, keys):
            d = np.asarray(sec["by_epsilon"][k]["deltas"], dtype=float)
            ax.scatter(x + rng.uniform(-0.15, 0.15, d.size) * gap, d, s=3, alpha=0.25,
                       color="tab:blue", linewidths=0)
        means = [sec["by_epsilon"][k]["mean_delta"] for k in keys]
        cis = [sec["by_epsilon"][k]["ci95"] for k in keys]
        m = np.array([np.nan if v is None else v for v in means])
        lo = np.array([0.0 if c is None or v is None else v - c[0] for v, c in zip(means, cis)])
        hi = np.array([0.0 if c is None or v is None else c[1] - v for v, c in zip(means, cis)])
        ax.errorbar(xs, m, yerr=[lo, hi], color="black", marker="o", capsize=3, label="mean Δ, 95% CI")
        ax.axhline(0.0, color="grey", lw=0.6, ls="--")
        ax.set_xticks(xs, [f"{x:.4g}" for x in xs])
        if len(xs) == 1:  # else autoscale stretches the jitter cloud over the whole panel
            ax.set_xlim(xs[0] - gap, xs[0] + gap)
        label_axes(ax, f"this run: {attack_title(attack)}", axis_label(sec), "Δ mean token entropy (nats)")
    if original is not None:
        _original(axes[len(attacks)], original)
    elif not attacks:
        empty(axes[0])
    return fig


@styled
def figure_defense(summary: dict, run_info: dict) -> Figure:
    attacks = attacks_of(summary)
    fig, out = stacked(len(attacks), ratio=(2.6, 1.2))  # the legend under the plot: the curves fill it
    for (ax, place), attack in zip(out, attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        pks = list(sec["by_epsilon"][keys[0]]["pass_rate"])
        pcts = [int(p[1:]) for p in pks]
        clean = [sec["by_epsilon"][keys[0]]["pass_rate"][p]["clean"] for p in pks]
        ax.plot(pcts, [np.nan if v is None else v for v in clean], color="black", marker="s",
                lw=2, label="clean")
        for i, k in enumerate(keys):
            pert = [sec["by_epsilon"][k]["pass_rate"][p]["perturbed"] for p in pks]
            ax.plot(pcts, [np.nan if v is None else v for v in pert], marker="o",
                    color=colour(i, len(keys)), label=level_legend(k, sec))
        ax.set_ylim(-0.02, 1.02)
        label_axes(ax, attack_title(attack), "τ = percentile of the clean entropies",
                   "share of inputs passing (H ≤ τ)", loc=None)
        legend_below(place, ax)
    if not attacks:
        empty(out[0][0])
        out[0][1].set_axis_off()
    return fig


def _cut(profile: dict):
    """(positions, means, counts) up to the last position still held by MIN_POSITION_ANSWERS."""
    n = np.asarray(profile.get("n") or [], dtype=float)
    m = np.array([np.nan if v is None else v for v in profile.get("mean") or []], dtype=float)
    keep = np.nonzero(n >= MIN_POSITION_ANSWERS)[0]
    last = int(keep.max()) + 1 if keep.size else 0
    return np.arange(last), m[:last], n[:last]


def _profile_lines(top, bottom, profile: dict, **style) -> None:
    x, y, n = _cut(profile)
    top.plot(x, y, **style)
    bottom.step(x, n, where="mid", **style)


@styled
def figure_token_entropy(summary: dict, run_info: dict) -> Figure:
    prof = summary.get("token_profile") or {"clean": {}, "by_attack": {}}
    attacks = attacks_of(summary)
    fig, triples = stacked(len(attacks))
    for (top, bottom, place), attack in zip(triples, attacks):
        sec = summary["by_attack"][attack]
        levels = prof.get("by_attack", {}).get(attack, {})
        keys = [k for k in sorted_levels(sec["by_epsilon"]) if k in levels]
        _profile_lines(top, bottom, prof.get("clean", {}), color="black", lw=2, label="clean")
        for i, k in enumerate(keys):
            _profile_lines(top, bottom, levels[k], color=colour(i, len(keys)), label=level_legend(k, sec))
        _position_axes(top, bottom, place, attack_title(attack))
    if not attacks:
        top, bottom, place = triples[0]
        if _cut(prof.get("clean", {}))[0].size:
            _profile_lines(top, bottom, prof["clean"], color="black", lw=2, label="clean")
            _position_axes(top, bottom, place, "clean")
        else:
            for ax in (top, bottom, place):
                empty(ax, "no records" if ax is top else "")
    return fig


def _position_axes(top, bottom, place, title: str) -> None:
    top.tick_params(labelbottom=False)
    top.set_title(title)
    top.set_ylabel("mean entropy (nats)")
    bottom.set_yscale("log")
    bottom.set_xlabel("token position in the answer")
    bottom.set_ylabel("answers")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_below(place, top)


def render_figures(summary: dict, out_dir: str, run_info: dict | None = None,
                   original: dict | None = None) -> list[str]:
    """Write the six figures into out_dir (created if missing); returns their paths.
    original: paper/original_study.json's dict (the caller reads it), drawn in figure 1.
    Figures 4 and 5 (calibration, selective prediction) are confidence_trap/analysis/figures_calibration.py's,
    figure 6 (the language prior) confidence_trap/analysis/figures_prior.py's."""
    if answerless(summary):  # the original protocol: no answers to draw (figure 7 draws it)
        return []
    os.makedirs(out_dir, exist_ok=True)
    ri = run_info or {}
    figs = {"figure_1_epsilon_delta.png": figure_epsilon_delta(summary, ri, original),
            "figure_2_defense.png": figure_defense(summary, ri),
            "figure_3_token_entropy.png": figure_token_entropy(summary, ri),
            "figure_4_reliability.png": figure_reliability(summary, ri),
            "figure_5_risk_coverage.png": figure_risk_coverage(summary, ri),
            "figure_6_prior.png": figure_prior(summary, ri)}
    return [save(figs[name], os.path.join(out_dir, name)) for name in FIGURE_NAMES]
