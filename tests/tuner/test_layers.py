"""The tuner's layers: every import, at any depth, points down the stack ``tuner/__init__.py`` describes.

cli -> pipeline, cluster -> report -> verify -> search -> experiment. Imports inside functions and under
``if TYPE_CHECKING`` count too: a lazy import upwards is still a cycle in the design. Run as a script, it prints
every import between the tuner's modules and any problem.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TUNER = ROOT / "tuner"
# Top to bottom; modules on one line are one layer and do not import each other's sub-package.
LAYERS = (("tuner.cli",), ("tuner.pipeline", "tuner.cluster"), ("tuner.report",), ("tuner.verify",),
          ("tuner.search",), ("tuner.experiment",))  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(TUNER.rglob("*.py"))}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The tuner module an import names (``from tuner.x import y`` names ``tuner.x.y`` when that is a module)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(known: dict[str, Path]) -> dict[str, set[str]]:
    """Per tuner module, the tuner modules it imports anywhere in its code."""
    graph: dict[str, set[str]] = {}
    for mod, path in known.items():
        out: set[str] = set()
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for name in names:
                if name == "tuner" or name.startswith("tuner."):
                    target = _resolve(name, known)
                    if target and target != mod and target != "tuner":
                        out.add(target)
        graph[mod] = out
    return graph


def layer(mod: str) -> tuple[int, str]:
    """(depth from the top, sub-package) of a tuner module."""
    for depth, group in enumerate(LAYERS):
        for top in group:
            if mod == top or mod.startswith(top + "."):
                return depth, top
    raise AssertionError(f"{mod}: in no layer; add it to LAYERS and to tuner/__init__.py's docstring")


def upward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, targets in graph.items():
        if mod == "tuner":
            continue
        depth, top = layer(mod)
        for t in sorted(targets):
            t_depth, t_top = layer(t)
            if t_depth < depth or (t_depth == depth and t_top != top):
                bad.append(f"{mod} imports {t} ({t_top} is not below {top})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_tuner_module_imports_upwards_or_in_a_cycle():
    graph = imports(modules())
    assert not upward(graph)
    assert not cycles(graph)


if __name__ == "__main__":
    g = imports(modules())
    for m in sorted(g):
        print(f"{m} [{layer(m)[1] if m != 'tuner' else 'tuner'}] -> {', '.join(sorted(g[m])) or '-'}")
    print(f"{len(g)} modules, {sum(map(len, g.values()))} imports between them")
    print("upward imports:", upward(g) or "none")
    print("cycles:", cycles(g) or "none")
