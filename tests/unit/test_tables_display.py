"""tables_display: a long table shown as its key columns and first/last rows, with a link to the CSV."""
import re

import numpy as np
import pandas as pd
import pytest

from taskrel_utils.present import tables_display
from taskrel_utils.kit import report
from taskrel_utils.core.errors import TaskrelError
from taskrel_utils.kit.runs import Run


def _long(n=40):
    return pd.DataFrame({"encoder": [f"e{i:02d}" for i in range(n)], "target": ["t1", "t2"] * (n // 2),
                         "value": [float(i) / 7 for i in range(n)], "tau": [1.0] * n, "extra": range(n)})


def test_compact_keeps_the_key_columns_and_the_first_and_last_rows():
    frame = _long()
    shown, hidden = tables_display.compact(frame, ["encoder", "value"], rows=6, sort_by="value", ascending=False)
    assert list(shown.columns) == ["encoder", "value"] and hidden == 34
    assert list(shown.encoder) == ["e39", "e38", "e37", "e02", "e01", "e00"]  # top 3 and bottom 3 by value
    small, hidden = tables_display.compact(frame.head(5), rows=6)
    assert hidden == 0 and small.equals(frame.head(5))
    with pytest.raises(TaskrelError, match="nope"):
        tables_display.compact(frame, ["encoder", "nope"])


def test_group_summary_has_one_row_per_target_with_statistics():
    summary = tables_display.group_summary(_long(), "target", ["value"])
    assert list(summary.columns) == ["target", "n", "value mean", "value min", "value max"]
    row = summary.set_index("target").loc["t2"]
    assert row["n"] == 20 and row["value min"] == pytest.approx(round(1 / 7, 3))
    assert row["value max"] == pytest.approx(round(39 / 7, 3))


def test_table_summary_html_shows_the_gap_and_links_the_csv(tmp_path):
    run = Run(tmp_path / "run")
    frame = _long()
    csv = run.save_table("03_bound_terms", frame)
    view = tables_display.table_summary(frame, csv=csv, columns=["encoder", "target", "value"], rows=4,
                                        caption="bound terms")
    html = view._repr_html_()
    assert html.count("<tr>") == 1 + 4 + 1  # header, 4 rows, the gap row
    assert html.startswith('<div class="taskrel-summary-box" style="overflow-x: auto')  # wide tables scroll
    assert "⋮ 36 more rows" in html and "<caption>bound terms</caption>" in html
    assert "4 of 40 rows, 3 of 5 columns" in html and "0.143" in html  # floats rounded to 3 places
    m = re.search(r'<a href="([^"]+)" data-taskrel-run-file="tables/03_bound_terms.csv">03_bound_terms.csv</a>', html)
    assert m, html
    assert "4 of 40 rows" in repr(view) and "03_bound_terms.csv" in repr(view)
    # in the run's report folder the link is re-pointed to the CSV beside it
    page = report.point_run_links(html, run_root=run.root, report_dir=run.path("report"))
    assert 'href="../tables/03_bound_terms.csv" data-taskrel-run-file=' in page
    # the attributes in either order (nbconvert re-writes the page through BeautifulSoup)
    swapped = '<a data-taskrel-run-file="tables/x.csv" class="c" href="/elsewhere/x.csv">x</a>'
    assert report.point_run_links(swapped, run.root, run.path("report")) == (
        '<a data-taskrel-run-file="tables/x.csv" class="c" href="../tables/x.csv">x</a>')
    assert (run.path("report") / "../tables/03_bound_terms.csv").resolve() == csv.resolve()


def test_table_summary_without_csv_or_gap():
    view = tables_display.table_summary(_long(4), rows=10)
    html = view._repr_html_()
    assert "⋮" not in html and "<a " not in html and "4 of 4 rows, 5 of 5 columns" in html


def test_numbers_are_written_without_minus_zero_nan_or_six_decimals():
    n = tables_display.number_text
    assert [n(-0.0001), n(-0.0004, 3, True), n(0.0, 2, True), n(-0.5, 2, True), n(float("nan")), n(None)] == \
        ["0.000", "0.000", "0.00", "-0.50", "-", "-"]
    assert [n(16), n(16.0), n(0.1), n("code"), n(True)] == ["16", "16.000", "0.100", "code", "True"]
    frame = pd.DataFrame({"lr": [0.01, -0.00001], "epochs": [16, 8], "note": ["a", None]}, index=[0.1, 1.0])
    html_text = tables_display.number_style(frame, digits=3, caption="c").to_html()
    assert "0.010" in html_text and ">16<" in html_text and ">0.000<" in html_text and "-0.000" not in html_text
    assert ">0.100<" in html_text and "0.100000" not in html_text  # the float index too
    assert "nan" not in html_text.lower() and "None" not in html_text


def test_pearson_style_colours_the_sign_corrected_r():
    t = pd.DataFrame({"LogME": [0.8, np.nan], "Ours (TR)": [-0.8, 0.8]}, index=["a", "Average"])
    assert tables_display.sign_corrected(t)["Ours (TR)"].tolist() == [0.8, -0.8]
    html_text = tables_display.pearson_style(t, "cap").to_html()
    by_cell = {cell: colour for cells, colour in re.findall(r"([^{}]+)\{\s*background-color: (#\w+)", html_text)
               for cell in re.findall(r"row\d+_col\d+", cells)}
    assert by_cell["row0_col0"] == by_cell["row0_col1"]  # LogME +0.8 and TR -0.8: both good, the same blue
    assert by_cell["row1_col1"] != by_cell["row0_col1"]  # TR +0.8: the wrong way
    assert by_cell["row1_col0"] != "#000000"  # an undefined r is neutral, not black
    assert "+0.80" in html_text and "-0.80" in html_text and ">-<" in html_text and "nan" not in html_text.lower()
    assert tables_display.SIGN_CORRECTED_LEGEND in html_text


def test_below_probe_table_and_fraction_view():
    ft = pd.DataFrame({"encoder": ["a", "a", "b", "c"], "target": ["t", "u", "t", "u"],
                       "accuracy": [0.5, 0.9, 0.7, 0.6], "probe_accuracy": [0.6, 0.8, 0.705, 0.7]})
    grid = tables_display.below_probe_table(ft)
    assert grid.data.to_dict() == {"t": {"a": "0.500 / 0.600", "c": ""}, "u": {"a": "", "c": "0.600 / 0.700"}}
    assert "the 2 pairs that end more than 0.01 below" in grid.to_html()
    assert tables_display.below_probe_table(ft.assign(accuracy=1.0)) is None
    frac = pd.DataFrame({"fraction": [0.1, 0.1, 1.0], "seed": [0, 1, 0], "target": "t", "pearson_r": [-0.6, -0.5, -0.4]})
    view = tables_display.fraction_view(frac).data
    assert view.loc["0.1", "t"] == "-0.55 (-0.60 to -0.50)" and view.loc["1", "t"] == "-0.40"


def test_interval_text():
    assert tables_display.interval_text(0.651, 0.03, 0.961) == "+0.65 [+0.03, +0.96]"
    assert tables_display.interval_text(-0.0001, -0.2, 0.1) == "0.00 [-0.20, +0.10]"
    assert tables_display.interval_text(np.nan, np.nan, np.nan) == "-"
    assert tables_display.interval_text(0.5, np.nan, np.nan) == "+0.50 [-]"


def test_percent_text_never_writes_minus_zero():
    assert [tables_display.percent_text(v) for v in (0.3077, -0.001, 0.0, np.nan)] == ["31%", "0%", "0%", "n/a"]
