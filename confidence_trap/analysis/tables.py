"""Tables of a run, built once from summary.json, for the report, README, paper and notebook.

    from confidence_trap.analysis.tables import build
    for t in build(summary, run_info):     # every registered table, each labelled with the run
        print(t.title, t.headers, t.rows)  # cells are strings, formatted here and nowhere else

confidence_trap/analysis/report.py writes them as fixed-width text, confidence_trap/docs/render.py as markdown and LaTeX (for
the README and the paper), the notebook as HTML.
Adding a table is one function: decorate it with @table(name) (or @table(name, per_attack=True)
for one per attack), take the summary (and the attack name), return a Table of strings made by
the formatters below (by_level() makes the usual row-per-ε one), or None when the summary has
nothing for it. build() calls the tables in the order they are defined and labels each with
run_label(): model, dtype, hardware, date and commit.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass
from functools import partial

import probes as registry
from confidence_trap.analysis.levels import kind_name, level_label, level_phrase, sorted_levels


def num(x, sign=False) -> str:
    """Entropies and Δ: 0.012 (+0.012 with sign); below 0.01, two significant digits (1.6e-05)."""
    if x is None or x == 0:
        return "n/a" if x is None else "0"
    return format(x, ("+" if sign else "") + (".3f" if abs(x) >= 0.00995 else ".1e"))


signed = partial(num, sign=True)


def fixed(x, digits=3, sign=False) -> str:
    return "n/a" if x is None else format(x, f"{'+' if sign else ''}.{digits}f")


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pval(x) -> str:
    return "n/a" if x is None else f"{x:.1e}" if x < 1e-4 else f"{x:.4f}"


def ci(pair, fmt=signed) -> str:
    return "n/a" if pair is None else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def word(x) -> str:
    """A verdict or a count as it is; n/a where the summary lacks it."""
    return "n/a" if x is None else str(x)


def floor_cell(x) -> str:
    """A noise floor: "none" without a null control, "0" when the repeats changed nothing."""
    return "none" if x is None else num(x)


def value(v) -> str:
    """A configuration or metadata value as a cell."""
    if isinstance(v, (bool, list, tuple)):
        return ("yes" if v else "no") if isinstance(v, bool) else ", ".join(map(value, v))
    return "default" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class Table:
    title: str                  # what the table shows
    headers: list
    rows: list                  # lists of strings, formatted by the functions above
    align: str = ""             # l, r or L (LaTeX: wrapped) per column; default: l, then r
    name: str = ""              # its registry name (build() sets it, and attack)
    attack: str | None = None
    label: str = ""             # whose numbers: run_label() of ours, or the original study's

    @property
    def caption(self) -> str:
        return f"{self.title} {self.label}".strip()

    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.headers) - 1)


def columns(t: Table, *keep: str) -> Table:
    """The same table with only the columns whose headers are in `keep` (in the table's order), for a
    page too narrow for all of them; its title says that docs/RESULTS.md has the rest. A column the
    table lacks is left out (a run without the no-EOS entropy has none); none at all is an error."""
    idx = [i for i, h in enumerate(t.headers) if h in keep]
    if not idx:
        raise ValueError(f"table {t.name or t.title!r} has none of the columns {list(keep)}; its columns: {t.headers}")
    align = t.alignment()
    return dataclasses.replace(t, title=f"{t.title} (The other columns: docs/RESULTS.md.)",
                               headers=[t.headers[i] for i in idx], rows=[[r[i] for i in idx] for r in t.rows],
                               align="".join(align[i] for i in idx))


def run_label(info: dict) -> str:
    """Our run's model, dtype, hardware, date and commit: the label of every table of ours."""
    model = info.get("model") or "unknown model"
    model += f" ({info['model_id']})" if info.get("model_id") not in (None, model) else ""
    hw = info.get("device_name") or info.get("device") or "unknown hardware"
    date = str(info.get("date") or info.get("finished") or info.get("started") or "n/a")[:10]
    commit = f", git {info['git_commit'][:7]}" if info.get("git_commit") else ""
    return f"Our run: model {model}, {info.get('dtype', 'unknown dtype')} on {hw}, run of {date}{commit}."


TABLES: dict = {}               # name -> (function, per_attack), in the order defined


def table(name: str, per_attack: bool = False):
    """Registers a table function: build() calls fn(summary), or fn(summary, attack) per attack."""
    def register(fn):
        TABLES[name] = (fn, per_attack)
        return fn
    return register


def build(summary: dict, run_info: dict, names=None) -> list[Table]:
    """The registered tables (all, or those in `names`), one per attack where per attack."""
    out = []
    for name, (fn, per_attack) in TABLES.items():
        if names is not None and name not in names:
            continue
        for attack in (sorted(summary["by_attack"]) if per_attack else [None]):
            t = fn(summary, attack) if per_attack else fn(summary)
            if t is not None:
                t.name, t.attack, t.label = name, attack, run_label(run_info)
                out.append(t)
    return out


def levels(section: dict) -> list:  # (label, entry) per ε or severity of one attack, in order
    return [(level_label(k, section["grouped_by"]), section["by_epsilon"][k])
            for k in sorted_levels(section["by_epsilon"])]


def level_name(section: dict) -> str:
    return kind_name(section["grouped_by"])


def by_level(s: dict, attack: str, title: str, columns: list, align="", clean=False) -> Table | None:
    """A row per ε (or severity) of one attack (after a row of the clean block, with clean=True),
    columns [(header, field of its entry, formatter)], a field dotted or a tuple of keys; a row
    whose entry lacks the first field's first key is left out."""
    sec = s["by_attack"][attack]
    rows = [[lab] + [fmt(dig(e, f)) for _, f, fmt in columns]
            for lab, e in [("clean", s["clean"])] * clean + levels(sec)
            if columns and _keys(columns[0][1])[0] in e]
    return Table(f"Attack {attack}: {title}", [level_name(sec)] + [c[0] for c in columns], rows,
                 align) if rows else None




@table("clean")
def clean(s):
    c, m = s["clean"], s["meta"]
    cells = {"records": m["n_records"], "valid": m["n_valid"], "non-finite": s["nonfinite"]["count"],
             "unpaired": m.get("n_unpaired", 0), "clean answers": c["n"],
             "clean mean H (nats)": num(c["mean_entropy"]), "sd": num(c["std_entropy"]),
             **({"clean accuracy": pct(c["accuracy"])} if "accuracy" in c else {})}
    return Table("Records (non-finite: excluded for non-finite logits; unpaired: perturbed without "
                 "a clean partner) and clean answers.", list(cells), [list(map(str, cells.values()))],
                 "r" * len(cells))


# The answer-only entropy ("no EOS"): the step that emits end-of-sequence left out.
ANSWER_COLUMNS = [("Δ, no EOS", "answer_entropy.mean_delta", signed), ("95% CI, no EOS", "answer_entropy.ci95", ci),
                  ("verdict, no EOS", "answer_entropy.verdict", word)]


def units(s: dict) -> str:
    """What the run's CIs resample, as a table title says it."""
    return f"the CIs draw {s['meta'].get('cluster') or 'items'}"


def _has_answer(s: dict, attack: str) -> bool:
    return any("answer_entropy" in e for e in s["by_attack"][attack]["by_epsilon"].values())


@table("delta", per_attack=True)
def delta(s, attack):
    answer = _has_answer(s, attack)
    return by_level(s, attack, "entropy change Δ = H_perturbed − H_clean (mean token entropy, nats), "
                    f"paired by image and question; {units(s)}; the verdict reads the 90% CI of Δ − Δ_null, the "
                    "change minus the item's change in the null control, against δ"
                    + ("; then the same for the entropy without the step that emits end-of-sequence (no "
                       "EOS)" if answer else "") + ".", [
                        ("pairs", "n", str), ("items", "n_clusters", word), ("mean Δ", "mean_delta", signed),
                        ("95% CI", "ci95", ci), ("90% CI, Δ − Δ_null", "tested.ci90", ci),
                        ("verdict", "verdict", word)] + ANSWER_COLUMNS * answer, "lrrrrrl" + "rrl" * answer)


@table("pairs", per_attack=True)
def pairs(s, attack):
    return by_level(s, attack, "the pair-level figures, for comparison only: a CI that counts every "
                    "trial as an independent sample is too narrow, since the trials of an item share its "
                    "image, question and clean answer, and the items of an image or a question share them.", [
                        ("pairs", "n", str), ("images", "n_images", word), ("questions", "n_questions", word),
                        ("95% CI, crossed", "ci95", ci), ("95% CI, pairs", "ci95_pairs", ci),
                        ("median Δ", "median_delta", signed), ("sd Δ", "std_delta", num),
                        ("Wilcoxon p, item means", "wilcoxon_p", pval), ("Δ < 0", "frac_negative", pct)])


FIRST_NOISE_ROW = {"prompt_entropy": "prompt entropy, every position"}  # a run without answers (the original's)


@table("noise")
def noise(s):
    n = s.get("noise")
    if not n:
        return None
    rows = [[lab, word(b["n_clusters"]), signed(b["mean_delta"]), ci(b["ci95"]), floor_cell(b["floor"]),
             num(b["max_abs_delta"]), pct(n["answers_changed"]), value(b["exact_zero"])]
            for lab, b in ((FIRST_NOISE_ROW.get(n.get("entropy"), "with the EOS step (headline)"), n),
                           ("without the EOS step", n.get("answer_entropy"))) if b]
    return Table("The noise floor: the null control generates every clean input again in another batch "
                 "(other neighbours, more padding); Δ_null = H_again − H_clean per item (nats), its 95% CI "
                 "(images and questions drawn), and the floor, the far end of that CI: how far the batch "
                 "alone moves a mean. The verdicts test Δ − Δ_null item by item, so this noise is inside them.",
                 ["entropy", "items", "mean Δ", "95% CI", "noise floor", "largest |Δ|", "answers changed",
                  "all Δ exactly 0"], rows, "lrrrrrrl")


@table("filter", per_attack=True)
def entropy_filter(s, attack):
    sec = s["by_attack"][attack]
    first = levels(sec)[0][1]["pass_rate"]
    rows = [["τ (nats)"] + [num(first[p]["tau"]) for p in first],
            ["clean"] + [pct(first[p]["clean"]) for p in first]]
    rows += [[lab] + [pct(e["pass_rate"][p]["perturbed"]) + " INV" * e["inverted_safety"][p]
                      for p in first] for lab, e in levels(sec)]
    return Table(f"Attack {attack}: the entropy filter, share of inputs passing (an input passes "
                 "when H ≤ τ, τ a percentile of the clean entropies). INV: inverted safety, perturbed "
                 "inputs pass more often than clean ones by more than the margin, half the clean "
                 "inputs the filter rejects (the 90% CI of the difference lies above it).",
                 [level_name(sec)] + [f"τ = {p}" for p in first], rows)


@table("filter-difference", per_attack=True)
def filter_difference(s, attack):
    sec = s["by_attack"][attack]
    rows = [[lab, p, pct(r["clean"]), pct(r["perturbed"]), _points(r.get("difference")),
             ci(r.get("difference_ci90"), _points), fixed(None if r.get("margin") is None else 100 * r["margin"], 1),
             word(r.get("verdict"))]
            for lab, e in levels(sec) for p, r in e["pass_rate"].items()]
    return Table(f"Attack {attack}: the entropy filter's verdicts. Difference in pass rate, perturbed − "
                 f"clean, in percentage points, with its 90% CI ({units(s)}, τ held at the run's value); "
                 "inverted if the CI lies above the margin (half the share of clean inputs the filter "
                 "rejects), not inverted if below it, otherwise inconclusive.",
                 [level_name(sec), "τ", "clean", "perturbed", "difference", "90% CI", "margin", "verdict"],
                 rows, "llrrrrrl") if rows and "verdict" in next(iter(levels(sec)[0][1]["pass_rate"].values())) else None


def _points(x) -> str:
    """A share's difference in percentage points: +12.5."""
    return fixed(None if x is None else 100 * x, 1, sign=True)


@table("probes", per_attack=True)
def probes(s, attack):
    sec = s["by_attack"][attack]
    rows = [[lab, registry.label(p), signed(d["mean_delta"]), ci(d["ci95"]), fixed(d["auroc_detect"]),
             ci(d.get("auroc_detect_ci95"), fixed)]
            for lab, e in levels(sec) for p, d in [("entropy", e)] + sorted(e.get("probes", {}).items())]
    return Table(f"Attack {attack}: Δ of each probe in its own units (top-token probabilities: higher = "
                 "more confident), and its detection AUROC, perturbed against clean, signed so that "
                 "higher = more uncertain (0.5: chance; below: perturbed inputs look more confident).",
                 [level_name(sec), "probe", "mean Δ", "95% CI", "AUROC", "AUROC 95% CI"], rows, "llrrrr")


@table("correct", per_attack=True)
def correct(s, attack):
    with_refs = [e for e in s["by_attack"][attack]["by_epsilon"].values() if "confidently_wrong" in e]
    return by_level(s, attack, "answers against the reference answers. Accuracy; confidently "
                    "wrong: the share of perturbed answers that are wrong yet pass the filter at "
                    "the τ named; AUROC of entropy for flagging a wrong answer.",
                    [("accuracy clean", "accuracy_clean", pct),
                     ("accuracy perturbed", "accuracy_perturbed", pct)]
                    + [(f"conf. wrong, τ = {p}", f"confidently_wrong.{p}", pct)
                       for p in (with_refs[0]["confidently_wrong"] if with_refs else [])]
                    + [("AUROC wrong, clean", "auroc_wrong_clean", fixed),
                       ("AUROC wrong, perturbed", "auroc_wrong_perturbed", fixed)])


@table("floor", per_attack=True)
def floor(s, attack):
    return by_level(s, attack, "the entropy floor. A mean Δ cannot fall below minus the mean clean "
                    "H, so where most clean answers sit near zero entropy a fall cannot show; the "
                    "log-ratio, mean of log((H_adv + 0.001)/(H_clean + 0.001)), is bounded less.", [
                        ("clean H < 0.01 nats", ("floor", "share_clean_below_0.01"), pct),
                        ("lowest possible mean Δ", "floor.delta_bound", signed),
                        ("mean Δ", "mean_delta", signed), ("mean log-ratio", "floor.mean_log_ratio", signed)])


@table("calibration", per_attack=True)
def calibration(s, attack):
    c = "calibration."
    return by_level(s, attack, "calibration. Confidence: the answer's sequence probability exp(−NLL); "
                    "ECE over 10 equal bins (bootstrap 95% CI); overconfidence: mean confidence − "
                    "accuracy; last column: the ECE of the mean top-token probability.", [
                        ("accuracy", c + "accuracy", pct), ("confidence", c + "mean_confidence", pct),
                        ("ECE", c + "ece", fixed), ("95% CI", c + "ece_ci95", partial(ci, fmt=fixed)),
                        ("Brier", c + "brier", fixed), ("overconfidence", c + "overconfidence", signed),
                        ("ECE, top-token", "calibration_max_prob.ece", fixed)], clean=True)


@table("selective", per_attack=True)
def selective(s, attack):
    return by_level(s, attack, "selective prediction, the prediction-rejection ratio (PRR) of each "
                    "probe: 1 = it rejects every wrong answer first, 0 = chance, below 0 = worse (n/a: "
                    "all answers right, or all wrong).", [(registry.label(p),
                    f"selective.{p}.prr", partial(fixed, digits=2)) for p in sorted(s["clean"].get(
                        "selective", {}))], clean=True)


@table("signals", per_attack=True)
def signals(s, attack):
    sec = s["by_attack"][attack]
    rows = [[lab, registry.label(p), fixed(d.get("auroc_wrong")), ci(d.get("auroc_wrong_ci95"), fixed),
             fixed(d["prr"], 2), ci(d.get("prr_ci95"), partial(fixed, digits=2)), "INVERTS" * bool(d.get("inverted"))]
            for lab, e in [("clean", s["clean"])] + levels(sec) for p, d in sorted(e.get("selective", {}).items())]
    return Table(f"Attack {attack}: which signal still tells a wrong answer from a right one. AUROC of the "
                 "probe for flagging a wrong answer (0.5: chance) and PRR, with bootstrap 95% CIs; INVERTS: "
                 "the AUROC's CI lies below 0.5, so the probe ranks wrong answers as more certain.",
                 [level_name(sec), "probe", "AUROC wrong", "95% CI", "PRR", "95% CI", "ranking"], rows,
                 "llrrrrl") if rows else None


@table("prior-questions", per_attack=True)
def prior_questions(s, attack):
    sec = ((s.get("prior") or {}).get("by_attack") or {}).get(attack)
    if not sec or not sec["by_epsilon"]:
        return None
    key = sorted_levels(sec["by_epsilon"])[-1]
    e, phrase = sec["by_epsilon"][key], level_phrase(key, sec["grouped_by"])
    rows = [[q["question"], q["prior_answer"] or "(empty)", str(q["n_items"]), pct(q["agreement_clean"]),
             pct(q["agreement_perturbed"]), signed(q["mean_delta"]),
             f"{signed(q['delta_to_prior'])} ({q['n_to_prior']})", f"{signed(q['delta_not_prior'])} ({q['n_not_prior']})"]
            for q in e.get("by_question") or []]
    return Table(f"Attack {attack}{' at ' * bool(phrase)}{phrase}: the language prior question by question (the prior answer "
                 "depends on the question alone). Share of answers equal to the prior answer, clean and "
                 "perturbed; mean Δ, and mean Δ (pairs) where the perturbed answer is the prior's and elsewhere.",
                 ["question", "prior answer", "items", "agree clean", "agree perturbed", "mean Δ",
                  "Δ, to prior (n)", "Δ, elsewhere (n)"], rows, "lLrrrrrr") if rows else None


@table("pope", per_attack=True)
def pope(s, attack):
    return by_level(s, attack, "POPE's metrics (positive = yes); valid: the share of answers that "
                    "say yes or no (LLaVA's rule counts any other answer as yes).", [(h, f"pope.{k}", pct) for h, k in (
                        ("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("F1", "f1"),
                        ("yes ratio", "yes_ratio"))] + [("valid", "valid_rate", pct)], clean=True)


def side_by_side(runs: dict) -> Table | None:
    """The controls, one row per run folder and level: {name: (summary, run_info)} -> a table of
    Δ with its CI, the CI the verdict reads and the verdict (and the same without the EOS step,
    where the runs have it), beside the floor it sits on; each row names its run's label."""
    answer = any(_has_answer(s, a) for s, _ in runs.values() for a in s["by_attack"])
    cols = [("items", "n_clusters", word), ("mean Δ", "mean_delta", signed), ("95% CI", "ci95", ci),
            ("90% CI, Δ − Δ_null", "tested.ci90", ci), ("verdict", "verdict", word)] + [
        c for c in ANSWER_COLUMNS if answer and c[1] in ("answer_entropy.mean_delta", "answer_entropy.verdict")]
    rows = [[name, a, lab, str(e["n"])] + [fmt(dig(e, f)) for _, f, fmt in cols]
            + [pct(dig(e, ("floor", "share_clean_below_0.01")))]
            for name, (s, _) in runs.items() for a in sorted(s["by_attack"]) for lab, e in levels(s["by_attack"][a])]
    by_label: dict = {}  # runs that share model, hardware, date and commit are named once, together
    for name, (_, info) in runs.items():
        by_label.setdefault(run_label(info).removeprefix("Our run: ").rstrip("."), []).append(name)
    labels = " ".join(f"Our run{'s' * (len(n) > 1)} {', '.join(n)}: {lab}." for lab, n in by_label.items())
    return Table("The controls side by side: an attack built to lower entropy (true-gradient PGD, "
                 "entropy_min), its mirror (entropy_max) and the study's proxy, at the same ε; CIs "
                 "draw images and questions, crossed.", ["run", "attack", "ε", "pairs"] + [c[0] for c in cols] + ["clean H < 0.01"],
                 rows, "lllrrrrrl" + "rl" * answer + "r", "controls", label=labels) if rows else None


def _keys(path) -> tuple:
    return tuple(path) if isinstance(path, (tuple, list)) else tuple(path.split("."))


def dig(data, path):
    """data[a][b]... for the path "a.b" (or the tuple or list ("a", "b"), for keys with a dot); None
    where a key is missing."""
    for key in _keys(path):
        data = data.get(key) if isinstance(data, dict) else None
    return data


FORMATS = {"value": value, "pct": pct, "num": num, "signed": signed, "fixed": fixed, "word": word}
