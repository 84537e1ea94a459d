"""The import graph of ``src/headstart``: no cycles, and dependencies point one way between layers.

Read from the source with :mod:`ast` (nothing is imported). An edge is any headstart-internal import,
at module level or inside a function; imports under ``if TYPE_CHECKING:`` are skipped, and so is the
implicit import of a module's parent packages. ``from headstart.x import y`` is an edge to
``headstart.x.y`` when that is a module, else to ``headstart.x``; relative imports are resolved.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "headstart"

# Cycles that another branch is removing right now. Each entry is the exact set of modules of one
# cycle (strongly connected component); it must match what the graph has. Empty this when that
# branch is merged: the test fails on an entry whose cycle is gone.
_KNOWN_CYCLES_BEING_FIXED: set[frozenset[str]] = {
    frozenset({"headstart.api", "headstart.tuning.objective", "headstart.tuning.outputs", "headstart.tuning.study"}),
}

# Lower layers and what they must not import.
_WORKFLOWS = ("headstart.select", "headstart.tuning", "headstart.diagnose", "headstart.reporting", "headstart.export",
              "headstart.serve", "headstart.commands", "headstart.cli", "headstart.api")
_FOUNDATION = ("headstart.data", "headstart.models")
_CORE = ("headstart.errors", "headstart._validation", "headstart._io", "headstart._imports", "headstart._lazy",
         "headstart.config", "headstart._duration")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom node, skipping the bodies of ``if TYPE_CHECKING:`` (not their else)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is a module, else its longest prefix that is one (None outside headstart)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {t for a in node.names if (t := _known(a.name, modules))}
    if node.level:  # relative: resolve against the package the module is in
        base = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    if source != PACKAGE and not source.startswith(PACKAGE + "."):
        return set()
    out = set()
    for alias in node.names:
        sub = f"{source}.{alias.name}"
        out.add(sub if sub in modules else _known(source, modules))
    return {t for t in out if t}


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line number}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            for target in _targets(node, name, path.name == "__init__.py", modules):
                if target != name:
                    edges[target] = min(edges.get(target, node.lineno), node.lineno)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return sorted(found)


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    lines = [f"  cycle of {len(component)} modules: {', '.join(component)}"]
    for module in component:
        for target, line in sorted(graph[module].items()):
            if target in members:
                lines.append(f"    {module} (line {line}) imports {target}")
    return "\n".join(lines)


def _layer_violations(graph: dict[str, dict[str, int]], layer: tuple[str, ...], allowed=None, forbidden=()) -> list[str]:
    def within(module: str, prefixes) -> bool:
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    bad = []
    for module in sorted(graph):
        if not within(module, layer):
            continue
        for target, line in sorted(graph[module].items()):
            if within(target, forbidden) or (allowed is not None and not within(target, allowed)):
                bad.append(f"  {module} (line {line}) imports {target}")
    return bad


def test_graph_sees_known_edges():
    """The parser finds imports at module level, inside functions, and relative ones; skips TYPE_CHECKING."""
    graph = import_graph()
    assert "headstart.errors" in graph["headstart._validation"]  # module level
    assert "headstart.models.zoo" in graph["headstart.select.rank"]  # inside a function
    assert "headstart._lazy" in graph["headstart"]  # the package __init__
    assert all(t.startswith("headstart") for edges in graph.values() for t in edges)


def test_strongly_connected_finds_cycles():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"e": 1, "d": 1}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    components = strongly_connected(graph)
    new = [c for c in components if frozenset(c) not in _KNOWN_CYCLES_BEING_FIXED]
    gone = [sorted(k) for k in _KNOWN_CYCLES_BEING_FIXED if list(sorted(k)) not in components]
    message = []
    if new:
        message.append(f"{len(new)} import cycle(s) in src/headstart (break each by moving the shared piece to the"
                       " lower module, so imports point one way):")
        message.extend(_describe(c, graph) for c in new)
    if gone:
        message.append("No longer a cycle (remove from _KNOWN_CYCLES_BEING_FIXED): "
                       + "; ".join(", ".join(c) for c in gone))
    assert not message, "\n" + "\n".join(message)


def test_layers_point_one_way():
    graph = import_graph()
    foundation = _layer_violations(graph, _FOUNDATION, forbidden=_WORKFLOWS)
    core = _layer_violations(graph, _CORE, allowed=_CORE)
    message = []
    if foundation:
        message.append("headstart.data / headstart.models import workflow modules:")
        message.extend(foundation)
    if core:
        message.append(f"core modules ({', '.join(_CORE)}) import non-core modules:")
        message.extend(core)
    assert not message, "\n" + "\n".join(message)
