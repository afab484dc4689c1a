"""The report defects a reader once met cannot come back: every output of every notebook of the
smoke run (what the HTML reports show), checked for

* a stray ``None`` (an exercise cell that prints its empty answer), and "after None" in a sentence;
* a table with headers and no rows;
* a float written with six or more decimals (``16.000000``: pandas' default format);
* ``-0.000`` or ``-0%`` (a negative number rounded to zero);
* ``NaN`` / ``None`` in a displayed table (drop the column, or say what a missing value means);
* an internal bookkeeping column (``value_wasserstein``, whose value is "code") in a displayed table;

and the run's front page for each notebook's headline numbers. ``defects(path)`` can be pointed
at any executed notebook (e.g. a mini run's ``executed/*.ipynb``).
"""
import re
from pathlib import Path

import nbformat
import pytest

from taskrel_utils.kit import pipeline

pytestmark = pytest.mark.notebooks  # the smoke_run fixture: tests/notebooks/conftest.py

#: output formats a report shows as text (images are left alone)
TEXT_FORMATS = ("text/html", "text/markdown", "text/plain")
#: pandas' default float format: six decimals, seen as trailing zeros (16.000000, 0.100000) or as six
#: decimals behind a whole part (12.345678); a small number at four significant digits (0.007438) is fine
SIX_DECIMALS = re.compile(r"(?<![\d.])(?:\d+\.\d{5,}0|[1-9]\d*\.\d{6,})(?![\d.])")
MINUS_ZERO = re.compile(r"(?<![\w.])[-\u2212]0(?:\.0+)?(?![\d.])%?")  # -0.000, -0.00, -0%
TABLE = re.compile(r"<table\b.*?</table>", re.S | re.I)
CELL = re.compile(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", re.S | re.I)
MISSING = re.compile(r"^\s*(nan|none|<na>|nat)\s*$", re.I)
INTERNAL_COLUMNS = ("value_wasserstein",)


def _shown(output) -> list[tuple[str, str]]:
    """``(format, text)`` of what a report shows of one output: a stream's text, or the richest of
    an output's text formats (html before markdown before plain, as a browser picks)."""
    if output.get("output_type") == "stream":
        return [("stream", output.get("text", ""))] if output.get("name") == "stdout" else []
    data = output.get("data", {})
    for fmt in TEXT_FORMATS:
        if fmt in data:
            text = data[fmt]
            return [(fmt, "".join(text) if isinstance(text, list) else text)]
    return []


def _table_defects(html_text: str) -> list[str]:
    found = []
    for table in TABLE.findall(html_text):
        body = re.search(r"<tbody\b[^>]*>(.*?)</tbody>", table, re.S | re.I)
        if body is not None and not re.search(r"<tr\b", body.group(1), re.I):
            found.append("an empty table (headers, no rows)")
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in CELL.findall(table)]
        if any(MISSING.match(c) for c in cells):
            found.append(f"a missing value shown as {next(c for c in cells if MISSING.match(c))!r} in a table")
        found += [f"the internal column {c!r} in a table" for c in INTERNAL_COLUMNS if c in cells]
    return found


def _plain_table_defects(text: str) -> list[str]:
    """A DataFrame printed as text: ``Empty DataFrame``, or NaN / None among its cells."""
    found = []
    if "Empty DataFrame" in text:
        found.append("an empty table (headers, no rows)")
    if re.search(r"(?<![\w/])(NaN|nan|NaT|<NA>)(?![\w/])", text):
        found.append("NaN in a table printed as text")
    found += [f"the internal column {c!r}" for c in INTERNAL_COLUMNS if re.search(rf"\b{c}\b", text)]
    return found


