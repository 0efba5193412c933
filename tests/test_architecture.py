"""The floor plan holds: no import cycle anywhere in the bot's own code.

pyproject.toml's import-linter contracts (``lint-imports`` in .ci/run) keep the
layers pointing down and sibling packages acyclic; this test looks at every
module of ``bot``, ``handlers``, ``jobs`` and ``storage`` (imports made only
for type checking included) and fails naming each cycle, import by import. It
also makes sure every module is in one of the contract's layers, so a new
module cannot slip past them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import grimp

ROOTS = ("bot", "handlers", "jobs", "storage")
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.find_modules_directly_imported_by(target)))))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return groups


def _describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    members = set(group)
    lines = [f"a cycle of {len(group)} modules:"]
    for importer in group:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(f"l.{d['line_number']}" for d in details) or "?"
            lines.append(f"  {importer} -> {imported} ({where})")
    return "\n".join(lines)


def test_the_import_graph_has_no_cycle() -> None:
    graph = grimp.build_graph(*ROOTS, cache_dir=None)
    assert len(graph.modules) > 50  # the whole code base was read
    cycles = _cycles(graph)
    assert not cycles, "\n\n".join(_describe(graph, group) for group in cycles)


def test_every_module_is_in_a_layer() -> None:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    [layers] = [c["layers"] for c in contracts if c["type"] == "layers"]
    names = {name.strip().strip("()") for layer in layers for name in re.split(r"[:|]", layer)}
    graph = grimp.build_graph(*ROOTS, cache_dir=None)
    outside = [m for m in sorted(graph.modules)
               if m not in ROOTS and not any(m == n or m.startswith(n + ".") for n in names)]
    assert not outside, f"not in any layer of pyproject.toml's layers contract: {outside}"


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b", line_number=1, line_contents="import p.b")
    graph.add_import(importer="p.b", imported="p.a", line_number=2, line_contents="import p.a")
    graph.add_import(importer="p.c", imported="p.a", line_number=3, line_contents="import p.a")
    assert _cycles(graph) == [["p.a", "p.b"]]
    assert "p.a -> p.b (l.1)" in _describe(graph, ["p.a", "p.b"])
