"""tables_display: a long table shown as its key columns and first/last rows, with a link to the CSV."""
import re

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
