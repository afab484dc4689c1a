"""Every notebook teaches: learning goals after the title, a summary, and 2-4 exercises, each an
"### Exercise N: title" markdown cell followed by a cell for the student's code and by at least
one cell tagged `solution` (the cells `make student` removes)."""
import re

import nbformat
import pytest

from taskrel_utils.kit import pipeline
from taskrel_utils.kit.student import SOLUTION_TAG

NOTEBOOKS = [pytest.param(p, id=p.name) for p in pipeline.list_notebooks()]
EXERCISE = re.compile(r"^### Exercise (\d+): \S")


def _is_solution(cell):
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def _heading_index(cells, heading):
    found = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.lstrip().startswith(heading)]
    assert len(found) == 1, f"expected one markdown cell starting with {heading!r}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_notebook_has_goals_summary_and_exercises_with_solutions(path):
    cells = nbformat.read(path, as_version=4).cells
    goals = _heading_index(cells, "## Learning goals")
    assert 1 <= goals <= 3, "the learning goals come right after the title"
    n_goals = len(re.findall(r"^[*-] ", cells[goals].source, flags=re.M))
    assert 3 <= n_goals <= 5, f"3-5 learning goals as bullets, found {n_goals}"
    summary, exercises = _heading_index(cells, "## Summary"), _heading_index(cells, "## Exercises")
    assert goals < summary < exercises, "order: learning goals, ..., summary, exercises"
    starts = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and EXERCISE.match(c.source.lstrip())]
    numbers = [int(EXERCISE.match(cells[i].source.lstrip()).group(1)) for i in starts]
    assert numbers == list(range(1, len(numbers) + 1)) and 2 <= len(numbers) <= 4, f"2-4 exercises, found {numbers}"
    assert starts[0] > exercises
    for k, start in enumerate(starts):
        block = cells[start + 1:(starts[k + 1] if k + 1 < len(starts) else len(cells))]
        student_cells = [c for c in block if c.cell_type == "code" and not _is_solution(c)]
        assert student_cells and not _is_solution(block[0]), f"exercise {k + 1}: a code cell for the student first"
        assert any(_is_solution(c) for c in block), f"exercise {k + 1}: no cell tagged {SOLUTION_TAG!r}"
    assert not any(_is_solution(c) for c in cells[:starts[0]]), "solution cells belong to the exercises"
