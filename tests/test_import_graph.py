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

# The layers, lowest first: a module may import its own layer and the ones before it, never a later
# one (docs/architecture.md draws the same list). A module is in the layer of its longest prefix here.
_LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("headstart.errors", "headstart._validation", "headstart._io", "headstart._imports", "headstart._lazy",
              "headstart._duration", "headstart._config_values", "headstart._version", "headstart._console", "headstart._plotting", "headstart._config_errors", "headstart.config", "headstart.config_flags",
              "headstart.run_folder")),
    ("data/models", ("headstart.data", "headstart.models")),
    ("engine", ("headstart.engine",)),
    ("tasks", ("headstart.tasks",)),
    ("inference", ("headstart.predict", "headstart.export")),
    ("workflows", ("headstart.workflows", "headstart.select", "headstart.tuning", "headstart.diagnose",
                   "headstart.reporting")),
    ("interface", ("headstart.api", "headstart.cli", "headstart.commands", "headstart.serve", "headstart.__main__",
                   "headstart")),
]


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


def layer_of(module: str) -> int:
    """Index in _LAYERS of the longest prefix that names ``module`` or a package above it."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(_LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to _LAYERS (and docs/architecture.md)"
    return best


def test_no_import_cycles():
    graph = import_graph()
    components = strongly_connected(graph)
    message = []
    if components:
        message.append(f"{len(components)} import cycle(s) in src/headstart (break each by moving the shared piece to"
                       " the lower module, so imports point one way):")
        message.extend(_describe(c, graph) for c in components)
    assert not message, "\n" + "\n".join(message)


def test_layers_point_one_way():
    graph = import_graph()
    upward = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            if layer_of(target) > layer_of(module):
                upward.append(f"  {module} ({_LAYERS[layer_of(module)][0]}) imports {target}"
                              f" ({_LAYERS[layer_of(target)][0]}) at line {line}")
    assert not upward, "\nImports that point up the layers:\n" + "\n".join(upward)


def test_the_engine_knows_no_task():
    graph = import_graph()
    assert all(not t.startswith("headstart.tasks") for m, ts in graph.items() if m.startswith("headstart.engine")
               for t in ts)
