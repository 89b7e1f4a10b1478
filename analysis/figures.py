"""render_figures(summary, out_dir, run_info, original=None) -> the three PNGs of the report.

    from analysis.figures import render_figures
    render_figures(summary, "results/figures", {"model": "tiny", "device": "cpu"},
                   original=json.load(open("paper/original_study.json")))

Writes figure_1_epsilon_delta.png (mean Δ with 95% CI vs ε, individual Δ as faint jittered
points; with `original`, the study's reported Δ in red open diamonds, on the panel of the study's
own perturbation, STUDY_ATTACK, or on a panel of its own, its legend naming it as the study's),
figure_2_defense.png (entropy-filter pass rate vs τ percentile: clean and each ε) and
figure_3_token_entropy.png (mean entropy by token position, clean vs each ε); one panel per
attack. Uses the Agg canvas directly (no pyplot state, no display needed); the jitter is seeded
and the PNG carries no version/date metadata, so the same summary gives the same bytes.
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.summary import level_label, sorted_levels

FIGURE_NAMES = ("figure_1_epsilon_delta.png", "figure_2_defense.png", "figure_3_token_entropy.png",
                "figure_4_reliability.png", "figure_5_risk_coverage.png", "figure_6_prior.png")
MIN_POSITION_SHARE = 0.05  # figure 3 stops where fewer than 5% of answers still have tokens
STUDY_ATTACK = "proxy"     # the original study's perturbation: its numbers go on this panel


def _caption(run_info: dict) -> str:
    ri = run_info or {}
    model = ri.get("model") or ri.get("model_id") or "unknown model"
    device = ri.get("device_name") or ri.get("device") or "unknown device"
    dtype = f", {ri['dtype']}" if ri.get("dtype") else ""
    return f"{model}{dtype} on {device}"


def _panels(n: int, title: str, run_info: dict):
    cols = max(1, min(3, n))
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(5.0 * cols, 3.8 * rows + 0.6))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(max(n, 1))]
    fig.suptitle(f"{title}\n{_caption(run_info)}", fontsize=10)
    return fig, axes


def _save(fig: Figure, path: str) -> str:
    """Write atomically: a temporary file in the same folder, then rename over the target.
    A figure laid out for print (figure 6) keeps its own layout engine and a dpi above 110."""
    tmp = f"{path}.tmp{os.getpid()}"
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(tmp, format="png", dpi=max(110, fig.dpi), metadata={"Software": None})
    os.replace(tmp, path)
    return path


def _attacks(summary: dict) -> list[str]:
    return sorted(summary.get("by_attack", {}))


def _xlabel(section: dict) -> str:
    return "severity" if section["grouped_by"] == "severity" else "ε ([0,1] pixel units)"


def _legend(key: str, section: dict) -> str:
    if section["grouped_by"] == "severity":
        return f"severity {key}"
    return f"ε = {level_label(key, 'epsilon')}"


def label_axes(ax, title: str, xlabel: str, ylabel: str, legend_size: int = 8, loc: str = "best"):
    """A panel's title, axis labels and legend, in the figures' one style."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size, loc=loc)


def _empty(ax, text="no perturbed records"):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _original(ax, original: dict) -> None:
    """The original study's reported Δ, kept visibly apart from ours and labelled as its own."""
    rows = original["rows"]
    ax.plot([r["epsilon"] for r in rows], [r["delta"] for r in rows], color="tab:red", marker="D",
            mfc="none", ls="--", label=f"original study, as reported: {original['model']}, "
            f"{original['dtype']} on {original['hardware']}")


