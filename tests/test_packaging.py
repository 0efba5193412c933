"""The newcomer path: ``pip install -e .`` installs every package the code imports.

A module imported at the top of a file (not inside a function, where optional
extras such as asyncpg and redis are imported) must come from a distribution
named in ``[project] dependencies``; otherwise ``caredesk`` fails on a fresh
install with ``ModuleNotFoundError``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OWN = {"bot", "handlers", "jobs", "storage", "templates", "tests", "bench"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:  # module level only, including under `if`/`try` at the top
        for inner in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(inner, ast.Import):
                names.update(alias.name.split(".")[0] for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                names.add(inner.module.split(".")[0])
    return {n for n in names if n not in OWN and n not in sys.stdlib_module_names and n != "__future__"}


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_normalise(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}
    distributions = packages_distributions()
    missing: dict[str, list[str]] = {}
    for folder in ("bot", "handlers", "jobs", "storage"):
        for path in (REPO / folder).rglob("*.py"):
            for module in _top_level_imports(path):
                names = {_normalise(d) for d in distributions.get(module, [module])}
                if not names & declared:
                    missing.setdefault(module, []).append(str(path.relative_to(REPO)))
    assert not missing, f"imported but not in pyproject.toml's dependencies: {missing}"
