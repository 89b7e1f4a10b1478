"""Tables as markdown and LaTeX, for README.md and paper/paper.tex (scripts/render_docs.py).

    from confidence_trap.docs.render import latex, markdown
    markdown(table), latex(table)      # a Table of confidence_trap/analysis/tables.py (stated=run_label(info):
                                       # the page states that run once, so its tables do not)
    original(study)                    # the original study's table, labelled as the study's
    kv(name, spec, data)               # a table of one JSON file, as paper/quantities.yaml says

confidence_trap/analysis/tables.py builds the tables and formats every number; this module only lays them out,
and builds the two kinds of table that are the docs' alone: the original study's numbers and the
quantity tables of the benchmark, training and GPU files.
"""
from __future__ import annotations

import re

from confidence_trap.analysis.tables import FORMATS, Table, dig, fixed, value

TEX = {**{c: "\\" + c for c in "&%$#_{}"}, "\\": r"\textbackslash{}", "~": r"\textasciitilde{}",
       "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
# A number standing alone (not the 1.5 of LLaVA-1.5-7B, nor a date's -11): signed or e-notation
NUMBER = re.compile(r"(?<![\w.])([+-]?)(\d+(?:\.\d+)?)(?:e([+-]\d+))?(?![\w.])")


def tex(s) -> str:
    """Plain text as LaTeX: specials escaped, signed and e-notation numbers in math mode."""
    s = re.sub(r"-(?=-)", "-{}", "".join(TEX.get(ch, ch) for ch in str(s)))  # --flag, no en dash
    return NUMBER.sub(lambda m: m[0] if not (m[1] or m[3]) else f"${m[1]}{m[2]}" + (
        rf"\times10^{{{int(m[3])}}}" if m[3] else "") + "$", s)


def caption(t: Table, stated: str = "") -> str:
    """The table's caption, without its provenance where the page has `stated` it once already."""
    return t.title if stated and t.label == stated else t.caption


def markdown(t: Table, stated: str = "") -> str:
    """A table as markdown: its caption in italics, then the grid."""
    rule = ["---:" if a == "r" else "---" for a in t.alignment()]
    return "\n".join([f"*{caption(t, stated)}*", ""] + ["| " + " | ".join(r) + " |" for r in [t.headers, rule, *t.rows]])


def table_key(name: str, attack: str | None = None) -> str:
    """The LaTeX label of a table, after "tab:": "delta-corruption-gaussian_noise"."""
    return re.sub(r"\W+", "-", f"{name} {attack or ''}".strip())


def latex(t: Table, stated: str = "") -> str:
    """A table as a LaTeX table float at the text's own size: never shrunk to fit (a table too wide
    for the page is cut to its key columns with analysis.tables.columns in the template)."""
    def head(h, a):  # a long header on two lines of about equal length: fewer tables shrink
        w = h.split(" ")
        cut = min(range(1, len(w)), key=lambda i: abs(len(" ".join(w[:i])) - len(h) / 2), default=0)
        return tex(h) if len(h) <= 10 or not cut else (
            rf"\shortstack[{a.lower()}]{{{tex(' '.join(w[:cut]))}\\{tex(' '.join(w[cut:]))}}}")
    key = table_key(t.name, t.attack)
    return "\n".join([
        r"\begin{table}\centering\small", rf"\caption{{{tex(caption(t, stated))}}}\label{{tab:{key}}}",
        r"\begin{tabular}{" + t.alignment().replace("L", r"p{0.6\linewidth}") + r"}\toprule",
        " & ".join(map(head, t.headers, t.alignment())) + r" \\\midrule",
        *[" & ".join(map(tex, r)) + r" \\" for r in t.rows], r"\bottomrule\end{tabular}",
        r"\end{table}"])


def original(study: dict) -> Table:
    """The original study's table from paper/original_study.json's dict, labelled as the study's."""
    return Table("Entropy Delta Δ at each ε.", ["ε", "reported Δ"], [
        [value(r["epsilon"]), fixed(r["delta"], study["decimals"], sign=r["delta"] != 0)]
        for r in study["rows"]], name="original", label=f"The original study's numbers, not ours: "
        f"{study['model']}, {study['dtype']} on {study['hardware']}; {study['attack']}; "
        f"{study['runs']}; {study['label']}.")


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
        rows = [[fill(q)] + [cell(c, dig(dig(data, p), c[1])) for c in spec["columns"]]
                for q, p in spec["rows"] if dig(data, p) is not None]
    else:
        headers = ["quantity", "value"]
        rows = [[fill(r[0]), cell(r, v)] for r in spec["rows"] if (v := dig(data, fill(r[1]))) is not None]
    return Table(fill(spec["title"]), headers, rows, "" if "columns" in spec else "lL", name,
                 label=fill(spec.get("label", "")))
