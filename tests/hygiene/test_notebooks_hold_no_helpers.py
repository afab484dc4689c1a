"""The notebooks keep narrative and calls: functions, classes, widgets and figure construction
live in ``taskrel_utils`` (plots, widgets, correlation, ...), where they are tested."""
import re

import nbformat
import pytest

from taskrel_utils.kit import pipeline

NOTEBOOKS = pipeline.list_notebooks()
FORBIDDEN = {
    r"^\s*(def|class)\s": "a function or class definition (move it to taskrel_utils)",
    r"\bimport ipywidgets\b|widgets\.interact\b": "an inline widget (use taskrel_utils.present.widgets)",
    r"\bsns\.|\bplt\.subplots\b|\.set_title\(|\.barh\(": "figure construction (use taskrel_utils.present.plots)",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_cells_hold_no_helpers_or_figure_code(path):
    nb = nbformat.read(path, as_version=4)
    found = [f"cell {i}: {why}: {line.strip()}"
             for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             for line in cell.source.splitlines()
             for pattern, why in FORBIDDEN.items() if re.search(pattern, line)]
    assert not found, "\n".join(found)
