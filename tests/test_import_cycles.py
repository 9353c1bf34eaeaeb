"""The installed package has no import cycle: every module's imports (at module level and inside
functions alike) form a graph without strongly connected components of more than one module (#32)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # the import names pyproject.toml maps onto the top-level folders
    "labelcast": "labelcast",
    "labelcast.codec": "codec",
    "labelcast.sender": "sender",
    "labelcast.receiver": "receiver",
    "labelcast.profiles": "profiles",
    "labelcast.datasets": "datasets",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg, folder in PACKAGES.items():
        for f in (ROOT / folder).rglob("*.py"):
            parts = list(f.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = f
    return mods


def _targets(node: ast.AST, here: list[str], mods: dict) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
    module = ".".join(p for p in (base, node.module or "") if p)
    subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods]
    # `from . import name` of a submodule imports that submodule, not what the package itself holds
    return subs if subs and len(subs) == len(node.names) else [module, *subs]


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        here = m.split(".") if f.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(ast.parse(f.read_text())):
            for t in _targets(node, here, mods):
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m:
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_installed_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_layers_import_only_what_the_design_allows():
    """docs: the import rules are the architecture (the lean receiver never imports the sender; the codec and
    the profiles never import either side)."""
    graph = import_graph()
    forbidden = {
        "labelcast.receiver": ("labelcast.sender",),
        "labelcast.codec": ("labelcast.sender", "labelcast.receiver", "labelcast.datasets"),
        "labelcast.profiles": ("labelcast.sender", "labelcast.receiver", "labelcast.codec", "labelcast.datasets"),
    }
    bad = [
        (m, t)
        for m, targets in graph.items()
        for layer, banned in forbidden.items()
        if m == layer or m.startswith(layer + ".")
        for t in targets
        if any(t == b or t.startswith(b + ".") for b in banned)
    ]
    assert bad == []
