"""One error hierarchy: the package raises the kit's errors (``TaskrelError`` and its subclasses, all
``ValueError``), never a bare built-in exception for bad input, and every exception class it defines
belongs to that hierarchy."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

import taskrel_utils
from taskrel_utils.core.errors import TaskrelError

PACKAGE = Path(taskrel_utils.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: built-in exceptions a caller would get for bad input instead of a TaskrelError
BARE = {"ValueError", "TypeError", "RuntimeError", "KeyError", "Exception", "AssertionError"}
#: (module, exception) pairs raised on purpose, with the reason; none today. IndexError in a
#: dataset's ``__getitem__`` (Python's sequence protocol) and StopIteration (an iterator) are not in
#: BARE, so they need no entry.
ALLOWED: dict = {}


def _bare_raises(path: Path) -> list:
    """``(line, name)`` of every ``raise Name(...)`` / ``raise Name`` of a BARE exception in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BARE:
                found.append((node.lineno, exc.id))
    return found


def test_the_scan_finds_a_bare_raise(tmp_path):
    """The checker itself: a bare raise is found, a TaskrelError and a re-raise are not."""
    src = tmp_path / "m.py"
    src.write_text("def f(x):\n    if x:\n        raise ValueError('no')\n    try:\n        pass\n"
                   "    except OSError:\n        raise\n    raise TaskrelError('ok')\n")
    assert _bare_raises(src) == [(3, "ValueError")]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_bare_builtin_raise(path):
    module = str(path.relative_to(PACKAGE).with_suffix("")).replace("/", ".")
    bad = [f"{path.name}:{line}: raise {name}(...): raise TaskrelError (taskrel_utils.core.errors) with a message "
           f"that says what is wrong and what to do"
           for line, name in _bare_raises(path) if (module, name) not in ALLOWED]
    assert not bad, "\n".join(bad)


def test_every_exception_class_of_the_package_is_a_taskrel_error():
    strays = []
    for path in SOURCES:
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        module = importlib.import_module(".".join(("taskrel_utils", *parts)))
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == module.__name__ and issubclass(cls, Exception)
                    and not issubclass(cls, Warning) and not issubclass(cls, TaskrelError)):
                strays.append(f"{module.__name__}.{name}")
    assert not strays, f"exception classes outside the TaskrelError hierarchy: {strays}"
