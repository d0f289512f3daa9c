"""The core's layout holds: imports point down the journey's layers, no cycles, no private names
borrowed across modules, no runtime module past the size one reads in a sitting.

Imports are read from the source (module-level, function-level and TYPE_CHECKING alike), so a
lazy import cannot hide a cycle. The order is the one docs/layout.md states.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lambda_src" / "lakeroute"
CORE = PACKAGE / "core"
# Lowest first; a package may import its own modules (not another package of the same layer;
# the bottom modules may import each other) and any lower layer.
LAYERS: list[set[str]] = [
    {"errors", "objects", "sql_text", "startup"},
    {"routes", "ledger"},
    {"read"},
    {"shape"},
    {"write"},
    {"maintain"},
    {"pipeline"},
    {"lane"},
]
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every import statement of the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def _core_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for m, p in files.items():
        for target, names in _imports(p):
            for t in [target, *(f"{target}.{n}" for n in names)]:
                if t in files and t != m:
                    graph[m].add(t)
    return graph


def _layer(module: str) -> tuple[int, str]:
    top = module.split(".")[2]  # lakeroute.core.<top>
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i, top
    raise AssertionError(f"{module}: core/{top} is in no layer; add it to LAYERS and docs/layout.md")


def test_every_core_package_and_module_has_a_layer() -> None:
    for p in CORE.iterdir():
        if p.name == "__init__.py" or p.name.startswith((".", "__pycache__")):
            continue
        _layer(f"lakeroute.core.{p.stem}")


def test_no_import_cycles_in_core() -> None:
    graph = _core_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []


def _upward(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for m, targets in graph.items():
        if m == "lakeroute.core":
            continue
        mine, mine_top = _layer(m)
        for t in targets:
            if t == "lakeroute.core":
                wrong.append(f"{m} imports lakeroute.core itself")
                continue
            theirs, their_top = _layer(t)
            if theirs > mine or (theirs == mine and their_top != mine_top and mine > 0):
                wrong.append(f"{m} -> {t}")
    return wrong


def test_core_imports_point_down_the_layers() -> None:
    assert _upward(_core_graph()) == []


def test_the_core_imports_no_adapter_shell_or_cdk() -> None:
    bad = []
    for p in CORE.rglob("*.py"):
        for target, _ in _imports(p):
            if target.startswith(("lakeroute.aws", "lakeroute.local", "lakeroute.cli", "boto3", "aws_cdk")) \
                    or target in ("lakeroute.handler", "lakeroute.task", "lakeroute.sync", "lakeroute.sweep"):
                bad.append(f"{_module_name(p)} -> {target}")
    assert bad == []


@pytest.mark.parametrize("area", ["core", "cli", "aws", "local"])
def test_no_module_borrows_another_modules_private_names(area: str) -> None:
    borrowed = []
    for p in (PACKAGE / area).rglob("*.py"):
        for target, names in _imports(p):
            if target.startswith("lakeroute"):
                borrowed += [f"{_module_name(p)}: {target}.{n}" for n in names if n.startswith("_")]
    assert borrowed == []


def test_no_runtime_module_past_the_size_read_in_a_sitting() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if "samples" not in p.parts and (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_a_misplaced_import_is_caught() -> None:
    """The layer check can fail: an upward import (read -> pipeline) and a sideways one
    (routes -> ledger) added to the real graph are both reported."""
    graph = _core_graph()
    graph["lakeroute.core.read.hints"].add("lakeroute.core.pipeline.plans")
    graph["lakeroute.core.routes.model"].add("lakeroute.core.ledger.rule")
    assert sorted(_upward(graph)) == ["lakeroute.core.read.hints -> lakeroute.core.pipeline.plans",
                                      "lakeroute.core.routes.model -> lakeroute.core.ledger.rule"]
