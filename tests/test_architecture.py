"""The design's dependency rules, checked on the source: no import circles (lazy imports inside functions
count too), gui -> rig -> drivers and never back, and an engine that imports no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGES = ("rig", "drivers", "gui")
# What the pure engine may import: the standard library's pure parts, numpy, pydantic and its own records.
ENGINE_IO = {"os", "sys", "time", "socket", "subprocess", "threading", "logging", "io", "pathlib", "shutil",
             "json", "zmq", "serial", "signal", "tempfile", "random"}


def module_files(root: Path = REPO) -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules a module imports anywhere in its body (top level, functions, TYPE_CHECKING
    blocks excluded). `from pkg import sub` counts as importing pkg.sub when sub is a module."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for child in node.body for n in ast.walk(child))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = {f"{mod}.{a.name}" for a in node.names} & known
            found.update(subs if subs else {mod})
    return {m for m in found if m in known and m != name}


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    files = module_files(root)
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
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


GRAPH = import_graph()
# The one edge against the grain, on purpose: `rig gui` is the command that starts the app.
UPWARD_ALLOWED = {("rig.cli.commands.gui", "gui.app")}


def test_no_import_circles() -> None:
    found = cycles(GRAPH)
    assert not found, "import circles (lazy imports count): " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize(("lower", "upper"), [("drivers", "rig"), ("drivers", "gui"), ("rig", "gui")])
def test_dependencies_point_one_way(lower: str, upper: str) -> None:
    bad = sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if m.split(".")[0] == lower
                 for d in deps if d.split(".")[0] == upper and (m, d) not in UPWARD_ALLOWED)
    assert not bad, f"{lower}/ must not import {upper}/: " + "; ".join(bad)


def test_the_engine_imports_no_io() -> None:
    files = module_files()
    bad = []
    for name, path in files.items():
        if not name.startswith("rig.engine"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            bad += [f"{name} imports {m}" for m in mods if m.split(".")[0] in ENGINE_IO]
            bad += [f"{name} imports {m}" for m in mods if m.split(".")[0] in PACKAGES
                    and not (m.startswith("rig.engine") or m in ("rig.protocol", "rig.config"))]
    assert not bad, "; ".join(bad)


def test_the_checks_catch_a_circle_and_a_wrong_way_import(tmp_path: Path) -> None:
    """The rules above fail on a tree that breaks them."""
    for pkg, files in {
        "rig": {"__init__.py": "", "a.py": "def f():\n    from rig import b\n", "b.py": "import rig.a\n"},
        "drivers": {"__init__.py": "", "x.py": "from rig.a import f\n"},
        "gui": {"__init__.py": ""},
    }.items():
        (tmp_path / pkg).mkdir()
        for fname, text in files.items():
            (tmp_path / pkg / fname).write_text(text)
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["rig.a", "rig.b"]]
    assert "rig.a" in graph["drivers.x"]
