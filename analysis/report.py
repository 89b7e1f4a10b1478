"""render_report(summary, run_info) -> the text of entropy_report.txt, from summary.json alone.

    from analysis.report import render_report
    print(render_report(summary, {"model": "tiny", "dtype": "float32", "device": "cpu"}))

Plain fixed-width tables, one block per attack: Δ at a glance first (mean Δ ± std of the
individual Δ, how many fell, the behaviour label), then CI and Wilcoxon, the entropy-filter
defence, detection AUROC and correctness. "n/a" marks a number that is undefined (see the
summary docstring for when). No number here is computed: everything is read from the summary.
"""
from __future__ import annotations

from analysis.summary import level_label, sorted_levels

EPS_LINE = ("ε is in [0,1] pixel units at the model's input resolution "
            "(ε = 0.3 ≈ 77/255)")


def _f(x, fmt="{:.3f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _signed(x) -> str:
    return _f(x, "{:+.3f}")


def _p(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.1e}" if x < 1e-4 else f"{x:.4f}"


def _ci(ci, fmt="{:+.3f}") -> str:
    return "n/a" if ci is None else f"[{fmt.format(ci[0])}, {fmt.format(ci[1])}]"


def _pct(x) -> str:
    return _f(None if x is None else 100 * x, "{:.1f}%")


def table(headers: list[str], rows: list[list[str]], indent: str = "  ", left=(0,)) -> str:
    """Fixed-width table: the `left` columns (text) left-aligned, the rest (numbers) right."""
    cols = list(zip(headers, *rows))
    widths = [max(len(str(c)) for c in col) for col in cols]

    def line(cells):
        parts = [str(c).ljust(w) if i in left else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(cells, widths))]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(r) for r in rows])


def _header(summary: dict, run_info: dict) -> list[str]:
    ri = run_info or {}
    model = ri.get("model") or ri.get("model_id") or "unknown model"
    if ri.get("model_id") and ri.get("model_id") != model:
        model += f" ({ri['model_id']})"
    if ri.get("revision"):
        model += f" @ {ri['revision']}"
    device = ri.get("device") or "unknown device"
    if ri.get("device_name"):
        device += f" ({ri['device_name']})"
    meta, clean, nf = summary["meta"], summary["clean"], summary["nonfinite"]
    lines = ["Entropy under perturbation: The Confidence Trap reproduction",
             f"model: {model}   dtype: {ri.get('dtype', 'n/a')}   device: {device}"]
    # No timestamps here: the same command and seed must give a byte-identical report.
    cfg = dict(ri.get("config") or {}, git_commit=ri.get("git_commit"))
    run = [f"{k}: {cfg[k]}" for k in ("attack", "epsilons", "trials", "seed", "max_new_tokens",
                                      "git_commit") if cfg.get(k) is not None]
    if run:
        lines.append("run: " + "   ".join(run))
    lines += [
        EPS_LINE,
        f"records: {meta['n_records']} ({meta['n_valid']} valid, {nf['count']} with non-finite "
        f"logits excluded, {meta.get('n_unpaired', 0)} perturbed without a clean partner)",
        f"clean: n = {clean['n']}, mean entropy {_f(clean['mean_entropy'])} nats"
        + (f", accuracy {_pct(clean['accuracy'])}" if "accuracy" in clean else ""),
        "Δ = H_perturbed - H_clean (mean token entropy, nats), paired by image and question",
        f"behaviour rule: {meta['behaviour_rule']}",
        f"95% CIs: percentile bootstrap, {meta['bootstrap_resamples']} resamples, "
        f"seed {meta['seed']}; Wilcoxon signed-rank, two-sided, n/a when n < 2 or all Δ = 0",
    ]
    return lines


