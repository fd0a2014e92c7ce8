"""The package's import graph, read from the source: no module reaches itself.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a cycle hidden
by a late import is still a cycle in the design (two modules that each need the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import aibridge_cli

ROOT = Path(aibridge_cli.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_late_import(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    late = tmp_path / "late.py"
    late.write_text("def f():\n    from .cli import app\n", encoding="utf-8")
    assert imports_of("aibridge_cli.late", late, {"aibridge_cli.cli"}) == {"aibridge_cli.cli"}


# The areas, lowest first: each may import only itself and the areas below it. The
# commands (``cli`` and each area's ``command``) sit above them all.
LAYERS = [
    "top",
    "mcp_tools",
    "providers",
    "proxy",
    "fakes",
    "sessions",
    "sim",
    "fuzz",
    "views",
    "pytest_plugin",
]


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    if parts[-1] in ("cli", "command"):
        return None
    return LAYERS.index(parts[1] if len(parts) > 2 else "top")


def test_each_area_imports_only_the_areas_below_it() -> None:
    upward = [
        f"{a} -> {b}"
        for a, targets in import_graph().items()
        for b in targets
        if (low := layer_of(a)) is not None and (high := layer_of(b)) is not None and high > low
    ]
    assert upward == []
