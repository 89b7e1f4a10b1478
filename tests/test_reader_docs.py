"""What a new reader meets: a short README that names every script and only commands that exist,
a bibliography every citation resolves in, and one source for the findings (pytest -q tests/test_reader_docs.py).

README.md, docs/RESULTS.md and paper/paper.tex being current is tests/test_docs.py's
test_committed_docs_are_current (render_docs --check covers all three); compiling the paper
with bibtex is its slow test."""
import json
import os
import re
import subprocess

from confidence_trap.analysis.findings import takeaways
from confidence_trap.analysis.report import render_report
from confidence_trap.docs.build import runs_in

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


def test_readme_is_short():
    assert len(read("README.md").splitlines()) <= 220


def test_readme_names_every_script_and_both_test_tiers():
    readme = read("README.md")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    scripts = [p for p in tracked if p.endswith(".sh") and p.startswith("scripts/")] + [
        p for p in tracked if p.endswith(".py") and p.split("/")[0] in ("experiments", "scripts", "models")
        and "__main__" in read(p)]
    assert scripts, "no script found"
    for path in scripts:
        assert os.path.basename(path) in readme, f"the README's layout does not name {path}"
    assert "configs/tasks/" in readme or "`tasks/`" in readme
    assert "fast tier" in readme and "slow tier" in readme and "-m slow" in readme


def test_every_python_command_in_the_readme_runs_an_existing_file():
    for cmd in re.findall(r"^(?:python3?|bash) (\S+)", read("README.md"), re.M):
        if cmd != "-m":
            assert os.path.exists(os.path.join(REPO, cmd)), cmd
    for cmd in re.findall(r"--(?:config|task) (\S+)", read("README.md")):
        assert os.path.exists(os.path.join(REPO, cmd)), cmd


def test_every_citation_resolves_and_the_bibliography_is_real():
    bib = read("paper/refs.bib")
    keys = set(re.findall(r"^@\w+\{([\w:-]+),", bib, re.M))
    assert len(keys) >= 12
    cited = {k.strip() for group in re.findall(r"\\cite[pt]?\{([^}]*)\}", read("paper/paper.tex.j2"))
             for k in group.split(",")}
    assert cited and not cited - keys, f"cited but not in refs.bib: {sorted(cited - keys)}"
    assert "\\bibliography{refs}" in read("paper/paper.tex.j2")
    for doi in re.findall(r"doi\s*=\s*\{([^}]*)\}", bib):  # DOIs only in their registered form
        assert re.fullmatch(r"10\.\d{4,9}/\S+", doi), doi


def test_one_source_for_the_findings():
    """The report's findings, the README's and the paper's are the same sentences."""
    with open(os.path.join(REPO, "results", "summary.json"), encoding="utf-8") as f:
        s = json.load(f)
    with open(os.path.join(REPO, "results", "run.json"), encoding="utf-8") as f:
        info = json.load(f)
    found = takeaways(s, info, runs_in(os.path.join(REPO, "results", "controls")))
    assert 3 <= len(found) <= 5  # issue 22: three to five sentences
    readme, paper = read("README.md"), read("paper/paper.tex")
    for sentence in found:
        assert f"- {sentence}" in readme
        assert sentence[:30].replace("%", "\\%") in paper
    report = " ".join(render_report(s, info).split())
    for sentence in takeaways(s, info):  # the report has no controls beside it
        assert " ".join(sentence.split()) in report


def test_a_table_cut_to_its_key_columns_keeps_their_order_and_says_where_the_rest_is():
    """The paper prints wide tables cut to the columns a page has room for, never shrunk."""
    import pytest

    from confidence_trap.analysis.tables import Table, columns

    t = Table("Δ by level.", ["ε", "pairs", "mean Δ", "verdict"], [["0.1", "5", "+0.1", "rises"]], "lrrl", "delta")
    cut = columns(t, "verdict", "ε", "Δ, no EOS")  # asked out of order, one column absent
    assert cut.headers == ["ε", "verdict"] and cut.rows == [["0.1", "rises"]] and cut.align == "ll"
    assert "docs/RESULTS.md" in cut.title and cut.name == "delta"
    with pytest.raises(ValueError, match="none of the columns"):
        columns(t, "items")
