"""The tables of the original protocol (summary["original"], confidence_trap/analysis/original.py),
built with confidence_trap/analysis/tables.py's Table and formatters, for the report, the README,
docs/RESULTS.md and the notebook.

    from confidence_trap.analysis.original_tables import decomposition, first_table, their_runs
    their_runs(block["theirs"])                 # the original's 10 runs, labelled as theirs
    decomposition(block, run_info)              # Δ by position kind: clamp, noise, both, per ε
    first_table(study, (s_orig, info_orig), (s, info))   # the README's first table, side by side

Each table is labelled with whose numbers it holds: the original's (its repository and commit, its
model and hardware) or ours (run_label(): model, dtype, hardware, date, commit); the two never
share a label. ε of the original protocol names σ = ε/10 of Gaussian noise on the normalised
tensor, not an L∞ bound, so every ε cell of these tables says its σ.
"""
from __future__ import annotations

from confidence_trap.analysis.findings import headline
from confidence_trap.analysis.original import KIND_WORDS, KINDS, PART_WORDS, parts
from confidence_trap.analysis.levels import eps_key
from confidence_trap.analysis.tables import Table, ci, fixed, num, run_label, signed, value, word

NOT_RUN = "no run"


def theirs_label(code: dict) -> str:
    """Whose the numbers are: the original's code, its repository, commit, model and hardware."""
    return (f"The original study's own numbers, not ours: {code['author']} ({code['year']}), "
            f"{code['repository']} at {code['commit']}, {code['file']}; {code['model']}; "
            f"{code['hardware']}; {code['label']}.")


def their_fmt(code: dict, x, sign=True) -> str:
    return fixed(x, code.get("decimals", 4), sign=sign and x != 0)


def eps_sigma(eps: float, sigma=None) -> str:
    """An ε of the original protocol with its σ: "0.3 (σ 0.03)"."""
    return f"{value(float(eps))} (σ {value(sigma if sigma is not None else round(eps / 10, 12))})"


def their_runs(code: dict | None) -> Table | None:
    """The original's own runs at each ε it ran, their mean, and its clean entropy."""
    if not code or not code.get("runs"):
        return None
    n = max(len(r["deltas"]) for r in code["runs"])
    rows = [[eps_sigma(r["epsilon"], r.get("sigma"))] + [their_fmt(code, d) for d in r["deltas"]]
            + [""] * (n - len(r["deltas"])) + [their_fmt(code, r.get("mean", sum(r["deltas"]) / len(r["deltas"])))]
            for r in code["runs"]]
    return Table(f"The original code's runs: Δ of the prompt entropy per run (its clean entropy, "
                 f"{their_fmt(code, code['clean'], False)}, is the same in every run), and their mean "
                 f"(computed here from its runs).", ["ε (σ)"] + [f"run {i + 1}" for i in range(n)] + ["mean"],
                 rows, name="original-runs", label=theirs_label(code))


def pairing(block: dict) -> Table | None:
    rows = [[value(e["epsilon"]), value(e["sigma"]) if e["sigma"] is not None else "n/a",
             value(e["sigma_pairs"]), "n/a" if e["original_runs"] is None else value(e["original_runs"])]
            for e in sorted(block["by_epsilon"].values(), key=lambda e: e["epsilon"])]
    return Table("ε and σ: the noise's σ in this run's records, whether σ = ε/10 (the original's "
                 "pairing), and whether the original code has runs at that ε.",
                 ["ε", "σ", "σ = ε/10", "the original has runs"], rows, "lrll", "original-pairing") if rows else None


def cell(entry: dict | None, with_ci: bool) -> str:
    """A mean Δ, with its CI over images where there are several."""
    if not entry:
        return "n/a"
    return signed(entry["mean_delta"]) + (f" {ci(entry['ci95'])}" if with_ci else "")


def decomposition(block: dict, run_info: dict | None = None) -> Table:
    """Δ by position kind of each part of the perturbation, after a row of the clean entropies."""
    many = not block["one_cluster"]
    c = block["clean"]
    rows = [["clean H (nats)", "", "", str(c["n"])] + [num(c[k]) for k in KINDS] + [""] * many]
    for part, key, kinds in parts(block):
        e = block["by_epsilon"].get(key) if key else None
        rows.append([PART_WORDS[part], value(e["epsilon"]) if e else "none", value(e["sigma"]) if e else "0",
                     str(kinds["all"]["n"])] + [cell(kinds[k], many) for k in KINDS]
                    + [word(kinds["all"]["verdict"])] * many)
    what = (f"over {block['n_clusters']} items (image and prompt), with 95% CIs that resample them, "
            "and the verdict of every position" if many else
            "on one image: the mean over its noise draws, with no interval (one cluster)")
    return Table(f"The original protocol taken apart: Δ = H_perturbed − H_clean of the teacher-forced "
                 f"prompt entropy (nats), by position kind, {what}.",
                 ["condition", "ε", "σ", "pairs"] + [KIND_WORDS[k] for k in KINDS] + ["verdict"] * many,
                 rows, "lrrr" + "r" * len(KINDS) + "l" * many, "original-decomposition",
                 label=run_label(run_info) if run_info is not None else "")


