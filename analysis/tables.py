"""Tables of a run, built once from summary.json, for the report, README, paper and notebook.

    from analysis.tables import build
    for t in build(summary, run_info):     # every registered table, each labelled with the run
        print(t.markdown())                # or t.latex(); analysis/report.py writes them as text

Adding a table is one function: decorate it with @table(name) (or @table(name, per_attack=True)
for one per attack), take the summary (and the attack name), return a Table of strings made by
the formatters below (by_level() makes the usual row-per-ε one), or None when the summary has
nothing for it. build() calls the tables in the order they are defined and labels each with
run_label(): model, dtype, hardware, date and commit. original() is the one table not of ours.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from analysis.summary import level_label, sorted_levels


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


def value(v) -> str:
    """A configuration or metadata value as a cell."""
    if isinstance(v, (bool, list, tuple)):
        return ("yes" if v else "no") if isinstance(v, bool) else ", ".join(map(value, v))
    return "default" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


TEX = {**{c: "\\" + c for c in "&%$#_{}"}, "\\": r"\textbackslash{}", "~": r"\textasciitilde{}",
       "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
# A number standing alone (not the 1.5 of LLaVA-1.5-7B, nor a date's -11): signed or e-notation
NUMBER = re.compile(r"(?<![\w.])([+-]?)(\d+(?:\.\d+)?)(?:e([+-]\d+))?(?![\w.])")


def tex(s) -> str:
    """Plain text as LaTeX: specials escaped, signed and e-notation numbers in math mode."""
    s = re.sub(r"-(?=-)", "-{}", "".join(TEX.get(ch, ch) for ch in str(s)))  # --flag, no en dash
    return NUMBER.sub(lambda m: m[0] if not (m[1] or m[3]) else f"${m[1]}{m[2]}" + (
        rf"\times10^{{{int(m[3])}}}" if m[3] else "") + "$", s)


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

    def _align(self) -> str:
        return self.align or "l" + "r" * (len(self.headers) - 1)

    def markdown(self) -> str:
        rule = ["---:" if a == "r" else "---" for a in self._align()]
        return "\n".join([f"*{self.caption}*", ""] + ["| " + " | ".join(r) + " |"
                                                       for r in [self.headers, rule, *self.rows]])

    def latex(self) -> str:
        def head(h, a):  # a long header on two lines of about equal length: fewer tables shrink
            w = h.split(" ")
            cut = min(range(1, len(w)), key=lambda i: abs(len(" ".join(w[:i])) - len(h) / 2), default=0)
            return tex(h) if len(h) <= 10 or not cut else (
                rf"\shortstack[{a.lower()}]{{{tex(' '.join(w[:cut]))}\\{tex(' '.join(w[cut:]))}}}")
        key = re.sub(r"\W+", "-", f"{self.name} {self.attack or ''}".strip())
        return "\n".join([
            r"\begin{table}\centering\small", rf"\caption{{{tex(self.caption)}}}\label{{tab:{key}}}",
            r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",  # only if too wide
            r"\begin{tabular}{" + self._align().replace("L", r"p{0.6\linewidth}") + r"}\toprule",
            " & ".join(map(head, self.headers, self._align())) + r" \\\midrule",
            *[" & ".join(map(tex, r)) + r" \\" for r in self.rows], r"\bottomrule\end{tabular}}",
            r"\end{table}"])


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
    return "severity" if section["grouped_by"] == "severity" else "ε"


def by_level(s: dict, attack: str, title: str, columns: list, align="") -> Table | None:
    """A row per ε (or severity) of one attack, columns [(header, dotted field of its by_epsilon
    entry, formatter)]; a level whose entry lacks the first field is left out."""
    sec = s["by_attack"][attack]
    rows = [[lab] + [fmt(dig(e, f)) for _, f, fmt in columns] for lab, e in levels(sec)
            if columns[0][1].split(".")[0] in e]
    return Table(f"Attack {attack}: {title}", [level_name(sec)] + [c[0] for c in columns], rows,
                 align) if rows else None


PROBE_NAMES = {"max_entropy": "max token entropy", "first_token_entropy": "first-token entropy",
               "mean_max_prob": "mean top-token prob.", "min_max_prob": "min top-token prob.",
               "seq_nll": "sequence NLL", "perplexity": "perplexity"}   # a probe's name in a table


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


@table("delta", per_attack=True)
def delta(s, attack):
    return by_level(s, attack, "entropy change Δ = H_perturbed − H_clean (mean token entropy, "
                    "nats), paired by image and question; the 95% CI is a bootstrap of the mean.", [
                        ("pairs", "n", str), ("mean Δ", "mean_delta", signed), ("95% CI", "ci95", ci),
                        ("median Δ", "median_delta", signed), ("sd Δ", "std_delta", num),
                        ("Wilcoxon p", "wilcoxon_p", pval), ("Δ < 0", "frac_negative", pct),
                        ("behaviour", "behaviour", str)], "lrrrrrrrl")


@table("filter", per_attack=True)
def entropy_filter(s, attack):
    sec = s["by_attack"][attack]
    first = levels(sec)[0][1]["pass_rate"]
    rows = [["τ (nats)"] + [num(first[p]["tau"]) for p in first],
            ["clean"] + [pct(first[p]["clean"]) for p in first]]
    rows += [[lab] + [pct(e["pass_rate"][p]["perturbed"]) + " INV" * e["inverted_safety"][p]
                      for p in first] for lab, e in levels(sec)]
    return Table(f"Attack {attack}: the entropy filter, share of inputs passing (an input passes "
                 "when H ≤ τ, τ a percentile of the clean entropies). INV: inverted safety, "
                 "perturbed inputs pass more often than clean ones.",
                 [level_name(sec)] + [f"τ = {p}" for p in first], rows)


@table("probes", per_attack=True)
def probes(s, attack):
    sec = s["by_attack"][attack]
    rows = [[lab, PROBE_NAMES.get(p, p), signed(d["mean_delta"]), ci(d["ci95"]), fixed(d["auroc_detect"]),
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


def original(study: dict) -> Table:
    """The original study's table from paper/original_study.json's dict, labelled as the study's."""
    return Table("Entropy Delta Δ at each ε.", ["ε", "reported Δ"], [
        [value(r["epsilon"]), fixed(r["delta"], study["decimals"], sign=r["delta"] != 0)]
        for r in study["rows"]], name="original", label=f"The original study's numbers, not ours: "
        f"{study['model']}, {study['dtype']} on {study['hardware']}; {study['attack']}; "
        f"{study['runs']}; {study['label']}.")


