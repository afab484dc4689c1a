"""Student copies of the notebooks: the same notebooks without the exercises' solutions.

A solution is a cell tagged ``solution`` (cell metadata ``"tags": ["solution"]``); nbconvert's
``TagRemovePreprocessor`` drops those cells and nothing else. The exercise cells stay, so a
student copy runs from top to bottom as given.

    python -m taskrel_utils student --out student      # or: make student
"""
from __future__ import annotations

import ast
import builtins
import copy
from pathlib import Path

import nbformat

from ..core.errors import TaskrelError
from ..core.io import atomic_path

#: the cell tag that marks a solution
SOLUTION_TAG = "solution"

__all__ = ["SOLUTION_TAG", "solution_cells", "student_notebook", "write_student_copies", "names_from_solutions"]


def solution_cells(nb) -> list[int]:
    """Indices of the cells of ``nb`` (a notebook node) tagged :data:`SOLUTION_TAG`."""
    return [i for i, cell in enumerate(nb.cells) if SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])]


def student_notebook(nb):
    """A copy of the notebook node ``nb`` without its solution cells (``nb`` is left unchanged)."""
    from nbconvert.preprocessors import TagRemovePreprocessor

    remover = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    student, _ = remover.preprocess(copy.deepcopy(nb), {})
    return student


def write_student_copies(out_dir, notebooks=None) -> list[Path]:
    """Write the student copy of each of ``notebooks`` (default: every numbered notebook) to
    ``out_dir/<name>.ipynb``; returns the paths written."""
    from .pipeline import list_notebooks

    paths = [Path(p) for p in (notebooks or list_notebooks())]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        if not path.is_file():
            raise TaskrelError(f"no notebook at {path}: pass existing .ipynb files (default: every numbered notebook)")
        nb = nbformat.read(path, as_version=4)
        out = out_dir / path.name
        with atomic_path(out) as tmp:
            nbformat.write(student_notebook(nb), tmp)
        written.append(out)
    return written


def _names(source: str) -> tuple[set, set]:
    """(names a cell binds, names it reads) of Python ``source`` (IPython ``%``/``!`` lines skipped)."""
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    bound, read = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound, read


def names_from_solutions(nb) -> dict[int, set]:
    """Cells of ``nb`` that would fail in its student copy: ``{cell index: names}`` for every
    non-solution code cell that reads a name bound only by an earlier solution cell (not by an earlier
    cell the copy keeps). Empty when the copy runs without the solutions."""
    solutions = set(solution_cells(nb))
    kept, from_solutions, broken = set(dir(builtins)), set(), {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        bound, read = _names(cell.source)
        if i in solutions:
            from_solutions |= bound
            continue
        missing = (read & from_solutions) - kept - bound
        if missing:
            broken[i] = missing
        kept |= bound
    return broken