def runs(block: dict, run_info: dict | None = None) -> Table | None:
    """With one image: Δ of every position per trial of the original perturbation, as the original
    lists its runs."""
    if not block["one_cluster"]:
        return None
    eps = [e for e in sorted(block["by_epsilon"].values(), key=lambda e: e["epsilon"]) if e["both"]]
    if not eps:
        return None
    n = max(len(e["both"]["all"]["deltas"]) for e in eps)
    rows = [[eps_sigma(e["epsilon"], e["sigma"])] + [signed(d) for d in e["both"]["all"]["deltas"]]
            + [""] * (n - len(e["both"]["all"]["deltas"])) + [signed(e["both"]["all"]["mean_delta"])] for e in eps]
    return Table("The original perturbation (noise and clamp) run by run: Δ of the prompt entropy over "
                 "every position, per noise draw, on the one image.", ["ε (σ)"] + [f"run {i + 1}" for i in
                 range(n)] + ["mean"], rows, name="original-our-runs", label=run_label(run_info or {}))


def _paper_cell(s: dict | None, eps: float) -> str:
    if not s or not s.get("by_attack"):
        return "n/a"
    e = s["by_attack"][headline(s)]["by_epsilon"].get(eps_key(eps))
    return f"{signed(e['mean_delta'])} {ci(e['ci95'])}" if e else NOT_RUN


def first_table(study: dict, original: tuple | None, paper: tuple | None) -> Table:
    """The README's first table: per ε, (a) the study's table as reported, (b) the original code's
    runs, (c) our run of the original protocol by position kind (`original`: (summary, run.json),
    None where absent) and (d) our run of the protocol the paper describes (`paper`: the same)."""
    code, o = study.get("code") or {}, (original[0].get("original") if original else None)
    reported = {r["epsilon"]: r["delta"] for r in study["rows"]}
    their = {r["epsilon"]: r for r in code.get("runs", [])}
    ours = {e["epsilon"]: e for e in (o or {}).get("by_epsilon", {}).values()}
    kinds = list(KINDS) if o else []

    def row(label, a, b, kind_cells, d):
        return [label, a, b] + kind_cells + ([d] if paper else [])
    many = bool(o) and not o["one_cluster"]
    rows = [row("clean H (nats)", "n/a", their_fmt(code, code["clean"], False) if code else "n/a",
                [num(o["clean"][k]) for k in kinds], num(paper[0]["clean"]["mean_entropy"]) if paper else "")]
    if o and o.get("clamp"):
        rows.append(row(PART_WORDS["clamp"], NOT_RUN, NOT_RUN, [cell(o["clamp"][k], many) for k in kinds], "n/a"))
    for eps in sorted(set(reported) | set(their) | set(ours)):
        r, e = their.get(eps), ours.get(eps)
        runs_cell = (f"{their_fmt(code, r.get('mean', sum(r['deltas']) / len(r['deltas'])))} "
                     f"({', '.join(their_fmt(code, d) for d in r['deltas'])})") if r else NOT_RUN
        rows.append(row(eps_sigma(eps, e["sigma"] if e else None),
                        fixed(reported[eps], study["decimals"], sign=reported[eps] != 0) if eps in reported else NOT_RUN,
                        runs_cell, [cell((e["both"] or {}).get(k), many) if e else NOT_RUN for k in kinds],
                        _paper_cell(paper[0], eps) if paper else ""))
    headers = ["ε (σ = ε/10)", "the study's table, as reported", "the original code's runs: mean (runs)"] + [
        f"ours, original protocol: {KIND_WORDS[k]}" if k == "all" else KIND_WORDS[k] for k in kinds] + [
        "ours, the paper's protocol: mean Δ [95% CI]"] * bool(paper)
    label = (f"The study's table and the original code's runs are the original study's numbers, not ours "
             f"({study['model']}, {study['dtype']} on {study['hardware']}; its code: {code.get('repository')} at "
             f"{code.get('commit')}, {code.get('file')}).")
    if original:
        label += f" Ours, original protocol (teacher-forced prompt entropy, noise and clamp): {run_label(original[1])}"
    if paper:
        label += (f" Ours, the paper's protocol (entropy of the generated answer, the ε-ball proxy, ε in [0,1] "
                  f"pixel units): {run_label(paper[1])}")
    return Table("Δ of the entropy at each ε: the study's table, the original code's own runs, our run of the "
                 "protocol its code ran, by position kind, and our run of the protocol its paper describes.",
                 headers, rows, "l" + "r" * (len(headers) - 1), "original-side-by-side", label=label)


def beyond(rows: list[dict], one_info: dict, many_info: dict, n_images: int) -> Table | None:
    """confidence_trap.analysis.original.beyond_one_image's rows: does the one image's sign survive?"""
    if not rows:
        return None
    cells = [[PART_WORDS[r["part"]], "none" if r["epsilon"] is None else value(r["epsilon"]), KIND_WORDS[r["kind"]],
              signed(r["one_image"]), signed(r["many"]["mean_delta"]), ci(r["many"]["ci95"]),
              word(r["many"]["verdict"]), r["answer"]] for r in rows]
    return Table(f"Beyond one image: the one image's mean Δ beside the mean over {n_images} images with its "
                 "95% CI over images and verdict; the sign survives where the verdict over images falls or "
                 "rises the same way, and cannot be told where it is inconclusive.",
                 ["condition", "ε", "positions", "one image", f"{n_images} images", "95% CI", "verdict", "sign"],
                 cells, "lrlrrrll", "original-beyond",
                 label=f"One image: {run_label(one_info)} Many images: {run_label(many_info)}")