def dig(data, path: str):
    for key in path.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def kv(name: str, spec: dict, data: dict, **names) -> Table:
    """A table of one JSON file from its spec in paper/quantities.yaml (which says how): rows of
    quantity and value, or a grid; {field} in the spec's text is that field's value or a name."""
    def fill(text):  # {field}: that field's value, or the value of a name
        return re.sub(r"\{([\w.]+)\}", lambda m: "n/a" if (v := names.get(m[1], dig(data, m[1]))) is None
                      else value(v), text)

    def cell(item, v):  # item: [header, field] or [header, field, formatter]
        return FORMATS[item[2] if len(item) > 2 else "value"](v)
    if "columns" in spec:  # a grid: a row per group of fields, a column per field in the group
        headers = [spec["header"]] + [c[0] for c in spec["columns"]]
        rows = [[fill(q)] + [cell(c, dig(data, f"{p}.{c[1]}")) for c in spec["columns"]]
                for q, p in spec["rows"] if dig(data, p) is not None]
    else:
        headers = ["quantity", "value"]
        rows = [[fill(r[0]), cell(r, v)] for r in spec["rows"] if (v := dig(data, fill(r[1]))) is not None]
    return Table(fill(spec["title"]), headers, rows, "" if "columns" in spec else "lL", name,
                 label=fill(spec.get("label", "")))


FORMATS = {"value": value, "pct": pct, "num": num, "signed": signed, "fixed": fixed}
