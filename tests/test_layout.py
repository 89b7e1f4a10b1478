"""The tree's shape: imports flow one way with no cycle, experiments/ holds entry points only, and
no source module outgrows the cap.

The import graph is built from every `import` and `from ... import` in the source (function-local
ones included), read with `ast`, between the repository's own modules; `from package import name`
counts as an import of package.name where that is a module, else of the package.
"""
import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = ("tests", ".git", "models/tiny-llava", "build", ".ci")
MAX_LINES = 450  # the hard cap; about 400 is the aim


def source_files() -> dict[str, str]:
    """{module name: path} of every .py outside tests/ and the tiny model's folder."""
    out = {}
    for root, dirs, files in os.walk(REPO):
        rel = os.path.relpath(root, REPO).replace(os.sep, "/")
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not any(
            f"{rel}/{d}".lstrip("./").startswith(s) or d == s for s in SKIP) and d != "__pycache__")
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                mod = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                out[mod[:-len(".__init__")] if mod.endswith(".__init__") else mod] = path
    return out


def imports_of(module: str, path: str, known: set) -> set:
    """The repository modules `module` imports, anywhere in its body."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                up = parts[:len(parts) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # a.b.c -> the deepest repository module it names
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def graph() -> dict[str, set]:
    files = source_files()
    known = set(files)
    return {m: imports_of(m, p, known) for m, p in files.items()}


def cycles(g: dict[str, set]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_local_imports():
    """The reader must catch an import hidden in a function body, or the cycle test proves nothing."""
    g = graph()
    assert "confidence_trap.runner.pipeline" in g["confidence_trap.cli"]
    assert any(m.startswith("confidence_trap.models") for m in g["confidence_trap.runner.pipeline"])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_nothing_outside_experiments_and_tests_imports_experiments():
    offenders = {m: sorted(w for w in ws if w == "experiments" or w.startswith("experiments."))
                 for m, ws in graph().items() if not m.startswith("experiments")}
    assert {m: ws for m, ws in offenders.items() if ws} == {}


def test_every_script_in_experiments_is_an_entry_point():
    folder = os.path.join(REPO, "experiments")
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py") and f != "__init__.py":
            text = open(os.path.join(folder, f), encoding="utf-8").read()
            assert 'if __name__ == "__main__"' in text, f


def test_no_source_module_over_the_cap():
    long = {m: n for m, p in source_files().items()
            if (n := sum(1 for _ in open(p, encoding="utf-8"))) > MAX_LINES}
    assert long == {}
