"""The package's layers, read from the source (ast): imports point down only
(core <- method, inputs <- study <- present <- kit), no import cycle (imports inside functions
included), no private name imported from another module (tests and benchmarks included).

``python -m taskrel_utils layers`` prints the imports between the layers (``--modules``: between
the modules); ``pytest tests/hygiene/test_layers.py -s`` prints them too. Each rule has a
self-check: a small package with the fault planted, which the rule must catch.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from taskrel_utils.kit import layers

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = sorted([*REPO_ROOT.joinpath("tests").rglob("*.py"), *REPO_ROOT.joinpath("benchmarks").rglob("*.py")])


def test_print_the_layers(capsys):
    text = layers.report()
    with capsys.disabled():
        print("\n" + text)
    assert text.splitlines()[-1].endswith("kept")


def test_each_layer_lists_its_modules():
    """A layer's ``__all__`` (its public names, in its ``__init__``) is exactly its modules."""
    files = layers.module_files()
    for package in [m for m in files if files[m].name == "__init__.py" and m]:
        listed = set(importlib.import_module(f"taskrel_utils.{package}").__all__)
        below = {m.rpartition(".")[2] for m in files if m.rpartition(".")[0] == package}
        assert listed == below, f"{package}: __all__ {sorted(listed)} against its modules {sorted(below)}"


def test_imports_point_down_only():
    assert layers.upward_imports() == []
    graph = layers.layer_graph()
    assert set(graph["study"]) == {"core", "method", "inputs"}
    assert "inputs" not in graph.get("method", {}) and "method" not in graph.get("inputs", {})
    assert "core" not in graph  # the bottom layer imports nothing else of the package


def test_no_import_cycle():
    assert layers.cycles() == []


def test_no_private_name_is_imported_from_another_module_of_the_package():
    files = layers.module_files()
    bad = []
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bad += [f"{path.relative_to(layers.PACKAGE_DIR)}: {p}"
                for p in layers.private_imports(tree, name, path.name == "__init__.py", files)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_tests_and_benchmarks_import_no_private_name(path):
    assert layers.private_imports(ast.parse(path.read_text(encoding="utf-8"))) == []


# ------------------------------------------------------------------------------- self-checks
PLANTED = {
    "__init__.py": "",
    "core/__init__.py": "",
    "core/jobs.py": "def run():\n    from .cluster import submit  # inside a function\n    return submit\n",
    "core/cluster.py": "from .jobs import run\n\n\ndef submit():\n    return run\n",
    "inputs/__init__.py": "",
    "inputs/zoo.py": "def train():\n    from ..study.finetune import augment\n    return augment\n",
    "study/__init__.py": "",
    "study/finetune.py": "from ..core.jobs import _helper\n\n\ndef augment():\n    return _helper\n",
}


@pytest.fixture
def planted(tmp_path):
    root = tmp_path / "taskrel_utils"
    for rel, text in PLANTED.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_rules_catch_planted_faults(planted):
    graph = layers.module_graph(planted)
    assert layers.upward_imports(graph) == ["inputs.zoo -> study.finetune (line 2): inputs may not import study"]
    assert layers.cycles(graph) == [["core.cluster", "core.jobs", "core.cluster"]]
    files = layers.module_files(planted)
    tree = ast.parse(PLANTED["study/finetune.py"])
    assert layers.private_imports(tree, "study.finetune", False, files) == ["_helper from core.jobs (line 1)"]
    outside = ast.parse("from taskrel_utils.method.transport import _support\nfrom os import _exit\n")
    assert layers.private_imports(outside) == ["_support from method.transport (line 1)"]
