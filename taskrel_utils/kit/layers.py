"""The package's layers, read from the source: which module imports which, and the rules they keep.

``python -m taskrel_utils layers`` prints the imports between the layers (``--modules``: between
the modules). The rules, checked by ``tests/hygiene/test_layers.py``:

* imports point down only: ``core`` <- ``method``, ``inputs`` <- ``study`` <- ``present`` <- ``kit``
  (``method`` and ``inputs`` side by side: neither imports the other);
* no import cycle between modules, imports inside functions included;
* no private name (``_name``) imported from another module.

Every ``import`` statement counts, at any depth of a module (inside functions too), read with
:mod:`ast` without importing anything.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from .. import LAYERS
from ..core.imports import imported

#: the package's folder
PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGE = PACKAGE_DIR.name
#: what each layer may import besides itself (the layers, lowest first: ``taskrel_utils.LAYERS``)
ALLOWED = {
    "core": set(),
    "method": {"core"},
    "inputs": {"core"},
    "study": {"core", "method", "inputs"},
    "present": {"core", "method", "inputs", "study"},
    "kit": {"core", "method", "inputs", "study", "present"},
}


def module_files(root: Path = PACKAGE_DIR) -> dict:
    """``{dotted name inside the package: file}`` of every module (``""``: the package itself)."""
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imports_of(tree: ast.AST, name: str, is_package: bool, modules) -> list:
    """``(module imported, [names imported from it], line)`` for each import of the package's modules
    in the syntax tree of module ``name`` (:func:`taskrel_utils.core.imports.imported`; ``modules``:
    the package's module names)."""
    return [(module, names, node.lineno) for node in ast.walk(tree)
            for module, names in imported(node, name, is_package, PACKAGE, modules.__contains__)]


def module_graph(root: Path = PACKAGE_DIR) -> dict:
    """``{module: {imported module: [(names, line), ...]}}`` over the package's modules."""
    files = module_files(root)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = defaultdict(list)
        for target, names, line in imports_of(tree, name, path.name == "__init__.py", files):
            if target != name:
                edges[target].append((names, line))
        graph[name] = dict(edges)
    return graph


def layer_of(module: str) -> str:
    """The layer of a module (``""`` for the top package and ``__main__``)."""
    head = module.split(".")[0]
    return head if head in LAYERS else ""


def layer_graph(graph: dict | None = None) -> dict:
    """``{layer: {imported layer: number of imports}}`` between different layers."""
    graph = module_graph() if graph is None else graph
    counts = defaultdict(lambda: defaultdict(int))
    for module, edges in graph.items():
        for target, uses in edges.items():
            a, b = layer_of(module), layer_of(target)
            if a and b and a != b:
                counts[a][b] += len(uses)
    return {a: dict(sorted(counts[a].items(), key=lambda kv: LAYERS.index(kv[0]))) for a in LAYERS if counts[a]}


def upward_imports(graph: dict | None = None) -> list:
    """``'module -> module (line N)'`` for each import a layer may not make."""
    graph = module_graph() if graph is None else graph
    bad = []
    for module, edges in sorted(graph.items()):
        for target, uses in sorted(edges.items()):
            a, b = layer_of(module), layer_of(target)
            if a and b and a != b and b not in ALLOWED[a]:
                bad += [f"{module} -> {target} (line {line}): {a} may not import {b}" for _, line in uses]
    return bad


def cycles(graph: dict | None = None) -> list:
    """The import cycles between modules (each a list of modules, the first repeated last); the
    package's ``__init__`` files are left out (importing a submodule imports them anyway)."""
    graph = module_graph() if graph is None else graph
    files = set(graph)
    inits = {m for m in files if m == "" or m in LAYERS}
    edges = {m: sorted(t for t in graph[m] if t not in inits) for m in files if m not in inits}
    found, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for target in edges.get(module, ()):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    return found


def private_imports(tree: ast.AST, name: str = "", is_package: bool = False, modules=None) -> list:
    """``'_name from module (line N)'`` for each private name the syntax tree imports from a module of
    the package (``modules``: the package's module names)."""
    modules = module_files() if modules is None else modules
    return [f"{n} from {target or PACKAGE} (line {line})" for target, names, line in
            imports_of(tree, name, is_package, modules) for n in names if n.startswith("_") and not n.startswith("__")]


def report(modules: bool = False) -> str:
    """The text ``python -m taskrel_utils layers`` prints."""
    graph = module_graph()
    lines = ["imports between the layers of taskrel_utils (lowest first; count of import statements):"]
    for layer in LAYERS:
        targets = layer_graph(graph).get(layer, {})
        seen = ", ".join(f"{t} ({n})" for t, n in targets.items()) or "nothing else of the package"
        lines.append(f"  {layer:<8} imports {seen}")
    if modules:
        lines.append("")
        for module, edges in sorted(graph.items()):
            if edges:
                lines.append(f"  {module or PACKAGE} -> {', '.join(sorted(t or PACKAGE for t in edges))}")
    problems = upward_imports(graph) + [" -> ".join(c) + ": a cycle" for c in cycles(graph)]
    lines += ["", "rules: imports point down only, no cycles: " + ("kept" if not problems else "BROKEN")]
    lines += [f"  {p}" for p in problems]
    return "\n".join(lines)
