"""How the docs are written: the pieces (plain text, Table, Figure, Code), the number formats, and
their markdown and LaTeX forms.

    from paper.markup import Table, md, tex
    t = Table("kv run", "The run.", ["quantity", "value", "field"], [["seed", "0", "`config.seed`"]])
    md(["Some *text*.", t]), tex(["Some *text*.", t])

Text pieces use a little markdown (`code`, **bold**, *emphasis*, [link](url), $math$), which
tex_text turns into LaTeX; md_to_tex turns the paper's markdown template (paper/paper.md.in)
into the LaTeX body, so both forms of the paper hold the same prose. Every table keeps an id and
the file its numbers come from, as a comment before it (tests/test_docs.py reads them back).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PLACEHOLDER = re.compile(r"\{\{([\w-]+)(?:\|(.*?))?\}\}", re.S)   # {{name}} or {{name|argument}}


@dataclass
class Table:
    id: str                 # "delta proxy", "kv run", ...: what tests/test_docs.py checks it by
    caption: str
    headers: list
    rows: list
    source: str = ""        # the file its numbers come from, relative to the root
    align: str = ""         # LaTeX column letters; default: first column l, the rest r


@dataclass
class Figure:
    path: str               # relative to the rendered document
    caption: str


@dataclass
class Code:
    text: str


def signed(x) -> str:
    """Δ-like values: +0.012; small ones with two significant digits (+1.6e-05), never +0.000."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:+.3f}" if abs(x) >= 0.01 else f"{x:+.1e}"


