"""czsl's modules import one another without a cycle.

Every import statement of a module counts: at module level, under ``if TYPE_CHECKING``
and inside functions alike. A lazy import inside a function is the usual way to dodge
an import cycle without removing it, so it is counted as an edge like any other; the
graph of all of them must still be acyclic. ``from czsl import X`` is an edge to
``czsl.X`` where that is a module, else to the package's ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import czsl

ROOT = Path(czsl.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``module -> the czsl modules it imports`` for every module under ``root``."""
    modules = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # czsl.x.y as a module of czsl.x
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of more than one module (and each
    module importing itself), as ``[a, b, ..., a]``."""
    found, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        stack, path, on_path = [(start, iter(sorted(graph[start])))], [start], {start}
        while stack:
            node, rest = stack[-1]
            nxt = next(rest, None)
            if nxt is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif nxt in on_path:
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
                on_path.add(nxt)
    return found


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / "czsl"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from czsl import b\n")
    (pkg / "b.py").write_text("def f():\n    from czsl.a import thing\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from .a import x\n")
    graph = import_graph(pkg)
    assert graph == {"czsl": set(), "czsl.a": {"czsl.b"}, "czsl.b": {"czsl.a"},
                     "czsl.c": {"czsl.a"}}
    assert cycles(graph) == [["czsl.a", "czsl.b", "czsl.a"]]


def test_czsl_has_no_import_cycle():
    graph = import_graph()
    assert "czsl.plugins" in graph and "czsl.sweep.cli" in graph  # the whole package read
    assert cycles(graph) == []
