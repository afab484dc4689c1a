"""Student copies: exactly the cells tagged `solution` are gone, everything else stays as it was."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from taskrel_utils.kit import student
from taskrel_utils.kit.cli import main
from taskrel_utils.kit.pipeline import list_notebooks


def _tagged(cell, *tags):
    cell.metadata["tags"] = list(tags)
    return cell


def test_student_notebook_removes_exactly_the_solution_cells():
    nb = new_notebook(cells=[
        _tagged(new_code_cell("profile = 'mini'"), "parameters"),
        new_markdown_cell("### Exercise 1: x"),
        new_code_cell("# your code"),
        _tagged(new_code_cell("answer = 1"), "solution"),
        _tagged(new_code_cell("answer = 2"), "hide-input", "solution"),
        _tagged(new_markdown_cell("not a solution"), "solutions"),
        _tagged(new_markdown_cell("solution in markdown"), "solution"),
    ])
    assert student.solution_cells(nb) == [3, 4, 6]
    out = student.student_notebook(nb)
    assert [c.source for c in out.cells] == ["profile = 'mini'", "### Exercise 1: x", "# your code", "not a solution"]
    assert out.cells[0].metadata["tags"] == ["parameters"]
    assert len(nb.cells) == 7  # the original is left unchanged


def test_cli_writes_student_copies_without_solutions(tmp_path, capsys):
    assert main(["student", "--out", str(tmp_path), "--notebooks", "01", "02"]) == 0
    written = capsys.readouterr().out.split()
    originals = [p for p in list_notebooks() if p.name[:2] in ("01", "02")]
    assert sorted(written) == sorted(str(tmp_path / p.name) for p in originals)
    for path in originals:
        source = nbformat.read(path, as_version=4)
        copy = nbformat.read(tmp_path / path.name, as_version=4)
        assert not student.solution_cells(copy)
        kept = [c.source for i, c in enumerate(source.cells) if i not in student.solution_cells(source)]
        assert [c.source for c in copy.cells] == kept and len(kept) < len(source.cells)


def test_cli_refuses_a_missing_notebook(tmp_path, capsys):
    assert main(["student", "--out", str(tmp_path), "--notebooks", "99"]) == 2
    assert "no notebook matches '99'" in capsys.readouterr().err


def test_names_from_solutions_finds_a_kept_cell_that_needs_a_solution():
    nb = new_notebook(cells=[
        new_code_cell("import numpy as np\nx = np.ones(3)"),
        _tagged(new_code_cell("answer = x.sum()\ndef helper(a):\n    return a"), "solution"),
        new_code_cell("print(x, answer)"),          # needs the solution's `answer`
        new_code_cell("answer = 0\nprint(answer)"),  # binds it itself: fine
        new_code_cell("%matplotlib inline\nhelper(x)"),  # needs the solution's `helper`
    ])
    assert student.names_from_solutions(nb) == {2: {"answer"}, 4: {"helper"}}
    assert student.names_from_solutions(student.student_notebook(nb)) == {}  # nothing tagged: nothing to miss


def test_every_student_copy_needs_nothing_from_a_solution():
    for path in list_notebooks():
        assert student.names_from_solutions(nbformat.read(path, as_version=4)) == {}, path.name