def _blocks(attack: str, section: dict) -> list[str]:
    by_eps, grouped = section["by_epsilon"], section["grouped_by"]
    keys = sorted_levels(by_eps)
    lvl = "severity" if grouped == "severity" else "ε"
    lab = {k: level_label(k, grouped) for k in keys}
    out = [f"== attack: {attack} ==", ""]

    rows = [[lab[k], f"{_signed(e['mean_delta'])} ± {_f(e['std_delta'])}",
             f"{sum(d < 0 for d in e['deltas'])}/{e['n']}", e["behaviour"]]
            for k, e in ((k, by_eps[k]) for k in keys)]
    out += ["Entropy change Δ (mean ± std of the individual Δ)",
            table([lvl, "mean Δ ± spread", "#neg/n", "behaviour"], rows, left=(0, 3)), ""]

    rows = [[lab[k], str(e["n"]), _signed(e["mean_delta"]), _signed(e["median_delta"]),
             _ci(e["ci95"]), _p(e["wilcoxon_p"]), _f(e["spread_images"]),
             _f(e["spread_trials"])] for k, e in ((k, by_eps[k]) for k in keys)]
    out += ["Confidence interval and test",
            table([lvl, "n", "mean Δ", "median Δ", "95% CI of mean", "Wilcoxon p",
                   "sd(images)", "sd(trials)"], rows), ""]

    # τ comes from all clean records, so it and the clean pass rate are the same on every row.
    first = by_eps[keys[0]]["pass_rate"]
    pks = list(first)
    rows = [["clean"] + [_pct(first[pk]["clean"]) + "    " for pk in pks]]
    rows += [[lab[k]] + [_pct(by_eps[k]["pass_rate"][pk]["perturbed"])
                         + (" INV" if by_eps[k]["inverted_safety"][pk] else "    ")
                         for pk in pks] for k in keys]
    out += ["Defence: entropy filter, share of inputs passing (pass when H <= τ, "
            "τ = percentile of clean H; INV = inverted: perturbed pass more often than clean)",
            table([lvl] + [f"{pk} τ={_f(first[pk]['tau'])}" for pk in pks], rows), ""]

    probes = sorted({p for k in keys for p in by_eps[k].get("probes", {})})
    rows = [[lab[k], _f(by_eps[k]["auroc_detect"]), _ci(by_eps[k]["auroc_detect_ci95"], "{:.3f}")]
            + [_f(by_eps[k].get("probes", {}).get(p, {}).get("auroc_detect")) for p in probes]
            for k in keys]
    out += ["Detection AUROC (perturbed = positive; higher uncertainty = more suspicious; "
            "0.5 = chance, < 0.5 = perturbed look more confident)",
            table([lvl, "entropy", "95% CI"] + probes, rows), ""]

    if probes:
        rows = [[lab[k], p, _signed(pe["mean_delta"]), _ci(pe["ci95"])]
                for k in keys for p, pe in sorted(by_eps[k].get("probes", {}).items())]
        out += ["Other probes: Δ in each probe's own units (max-prob: higher = more confident)",
                table([lvl, "probe", "mean Δ", "95% CI"], rows, left=(0, 1)), ""]

    ref = [k for k in keys if "accuracy_perturbed" in by_eps[k]]
    if ref:
        pks = list(by_eps[ref[0]]["confidently_wrong"])
        rows = [[lab[k], _pct(e["accuracy_clean"]), _pct(e["accuracy_perturbed"])]
                + [_pct(e["confidently_wrong"][pk]) for pk in pks]
                + [_f(e["auroc_wrong_clean"]), _f(e["auroc_wrong_perturbed"])]
                for k, e in ((k, by_eps[k]) for k in ref)]
        out += ["Correctness (confidently wrong = share of perturbed answers wrong yet passing τ; "
                "AUROC of entropy flagging a wrong answer)",
                table([lvl, "acc clean", "acc pert."] + [f"cw {pk}" for pk in pks]
                      + ["AUROC wrong clean", "AUROC wrong pert."], rows), ""]
    return out


def render_report(summary: dict, run_info: dict | None = None) -> str:
    """The whole report as one string, ending in a newline."""
    lines = _header(summary, run_info or {}) + [""]
    if not summary["by_attack"]:
        lines += ["No perturbed records: nothing to compare against clean.", ""]
    for attack in sorted(summary["by_attack"]):
        lines += _blocks(attack, summary["by_attack"][attack])
    nf = summary["nonfinite"]
    if nf["count"]:
        lines.append(f"Excluded for non-finite logits ({nf['count']}):")
        shown = nf["records"][:20]
        lines.append(table(["image", "attack", "epsilon", "trial"],
                           [[str(r.get("image")), str(r.get("attack")), str(r.get("epsilon")),
                             str(r.get("trial"))] for r in shown]))
        if nf["count"] > len(shown):
            lines.append(f"  ... and {nf['count'] - len(shown)} more (see summary.json)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