def figure_epsilon_delta(summary: dict, run_info: dict, original: dict | None = None) -> Figure:
    attacks = _attacks(summary)
    own_panel = original is not None and not any(
        a == STUDY_ATTACK and summary["by_attack"][a]["grouped_by"] != "severity" for a in attacks)
    fig, axes = _panels(len(attacks) + own_panel,
                        "Figure 1: entropy change Δ = H_perturbed - H_clean", run_info)
    rng = np.random.default_rng(0)  # fixed: the jitter is decoration, not data
    for ax, attack in zip(axes, attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        xs = np.array([sec["by_epsilon"][k]["level"] for k in keys])
        gap = np.min(np.diff(xs)) if xs.size > 1 else (abs(xs[0]) or 1.0) * 0.5
        for x, k in zip(xs, keys):
            d = np.asarray(sec["by_epsilon"][k]["deltas"], dtype=float)
            ax.scatter(x + rng.uniform(-0.15, 0.15, d.size) * gap, d, s=8, alpha=0.3,
                       color="tab:blue", linewidths=0)
        means = [sec["by_epsilon"][k]["mean_delta"] for k in keys]
        cis = [sec["by_epsilon"][k]["ci95"] for k in keys]
        m = np.array([np.nan if v is None else v for v in means])
        lo = np.array([0.0 if c is None or v is None else v - c[0] for v, c in zip(means, cis)])
        hi = np.array([0.0 if c is None or v is None else c[1] - v for v, c in zip(means, cis)])
        ax.errorbar(xs, m, yerr=[lo, hi], color="black", marker="o", capsize=4,
                    label="this run: mean Δ, 95% CI")
        ticks = list(xs)
        if original is not None and attack == STUDY_ATTACK and sec["grouped_by"] != "severity":
            _original(ax, original)
            ticks = sorted(set(ticks) | {r["epsilon"] for r in original["rows"]})
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(ticks, [f"{x:.4g}" for x in ticks])
        if len(ticks) == 1:  # else autoscale stretches the jitter cloud over the whole panel
            ax.set_xlim(xs[0] - gap, xs[0] + gap)
        label_axes(ax, attack, _xlabel(sec), "Δ mean token entropy (nats)", 7)
    if own_panel:
        ax = axes[len(attacks)]
        _original(ax, original)
        ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks([r["epsilon"] for r in original["rows"]])
        label_axes(ax, "original study, as reported (not reproduced here)", "ε ([0,1] pixel units)",
                   "Δ mean token entropy (nats)", 7, "lower left")
    elif not attacks:
        _empty(axes[0])
    return fig


def figure_defense(summary: dict, run_info: dict) -> Figure:
    attacks = _attacks(summary)
    fig, axes = _panels(len(attacks), "Figure 2: entropy filter pass rate (pass when H <= τ)",
                        run_info)
    for ax, attack in zip(axes, attacks):
        sec = summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        pks = list(sec["by_epsilon"][keys[0]]["pass_rate"])
        pcts = [int(p[1:]) for p in pks]
        clean = [sec["by_epsilon"][keys[0]]["pass_rate"][p]["clean"] for p in pks]
        ax.plot(pcts, [np.nan if v is None else v for v in clean], color="black", marker="s",
                lw=2, label="clean")
        colours = [_colour(i, len(keys)) for i in range(len(keys))]
        for k, c in zip(keys, colours):
            pert = [sec["by_epsilon"][k]["pass_rate"][p]["perturbed"] for p in pks]
            label = _legend(k, sec)
            ax.plot(pcts, [np.nan if v is None else v for v in pert], marker="o", color=c,
                    label=label)
        ax.set_ylim(-0.02, 1.02)
        label_axes(ax, attack, "τ = percentile of clean entropy", "share of inputs passing")
    if not attacks:
        _empty(axes[0])
    return fig


def _colour(i: int, n: int):
    return colormaps["viridis"](0.85 * i / max(n - 1, 1))


def _cut(profile: dict):
    """(positions, means) up to the last position still held by MIN_POSITION_SHARE of answers."""
    n = np.asarray(profile.get("n") or [], dtype=float)
    m = np.array([np.nan if v is None else v for v in profile.get("mean") or []], dtype=float)
    if n.size == 0:
        return np.array([]), np.array([])
    keep = n >= max(1.0, MIN_POSITION_SHARE * n.max())
    last = int(np.nonzero(keep)[0].max()) + 1
    return np.arange(last), m[:last]


def figure_token_entropy(summary: dict, run_info: dict) -> Figure:
    prof = summary.get("token_profile") or {"clean": {}, "by_attack": {}}
    attacks = _attacks(summary)
    fig, axes = _panels(len(attacks), "Figure 3: mean token entropy by position", run_info)
    cx, cy = _cut(prof.get("clean", {}))
    for ax, attack in zip(axes, attacks):
        sec = summary["by_attack"][attack]
        levels = prof.get("by_attack", {}).get(attack, {})
        keys = [k for k in sorted_levels(sec["by_epsilon"]) if k in levels]
        ax.plot(cx, cy, color="black", lw=2, label="clean")
        for i, k in enumerate(keys):
            x, y = _cut(levels[k])
            label = _legend(k, sec)
            ax.plot(x, y, color=_colour(i, len(keys)), label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        label_axes(ax, attack, "token position in the answer", "mean entropy (nats)")
    if not attacks:
        if cx.size:
            axes[0].plot(cx, cy, color="black", lw=2, label="clean")
            axes[0].legend(fontsize=8)
        else:
            _empty(axes[0])
    return fig


def render_figures(summary: dict, out_dir: str, run_info: dict | None = None,
                   original: dict | None = None) -> list[str]:
    """Write the six figures into out_dir (created if missing); returns their paths.
    original: paper/original_study.json's dict (the caller reads it), drawn in figure 1.
    Figures 4 and 5 (calibration, selective prediction) are analysis/figures_calibration.py's,
    figure 6 (the language prior) analysis/figures_prior.py's."""
    from analysis.figures_calibration import figure_reliability, figure_risk_coverage
    from analysis.figures_prior import figure_prior

    os.makedirs(out_dir, exist_ok=True)
    ri = run_info or {}
    figs = {"figure_1_epsilon_delta.png": figure_epsilon_delta(summary, ri, original),
            "figure_2_defense.png": figure_defense(summary, ri),
            "figure_3_token_entropy.png": figure_token_entropy(summary, ri),
            "figure_4_reliability.png": figure_reliability(summary, ri),
            "figure_5_risk_coverage.png": figure_risk_coverage(summary, ri),
            "figure_6_prior.png": figure_prior(summary, ri)}
    return [_save(figs[name], os.path.join(out_dir, name)) for name in FIGURE_NAMES]
