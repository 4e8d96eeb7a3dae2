"""The house's structural promises, checked from the source so they keep holding: which room may import what
(only ``plugin`` imports pytest, only ``run`` imports nvflare or torch, proposers never reach into ``run``),
no import cycles, and units of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_autofl"
# room -> the rooms it may import (besides itself). A DAG: core at the bottom, plugin on top.
ALLOWED = {
    "core": set(),
    "ledger": {"core"},
    "data": {"core"},
    "control": {"core", "ledger"},
    "proposers": {"core", "ledger", "control"},
    "literature": {"core", "ledger", "control", "proposers"},
    "run": {"core", "data"},
    "search": {"core", "ledger", "data", "control", "proposers", "literature", "run"},
    "report": {"core", "ledger"},
    "preflight": {"core", "ledger", "data", "control", "proposers", "literature", "run"},
    "scaffold": {"core", "data"},
    "__main__": {
        "core",
        "ledger",
        "control",
        "proposers",
        "literature",
        "search",
        "report",
        "preflight",
        "scaffold",
    },
    "plugin": {
        "core",
        "ledger",
        "data",
        "control",
        "proposers",
        "literature",
        "run",
        "search",
        "report",
        "preflight",
    },
}
HEAVY = {"nvflare", "torch"}
SIZE = {"module": 300, "class": 200, "function": 60}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions (absolute names)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the house uses absolute imports"
            found.add(node.module or "")
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {i for i in _imports(path, name) if i in modules and i != name}
        for name, path in modules.items()
    }


def test_each_room_imports_only_the_rooms_below_it():
    problems = []
    for name, path in _modules().items():
        room = _room(name)
        for imported in _imports(path, name):
            top = imported.split(".")[0]
            if top in ("pytest", "_pytest") and room != "plugin":
                problems.append(f"{name} imports {imported}: only plugin/ imports pytest")
            if top in HEAVY and room != "run":
                problems.append(f"{name} imports {imported}: only run/ imports nvflare or torch")
            if top == "pytest_autofl" and len(imported.split(".")) > 1:
                other = imported.split(".")[1]
                if other != room and other in ALLOWED and other not in ALLOWED.get(room, set()):
                    problems.append(f"{name} imports {imported}: {room}/ may not import {other}/")
    assert problems == []


def test_there_are_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # A package's __init__ registering its members (which import the package's interface module) is the
    # registry pattern, not a cycle between rooms; anything else is.
    real = [c for c in cycles if not (c[0] == c[-1] and all(m.startswith(c[0]) for m in c))]
    assert real == []


def _oversized() -> list[str]:
    out = []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > SIZE["module"]:
            out.append(f"module {name} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            kind = "class" if isinstance(node, ast.ClassDef) else None
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "function"
            if kind and node.end_lineno - node.lineno + 1 > SIZE[kind]:  # type: ignore[attr-defined]
                out.append(f"{kind} {name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")  # type: ignore[attr-defined]
    return out


def test_units_stay_readable():
    assert _oversized() == []
