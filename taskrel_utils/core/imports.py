"""Which modules of the package an import statement names, read from the source (nothing runs).

The cache (:func:`taskrel_utils.core.cache.modules_of`: the code a value depends on) and the
layering check (:mod:`taskrel_utils.kit.layers`) both read a module's imports this way: relative
and absolute, at any depth of the module (inside functions too).
"""
from __future__ import annotations

import ast
from typing import Callable


def imported(node: ast.AST, current: str, is_package: bool, package: str, is_module: Callable[[str], bool]) -> list:
    """``(module, names)`` for what the import ``node`` of module ``current`` takes from ``package``.

    Modules are dotted names inside the package (``"method.transport"``; ``""``: the package
    itself). ``current``: the importing module's name; ``is_package``: it is a package's
    ``__init__`` (its relative imports start from itself). ``from X import y`` takes module ``X.y``
    where ``is_module`` says that is one (``names`` empty), else the name ``y`` of module ``X``;
    ``import package.X`` takes module ``X``. Imports of other packages take nothing.
    """
    if isinstance(node, ast.Import):
        return [(a.name.partition(".")[2], []) for a in node.names if a.name.startswith(package + ".")]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        parts = current.split(".") if current else []
        parts = parts if is_package else parts[:-1]
        if node.level - 1 > len(parts):
            return []
        base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
    elif node.module == package or (node.module or "").startswith(package + "."):
        base = node.module.partition(".")[2]
    else:
        return []
    found, names = [], []
    for alias in node.names:
        sub = f"{base}.{alias.name}" if base else alias.name
        if is_module(sub):
            found.append((sub, []))
        else:
            names.append(alias.name)
    return found + ([(base, names)] if names else [])
