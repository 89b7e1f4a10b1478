"""The run's own tables: what summary.json and run.json hold, as document pieces.

    from paper.results import load_run, results_pieces
    run = load_run(".", "results")
    pieces = results_pieces(run, full=True)      # for paper.markup.md / tex

Every table and figure of a run carries run_label(): the model, dtype, hardware, date and commit
of the run that produced it. Nothing here computes a statistic; it reads and formats.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from analysis.summary import level_label, sorted_levels
from paper.markup import Figure, Table, ci, kv_table, pct, plain, pval, signed

EXAMPLE_EPS = 0.3           # DESIGN.md's worked example of ε's unit; the headline's ε
HEADLINE_PCT = "p90"        # the entropy filter quoted in the headline sentence


class DocsError(ValueError):
    """Input the renderer cannot use; the message is one line."""


@dataclass
class Run:
    """What the docs need of one run folder."""
    summary: dict | None
    info: dict
    rel: str                # the results folder relative to the root ("results")
    figures: list = field(default_factory=list)


def load_json(path: str, required=False):
    if not os.path.exists(path):
        if required:
            raise DocsError(f"{path}: no such file")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DocsError(f"{path}: not readable as JSON ({e})") from None


def load_run(root: str, results: str) -> Run:
    from analysis.figures import FIGURE_NAMES

    summary = load_json(os.path.join(results, "summary.json"))
    info = load_json(os.path.join(results, "run.json")) or {}
    if summary is not None and not info:
        raise DocsError(f"{results}/summary.json has no run.json beside it, so its tables cannot "
                        "be labelled with the model and hardware that produced them")
    figs = [n for n in FIGURE_NAMES if os.path.exists(os.path.join(results, "figures", n))]
    rel = os.path.relpath(os.path.abspath(results), os.path.abspath(root)).replace(os.sep, "/")
    return Run(summary, info, rel, figs if summary else [])


def run_date(info: dict) -> str:
    return str(info.get("date") or info.get("finished") or info.get("started") or "n/a")[:10]


def run_label(info: dict) -> str:
    """model, dtype, hardware and date of a run: the label of every table and figure of ours."""
    model = info.get("model") or "unknown model"
    mid = info.get("model_id")
    who = f"`{model}`" + (f" (`{mid}`)" if mid and mid != model else "")
    hw = info.get("device_name") or info.get("device") or "unknown hardware"
    commit = f", git `{info['git_commit'][:7]}`" if info.get("git_commit") else ""
    return f"model {who}, {info.get('dtype', 'unknown dtype')} on {hw}, run of {run_date(info)}{commit}"


def _level_name(section) -> str:
    return "severity" if section["grouped_by"] == "severity" else "ε"


def clean_table(run: Run) -> Table:
    s = run.summary
    c, meta, nf = s["clean"], s["meta"], s["nonfinite"]
    headers = ["records", "valid", "non-finite excluded", "clean answers",
               "clean mean entropy (nats)", "sd"]
    row = [str(meta["n_records"]), str(meta["n_valid"]), str(nf["count"]), str(c["n"]),
           plain(c["mean_entropy"]), plain(c["std_entropy"])]
    if "accuracy" in c:
        headers.append("clean accuracy")
        row.append(pct(c["accuracy"]))
    return Table("clean", f"Records and clean answers. Our run: {run_label(run.info)}.",
                 headers, [row], f"{run.rel}/summary.json")


def delta_table(run: Run, attack: str) -> Table:
    sec = run.summary["by_attack"][attack]
    rows = []
    for k in sorted_levels(sec["by_epsilon"]):
        e = sec["by_epsilon"][k]
        rows.append([level_label(k, sec["grouped_by"]), str(e["n"]), signed(e["mean_delta"]),
                     ci(e["ci95"]), signed(e["median_delta"]), pval(e["wilcoxon_p"]),
                     pct(e["frac_negative"]), e["behaviour"], plain(e["auroc_detect"])])
    return Table(f"delta {attack}",
                 f"Attack `{attack}`: entropy change Δ = H_perturbed − H_clean (mean token "
                 f"entropy, nats), paired by image and question; detection AUROC of entropy "
                 f"(perturbed = positive). Our run: {run_label(run.info)}.",
                 [_level_name(sec), "n", "mean Δ", "95% CI", "median Δ", "Wilcoxon p", "Δ < 0",
                  "behaviour", "AUROC"], rows, f"{run.rel}/summary.json", "lrrrrrrlr")


def filter_table(run: Run, attack: str) -> Table:
    sec = run.summary["by_attack"][attack]
    keys = sorted_levels(sec["by_epsilon"])
    first = sec["by_epsilon"][keys[0]]["pass_rate"]
    pks = list(first)
    rows = [["τ (nats)"] + [plain(first[p]["tau"]) for p in pks],
            ["clean"] + [pct(first[p]["clean"]) for p in pks]]
    for k in keys:
        e = sec["by_epsilon"][k]
        rows.append([level_label(k, sec["grouped_by"])]
                    + [pct(e["pass_rate"][p]["perturbed"])
                       + (" INV" if e["inverted_safety"][p] else "") for p in pks])
    return Table(f"filter {attack}",
                 f"Attack `{attack}`: the entropy filter (an input passes when H ≤ τ, τ the "
                 f"given percentile of the clean entropies): share passing; INV = inverted "
                 f"safety, perturbed inputs pass more often than clean ones. "
                 f"Our run: {run_label(run.info)}.",
                 [_level_name(sec)] + pks, rows, f"{run.rel}/summary.json")


def correct_table(run: Run, attack: str) -> Table | None:
    sec = run.summary["by_attack"][attack]
    keys = [k for k in sorted_levels(sec["by_epsilon"]) if "accuracy_perturbed" in sec["by_epsilon"][k]]
    if not keys:
        return None
    pks = list(sec["by_epsilon"][keys[0]]["confidently_wrong"])
    rows = []
    for k in keys:
        e = sec["by_epsilon"][k]
        rows.append([level_label(k, sec["grouped_by"]), pct(e["accuracy_clean"]),
                     pct(e["accuracy_perturbed"])]
                    + [pct(e["confidently_wrong"][p]) for p in pks]
                    + [plain(e["auroc_wrong_clean"]), plain(e["auroc_wrong_perturbed"])])
    return Table(f"correct {attack}",
                 f"Attack `{attack}`: accuracy against the reference answers, confidently wrong "
                 f"(share of perturbed answers that are wrong yet pass the filter at τ = the "
                 f"percentile named), and AUROC of entropy for flagging a wrong answer. "
                 f"Our run: {run_label(run.info)}.",
                 [_level_name(sec), "accuracy clean", "accuracy perturbed"]
                 + [f"conf. wrong {p}" for p in pks] + ["AUROC wrong, clean", "AUROC wrong, perturbed"],
                 rows, f"{run.rel}/summary.json")


def probe_table(run: Run, attack: str) -> Table | None:
    sec = run.summary["by_attack"][attack]
    rows = []
    for k in sorted_levels(sec["by_epsilon"]):
        for name, pe in sorted(sec["by_epsilon"][k].get("probes", {}).items()):
            rows.append([level_label(k, sec["grouped_by"]), name, signed(pe["mean_delta"]),
                         ci(pe["ci95"]), plain(pe["auroc_detect"])])
    if not rows:
        return None
    return Table(f"probes {attack}",
                 f"Attack `{attack}`: the other probes, Δ in each probe's own units "
                 f"(max-prob probes: higher = more confident) and detection AUROC (sign-adjusted "
                 f"so that higher = more uncertain). Our run: {run_label(run.info)}.",
                 [_level_name(sec), "probe", "mean Δ", "95% CI", "AUROC"], rows,
                 f"{run.rel}/summary.json", "llrrr")


def headline(run: Run) -> list:
    """One sentence per attack at the level nearest EXAMPLE_EPS (the strongest severity)."""
    if run.summary is None:
        return ["No run's results are committed in this version."]
    out = []
    for attack in sorted(run.summary["by_attack"]):
        sec = run.summary["by_attack"][attack]
        keys = sorted_levels(sec["by_epsilon"])
        k = keys[-1] if sec["grouped_by"] == "severity" else min(
            keys, key=lambda x: abs(sec["by_epsilon"][x]["level"] - EXAMPLE_EPS))
        e = sec["by_epsilon"][k]
        pk = HEADLINE_PCT if HEADLINE_PCT in e["pass_rate"] else next(iter(e["pass_rate"]))
        f = e["pass_rate"][pk]
        inv = "inverted" if e["inverted_safety"][pk] else "not inverted"
        out.append(f"Attack `{attack}` at {_level_name(sec)} = {level_label(k, sec['grouped_by'])}: "
                   f"mean Δ = {signed(e['mean_delta'])} nats, 95% CI {ci(e['ci95'])}, "
                   f"Wilcoxon p = {pval(e['wilcoxon_p'])}, n = {e['n']} pairs ({e['behaviour']}); "
                   f"entropy filter at τ = {pk}: clean pass {pct(f['clean'])}, "
                   f"perturbed pass {pct(f['perturbed'])} ({inv}).")
    return out or ["The run has no perturbed records, so there is nothing to compare."]


def results_pieces(run: Run, full: bool) -> list:
    if run.summary is None:
        return [f"No results yet: `{run.rel}/summary.json` does not exist. Run "
                f"`python experiments/entropy_analysis.py --model tiny`, then "
                f"`python scripts/render_docs.py`."]
    out = [f"Our run: {run_label(run.info)}. Command: `{run.info.get('command', 'n/a')}`.",
           clean_table(run)]
    for attack in sorted(run.summary["by_attack"]):
        tables = [delta_table(run, attack), filter_table(run, attack), correct_table(run, attack)]
        if full:
            tables.append(probe_table(run, attack))
        out += [t for t in tables if t is not None]
    if not full:
        out.append(f"The full report: `{run.rel}/entropy_report.txt`; figures: `{run.rel}/figures/`.")
    return out


def run_pieces(run: Run) -> list:
    if not run.info:
        return ["No run recorded yet (`run.json` is missing)."]
    rows = [("model", "model"), ("checkpoint", "model_id"),
            ("class", "model_class"), ("parameters", "parameters", str),
            ("dtype", "dtype"), ("hardware", "device_name"),
            ("prompt format", "prompt_format"), ("attack", "config.attack"),
            ("ε", "config.epsilons"), ("trials per ε", "config.trials"),
            ("attack steps", "config.steps"), ("step size α", "config.alpha"),
            ("max new tokens", "config.max_new_tokens"), ("seed", "config.seed"),
            ("batch size", "batch_size"), ("torch", "versions.torch"),
            ("transformers", "versions.transformers"), ("started", "started"),
            ("wall time (s)", "wall_time_s", lambda v: f"{v:.1f}"),
            ("peak GPU memory (GiB)", "peak_gpu_memory_gib", lambda v: f"{v:.3f}")]
    return [kv_table("run", f"The run's configuration (`{run.rel}/run.json`). Our run: "
                     f"{run_label(run.info)}.", run.info, rows, f"{run.rel}/run.json")]


def stats_pieces(run: Run) -> list:
    if run.summary is None:
        return []
    rows = [("bootstrap resamples", "meta.bootstrap_resamples"),
            ("bootstrap seed", "meta.seed"), ("significance level", "meta.alpha"),
            ("τ percentiles of clean H", "meta.pass_percentiles"),
            ("behaviour rule", "meta.behaviour_rule")]
    return [kv_table("stats", f"Settings of the statistics (`{run.rel}/summary.json`).",
                     run.summary, rows, f"{run.rel}/summary.json")]


def what_was_run(run: Run, bench, gpu) -> list:
    if run.summary is None:
        return ["No run's results are committed in this version, so the results section is empty; "
                "nothing below is a measurement of ours."]
    mid = str(run.info.get("model_id") or run.info.get("model") or "")
    big = "llava-1.5" in mid.lower()
    out = [f"What was run: one run of `experiments/entropy_analysis.py`, {run_label(run.info)}."]
    out.append("This run is of LLaVA-1.5 itself." if big else
               "No run of LLaVA-1.5-7B is included in this version: its numbers below are the "
               "original study's, as it reported them, not ours.")
    extra = [n for n, d in list(bench.items()) + [("gpu_memory.json", gpu)] if d]
    if extra:
        out.append("Also measured: " + ", ".join(f"`{run.rel}/{n}`" for n in extra) + ".")
    return [" ".join(out)]


def figures_pieces(run: Run, doc_dir: str, root: str, caption: str, name: str) -> list:
    if name not in run.figures:
        return [f"(`{run.rel}/figures/{name}` is not present: no results yet.)"]
    path = os.path.relpath(os.path.join(root, run.rel, "figures", name), os.path.join(root, doc_dir))
    return [Figure(path.replace(os.sep, "/"), f"{caption} Our run: {run_label(run.info)}.")]