def plain(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def pval(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.1e}" if x < 1e-4 else f"{x:.4f}"


def ci(pair, fmt=signed) -> str:
    return "n/a" if pair is None else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def value_text(v) -> str:
    """A config or metadata value as a table cell."""
    if v is None:
        return "default"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(value_text(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def dig(data, path: str):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def kv_table(id_, caption, data, rows, source, skip_none=False) -> Table:
    """rows: [(label, dotted field[, formatter])]: one row per field, its path in the third column.
    A row whose field is absent is left out when it has a formatter or `skip_none` is set."""
    body = []
    for label, path, *fmt in rows:
        v = dig(data, path)
        if v is None and (fmt or skip_none):
            continue
        body.append([label, (fmt[0] if fmt else value_text)(v), f"`{path}`"])
    return Table(f"kv {id_}", caption, ["quantity", "value", "field"], body, source,
                 r"p{0.28\linewidth}p{0.38\linewidth}l")


def _letters(t: Table) -> list:
    """One alignment letter per column, from t.align ("p{...}" counts as one)."""
    return re.findall(r"[lrc]|p\{[^}]*\}", t.align) if t.align else ["l"] + ["r"] * (len(t.headers) - 1)


def md(pieces: list) -> str:
    out = []
    for p in pieces:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, Table):
            lines = [f"<!-- table: {p.id} | source: {p.source} -->", f"*{p.caption}*", "",
                     "| " + " | ".join(p.headers) + " |",
                     "| " + " | ".join("---:" if a == "r" else "---" for a in _letters(p)) + " |"]
            lines += ["| " + " | ".join(r) + " |" for r in p.rows]
            out.append("\n".join(lines))
        elif isinstance(p, Figure):
            out.append(f"![{p.caption}]({p.path})\n\n*{p.caption}*")
        elif isinstance(p, Code):
            out.append("```text\n" + p.text + "\n```")
    return "\n\n".join(out)


TEX_ESCAPE = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "$": r"\$", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
# A number standing alone: not the 1.5 of LLaVA-1.5-7B, the 80 of 2.80GHz or the 2 of p25.
NUMBER = re.compile(r"(?<![\w.\-−])[+\-−]?\d+(?:\.\d+)?(?:e[+\-]\d+)?(?!\w|\.\d)")


def tex_escape(s: str, quotes=True) -> str:
    """Escape LaTeX's special characters; in prose, straight double quotes become `` and ''."""
    s = "".join(TEX_ESCAPE.get(ch, ch) for ch in s)
    if not quotes:
        return s
    return re.sub(r'"', "''", re.sub(r'(^|(?<=[\s(\[]))"', "``", s))


def tex_number(tok: str) -> str:
    """+1.6e-05 -> $+1.6\\times10^{-5}$; -0.042 -> $-0.042$ (a true minus sign)."""
    m = re.fullmatch(r"([+\-−]?[\d.]+)e([+\-]\d+)", tok)
    if m:
        return f"${m.group(1)}\\times10^{{{int(m.group(2))}}}$"
    return f"${tok.replace('−', '-')}$"


INLINE = re.compile(r"(\$[^$]+\$|`[^`]*`|\*\*[^*]+\*\*|\*[^*\s][^*]*\*|\[[^\]]+\]\([^)\s]+\))")


def tex_text(s: str, numbers=False) -> str:
    """Escape for LaTeX; $math$ kept, `code` -> \\texttt, **b** -> \\textbf, *e* -> \\emph,
    [text](url) -> \\href; with `numbers`, every number goes into math mode (true minus signs)."""
    out = []
    for part in INLINE.split(s):
        if not part:
            continue
        if INLINE.fullmatch(part):
            if part.startswith("$"):
                out.append(part)
            elif part.startswith("`"):
                # "-{}": no "--" ligature, so --flags keep both dashes
                out.append(r"\texttt{" + tex_escape(part[1:-1], quotes=False).replace("-", "-{}") + "}")
            elif part.startswith("**"):
                out.append(r"\textbf{" + tex_text(part[2:-2], numbers) + "}")
            elif part.startswith("*"):
                out.append(r"\emph{" + tex_text(part[1:-1], numbers) + "}")
            else:
                text, url = re.fullmatch(r"\[(.*)\]\((.*)\)", part).groups()
                out.append(r"\href{" + url.replace("%", r"\%").replace("#", r"\#") + "}{"
                           + tex_text(text, numbers) + "}")
        elif numbers:
            pos, chunk = 0, []
            for m in NUMBER.finditer(part):
                chunk += [tex_escape(part[pos:m.start()]), tex_number(m.group())]
                pos = m.end()
            out.append("".join(chunk) + tex_escape(part[pos:]))
        else:
            out.append(tex_escape(part))
    return "".join(out)


def tex_header(h: str, first: bool, narrow: bool) -> str:
    """A header cell; in a wide table, long headers go onto short lines (\\shortstack)."""
    words, lines = h.split(" "), [""]
    if not narrow or len(h) <= 10:
        return tex_text(h)
    for w in words:
        if lines[-1] and len(lines[-1]) + 1 + len(w) > 10:
            lines.append(w)
        else:
            lines[-1] = f"{lines[-1]} {w}".strip()
    return r"\shortstack[" + ("l" if first else "r") + "]{" + r"\\".join(tex_text(x) for x in lines) + "}"


def tex(pieces: list) -> str:
    out = []
    for p in pieces:
        if isinstance(p, str):
            out.append(tex_text(p))
        elif isinstance(p, Table):
            cols = "".join(_letters(p))
            body = [" & ".join(tex_header(h, i == 0, len(p.headers) > 6)
                               for i, h in enumerate(p.headers)) + r" \\", r"\midrule"]
            body += [" & ".join(tex_text(c, numbers=True) for c in r) + r" \\" for r in p.rows]
            lines = [f"% table: {p.id} | source: {p.source}", r"\begin{table}[htbp]", r"\centering",
                     r"\caption{" + tex_text(p.caption) + "}",
                     r"\label{tab:" + re.sub(r"[^\w]+", "-", p.id) + "}", r"\small",
                     # shrink a table only when it is wider than the text
                     r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
                     r"\begin{tabular}{" + cols + "}", r"\toprule", *body, r"\bottomrule",
                     r"\end{tabular}}", r"\end{table}"]
            out.append("\n".join(lines))
        elif isinstance(p, Figure):
            out.append("\n".join([r"\begin{figure}[htbp]", r"\centering",
                                  r"\includegraphics[width=0.8\linewidth]{" + p.path + "}",
                                  r"\caption{" + tex_text(p.caption) + "}", r"\end{figure}"]))
        elif isinstance(p, Code):
            out.append("\\begin{verbatim}\n" + p.text + "\n\\end{verbatim}")
    return "\n\n".join(out)


PLACEHOLDER_LINE = re.compile(r"\{\{[\w-]+(?:\|.*?)?\}\}")


def md_to_tex(text: str, expand) -> str:
    """The paper's markdown template -> LaTeX body. Knows what paper.md.in uses: # title,
    ## section, ### subsection, ## Abstract, paragraphs, "- " lists, $$ display math $$,
    ```fences```, and {{placeholders}} (alone on a line: any pieces; inside a paragraph: text).
    expand(name, arg) -> pieces."""
    lines, out, i, in_abstract = text.split("\n"), [], 0, False

    def inline(para: str) -> str:
        chunks, pos = [], 0
        for m in PLACEHOLDER.finditer(para):
            chunks.append(tex_text(para[pos:m.start()]))
            pieces = expand(m.group(1), m.group(2))
            chunks.append(tex_text(" ".join(p for p in pieces if isinstance(p, str)), numbers=True))
            pos = m.end()
        return "".join(chunks) + tex_text(para[pos:])

    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("```"):
            j = lines.index("```", i + 1)
            out.append("\\begin{verbatim}\n" + "\n".join(lines[i + 1:j]) + "\n\\end{verbatim}")
            i = j + 1
            continue
        if line.startswith("$$"):
            j = i
            while not lines[j].rstrip().endswith("$$") or (j == i and lines[j].strip() == "$$"):
                j += 1
            body = "\n".join(lines[i:j + 1]).strip()[2:-2].strip()
            out.append("\\[\n" + body + "\n\\]")
            i = j + 1
            continue
        if PLACEHOLDER_LINE.fullmatch(line.strip()):
            m = PLACEHOLDER.fullmatch(line.strip())
            out.append(tex(expand(m.group(1), m.group(2))))
            i += 1
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            title = line[level:].strip()
            if in_abstract:
                out.append("\\end{abstract}")
                in_abstract = False
            if level == 1:
                out.append("\\title{" + inline(title) + "}\n\\maketitle")
            elif title == "Abstract":
                out.append("\\begin{abstract}")
                in_abstract = True
            else:
                out.append(("\\section{" if level == 2 else "\\subsection{") + inline(title) + "}")
            i += 1
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and (lines[i].startswith("- ") or lines[i].startswith("  ")):
                if lines[i].startswith("- "):
                    items.append(lines[i][2:].strip())
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("\\begin{itemize}\n" + "\n".join("\\item " + inline(t) for t in items)
                       + "\n\\end{itemize}")
            continue
        j = i
        while j < len(lines) and lines[j].strip() and not lines[j].startswith(("#", "- ", "```", "$$")):
            j += 1
        out.append(inline(" ".join(x.strip() for x in lines[i:j])))
        i = j
    if in_abstract:
        out.append("\\end{abstract}")
    return "\n\n".join(out)
