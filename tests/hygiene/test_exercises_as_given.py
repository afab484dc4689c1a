"""The exercises as a learner meets them, in the notebooks and in their student copies:

* an exercise's own code cell runs as given and shows nothing (no ``print(None)``, no bare ``None``
  as its last line: a report or a student copy would show a stray ``None``);
* nothing in a student copy says that a solution follows (the copy has none).

Notebooks 01-03 for now (04 and 05 change on their own branch; then every notebook belongs here).
"""
import ast
import re

import nbformat
import pytest

from taskrel_utils.kit import pipeline, student

NOTEBOOKS = [pytest.param(p, id=p.name) for p in pipeline.list_notebooks() if p.name[:2] in ("01", "02", "03")]
EXERCISE = re.compile(r"^### Exercise \d+: ")
#: wording that promises a solution right after the exercise cell
PROMISES_A_SOLUTION = re.compile(r"(cell after it is a solution|followed by a solution|solution follows|"
                                 r"the next cell (is|holds|has) (a|the) solution)", re.I)


def _exercise_cells(nb):
    """The code cells of the exercises that stay in the student copy."""
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and EXERCISE.match(c.source)]
    return [c for c in nb.cells[starts[0]:] if c.cell_type == "code"
            and student.SOLUTION_TAG not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_an_exercise_cell_as_given_shows_nothing(path):
    for cell in _exercise_cells(nbformat.read(path, as_version=4)):
        body = ast.parse(cell.source).body
        calls = [n.func.id for n in ast.walk(ast.parse(cell.source))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("print", "display")]
        assert not calls, f"{path.name}: an exercise cell shows output before the learner writes anything:\n{cell.source}"
        assert not (body and isinstance(body[-1], ast.Expr)), \
            f"{path.name}: an exercise cell ends in an expression (its value would show):\n{cell.source}"


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_a_student_copy_promises_no_solution(path):
    copy = student.student_notebook(nbformat.read(path, as_version=4))
    said = [c.source for c in copy.cells if c.cell_type == "markdown" and PROMISES_A_SOLUTION.search(c.source)]
    assert not said, f"{path.name}: the student copy says a solution follows:\n" + "\n".join(said)