def defects(path) -> list[str]:
    """Every report defect of the executed notebook at ``path``, as ``"cell N: what (excerpt)"``."""
    nb = nbformat.read(path, as_version=4)
    found = []
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            for fmt, text in _shown(output):
                what = []
                if fmt in ("stream", "text/plain") and any(line.strip() == "None" for line in text.splitlines()):
                    what.append("a None output")
                if "after None" in text:
                    what.append('"after None"')
                what += [f"a float with six decimals ({m})" for m in SIX_DECIMALS.findall(text)[:2]]
                what += [f"a minus zero ({m})" for m in MINUS_ZERO.findall(text)[:2]]
                if fmt == "text/html":
                    what += _table_defects(text)
                elif fmt == "text/plain" or (fmt == "stream" and re.search(r"^\s*\S+(\s{2,}\S+){2,}\s*$", text, re.M)):
                    what += _plain_table_defects(text)
                found += [f"cell {index}: {w}" for w in dict.fromkeys(what)]
    return found


NOTEBOOKS = [nb.stem for nb in pipeline.list_notebooks()]


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_no_report_defect_in_any_output(smoke_run, stem):
    found = defects(smoke_run.path("executed", f"{stem}.ipynb"))
    assert not found, f"{stem}:\n" + "\n".join(found)


def test_the_index_shows_every_notebooks_headline_numbers(smoke_run):
    page = smoke_run.path("report", "index.html").read_text()
    sections = re.findall(r'<section id="nb(\d\d)">(.*?)</section>', page, re.S)
    assert [n for n, _ in sections] == [s[:2] for s in NOTEBOOKS]
    for number, section in sections:
        lines = re.findall(r"<li>([^<]*\d[^<]*)</li>", section.split('class="headline"', 1)[-1].split("</ul>")[0])
        assert 'class="headline"' in section and lines, f"notebook {number}: no headline numbers on the index"


def test_the_checks_find_each_defect(tmp_path):
    """Each check fires on the defect it names, and not on the fixed output."""
    cells = {
        "None": [nbformat.v4.new_output("stream", name="stdout", text="None\n")],
        "after None": [nbformat.v4.new_output("stream", name="stdout", text="stopped after None steps\n")],
        "empty": [nbformat.v4.new_output("display_data", data={
            "text/html": "<table><thead><tr><th>a</th></tr></thead><tbody>\n</tbody></table>"})],
        "six": [nbformat.v4.new_output("display_data", data={"text/plain": "lr  16.000000  0.100000"})],
        "minus": [nbformat.v4.new_output("display_data", data={"text/markdown": "a change of -0.000 nats, -0% of it"})],
        "nan": [nbformat.v4.new_output("display_data", data={
            "text/html": "<table><tbody><tr><th>t</th><td>NaN</td></tr></tbody></table>", "text/plain": "ok"})],
        "internal": [nbformat.v4.new_output("execute_result", execution_count=1, data={
            "text/html": "<table><thead><tr><th>value_wasserstein</th></tr></thead><tbody><tr><td>code</td></tr>"
                         "</tbody></table>"})],
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=o) for o in cells.values()])
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output("display_data", data={
        "text/html": "<table><tbody><tr><td>-0.004</td><td>16.000</td><td>-</td><td>-0.5%</td><td>2026-12-05</td>"
                     "</tr></tbody></table>",
        "text/plain": "None"}), nbformat.v4.new_output("stream", name="stdout", text="saved in 12.5 s; r = -0.004\n")]))
    path = Path(tmp_path) / "nb.ipynb"
    nbformat.write(nb, path)
    found = defects(path)
    expected = ["cell 0: a None output", 'cell 1: "after None"', "cell 2: an empty table (headers, no rows)",
                "cell 3: a float with six decimals (16.000000)", "cell 3: a float with six decimals (0.100000)",
                "cell 4: a minus zero (-0.000)", "cell 4: a minus zero (-0%)", "cell 5: a missing value shown as 'NaN' in a table",
                "cell 6: the internal column 'value_wasserstein' in a table"]
    assert found[:len(expected)] == expected
    assert all(not f.startswith("cell 7") for f in found), found  # the fixed output passes
    assert found[len(expected):] == []
