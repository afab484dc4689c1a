"""The student copies (`make student`) hold no solution cells and run on the smoke profile.

One copy runs here, on the smoke profile and the session's cache (under ``make test`` beside the
smoke run, on another worker: the cache's per-entry locks let both fill it). That no kept cell of
any copy reads a name only a solution binds is checked for every notebook in
tests/unit/test_student.py.
"""
import nbformat
import pytest

from taskrel_utils.kit import pipeline, student

pytestmark = pytest.mark.notebooks

#: the notebooks whose student copies are run (the exercise cells change nothing else)
RUN_COPIES = ("01",)


def test_student_copies_hold_no_solutions_and_run(tmp_path):
    notebooks = [p for p in pipeline.list_notebooks() if p.name[:2] in RUN_COPIES]
    copies = student.write_student_copies(tmp_path / "student", notebooks)
    for original, copy in zip(notebooks, copies):
        source = nbformat.read(original, as_version=4)
        assert student.solution_cells(source), f"{original.name} has no solution cells"
        assert not student.solution_cells(nbformat.read(copy, as_version=4))
    run = pipeline.run_notebooks("smoke", run_dir=tmp_path / "run", notebooks=copies, render=False, progress=False)
    for copy in copies:
        assert run.path("executed", copy.name).exists()
        assert run.load_metrics(copy.stem)["profile"] == "smoke"
