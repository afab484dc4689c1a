"""Long tables shown short: the key columns, the first and last rows (or one row per group), and a
link to the full CSV that the run wrote.

``table_summary(frame, csv=run.save_table(name, frame), columns=[...], sort_by="value")`` displays
as a compact HTML table with a note "10 of 52 rows, 6 of 27 columns: full table <csv>". The link is
relative: from the notebook in JupyterLab it points into the run directory, and the HTML report
(``report.render_html``) rewrites it to point from the report's own folder, so it opens the CSV
beside the report in ``runs/<profile>/tables/``.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from ..core.errors import TaskrelError
from ..core.paths import NOTEBOOKS_DIR

#: the attribute that marks a link to a file of the run directory (its value: the path inside the run)
RUN_FILE_ATTRIBUTE = "data-taskrel-run-file"
ELLIPSIS = "⋮"


def _check_columns(frame: pd.DataFrame, names, what: str) -> None:
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise TaskrelError(f"{what} {missing} not in the table; its columns are: {', '.join(map(str, frame.columns))}")


def compact(frame: pd.DataFrame, columns=None, rows: int = 10, sort_by: str | None = None,
            ascending: bool = True) -> tuple[pd.DataFrame, int]:
    """The first ``rows // 2`` and last ``rows - rows // 2`` rows of ``frame[columns]`` (sorted by
    ``sort_by`` first, if given), and how many rows lie between them (0 when all fit)."""
    columns = list(columns) if columns is not None else list(frame.columns)
    _check_columns(frame, columns + ([sort_by] if sort_by else []), "columns")
    if rows < 2:
        raise TaskrelError(f"rows={rows}: show at least 2 rows (the first and the last)")
    ordered = frame.sort_values(sort_by, ascending=ascending, kind="stable") if sort_by else frame
    ordered = ordered[columns].reset_index(drop=True)
    if len(ordered) <= rows:
        return ordered, 0
    head, tail = rows // 2, rows - rows // 2
    return pd.concat([ordered.iloc[:head], ordered.iloc[-tail:]]), len(ordered) - rows


def group_summary(frame: pd.DataFrame, by: str, values, stats=("mean", "min", "max"), digits: int = 3) -> pd.DataFrame:
    """One row per value of ``by`` (e.g. each target), columns ``"<value> <stat>"`` for every column
    of ``values`` and statistic of ``stats``, plus ``n`` (rows per group); rounded to ``digits``."""
    values = list(values)
    _check_columns(frame, [by, *values], "columns")
    grouped = frame.groupby(by, sort=False)
    out = grouped[values].agg(list(stats))
    out.columns = [f"{value} {stat}" for value, stat in out.columns]
    out.insert(0, "n", grouped.size())
    return out.round(digits).reset_index()


def _cell(value, digits: int, whole: bool = False) -> str:
    """One cell as text: a float to ``digits`` places (``whole``: a column of whole numbers, shown
    without decimals), never ``-0.000`` (a negative value that rounds to zero shows as ``0.000``);
    a missing value as an empty cell."""
    if isinstance(value, float):
        if pd.isna(value):
            return ""
        text = f"{value:.0f}" if whole else f"{value:.{digits}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text
    return str(value)


def _whole_columns(frame: pd.DataFrame) -> list[bool]:
    """Per column: whether it holds only whole numbers stored as floats (a count or an epoch number
    with a missing value, e.g. ``30000.0`` and NaN), to be shown as ``30000`` and not ``30000.000``."""
    out = []
    for column in frame.columns:
        values = frame[column]
        finite = pd.to_numeric(values, errors="coerce").dropna() if values.dtype.kind == "f" else None
        out.append(finite is not None and len(finite) > 0 and bool((finite == finite.round()).all()))
    return out


class TableSummary:
    """A compact view of a long table with a link to its CSV; shows itself as HTML in notebooks and
    reports, as text elsewhere. ``.frame`` holds the rows and columns shown."""

    def __init__(self, frame: pd.DataFrame, csv=None, columns=None, rows: int = 10, sort_by: str | None = None,
                 ascending: bool = True, caption: str | None = None, digits: int = 3):
        self.frame, self.hidden_rows = compact(frame, columns, rows, sort_by, ascending)
        self.total_rows, self.total_columns = frame.shape
        self.csv = Path(csv) if csv is not None else None
        self.caption, self.digits, self.sort_by = caption, digits, sort_by
        self._head = rows // 2 if self.hidden_rows else len(self.frame)

    def note(self) -> str:
        """The plain-text note under the table: what is shown of how much."""
        shown = f"{len(self.frame)} of {self.total_rows} rows" + (f" (sorted by {self.sort_by})" if self.sort_by else "")
        shown += f", {self.frame.shape[1]} of {self.total_columns} columns"
        return shown + (f"; full table: {self.csv.name}" if self.csv else "")

    def link(self) -> str:
        """``<a>`` to the CSV, relative to the notebooks folder; marked so the report can re-point it."""
        if self.csv is None:
            return ""
        inside_run = f"{self.csv.parent.name}/{self.csv.name}"  # tables/<name>.csv
        href = Path(os.path.relpath(self.csv.resolve(), NOTEBOOKS_DIR.resolve())).as_posix()
        return (f'<a href="{html.escape(href)}" {RUN_FILE_ATTRIBUTE}="{html.escape(inside_run)}">'
                f"{html.escape(self.csv.name)}</a>")

    def _repr_html_(self) -> str:
        if self.frame.empty:  # no table of headers alone: say that there is nothing to show
            link = f"; full table: {self.link()}" if self.csv else ""
            what = html.escape(self.caption) if self.caption else "this table"
            return f'<p class="taskrel-table-note">{what}: no rows in this run{link}</p>'
        whole = _whole_columns(self.frame)
        cells = [[_cell(v, self.digits, w) for v, w in zip(row, whole)] for row in self.frame.itertuples(index=False)]
        if self.hidden_rows:
            gap = [f"{ELLIPSIS} {self.hidden_rows} more rows"] + [ELLIPSIS] * (self.frame.shape[1] - 1)
            cells.insert(self._head, gap)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
        header = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.frame.columns)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        note = html.escape(self.note().split("; full table:")[0])
        link = f"; full table: {self.link()}" if self.csv else ""
        # a wide table scrolls inside its own box instead of running off the page
        return (f'<div class="taskrel-summary-box" style="overflow-x: auto; max-width: 100%">'
                f'<table class="dataframe taskrel-summary">{caption}<thead><tr>{header}</tr></thead>'
                f'<tbody>{body}</tbody></table></div><p class="taskrel-table-note">{note}{link}</p>')

    def __repr__(self) -> str:
        if self.frame.empty:
            return f"{self.caption or 'this table'}: no rows in this run"
        text = self.frame.to_string(index=False, float_format=lambda v: f"{v:.{self.digits}f}")
        return (f"{self.caption}\n" if self.caption else "") + text + "\n" + self.note()


def table_summary(frame: pd.DataFrame, csv=None, columns=None, rows: int = 10, sort_by: str | None = None,
                  ascending: bool = True, caption: str | None = None, digits: int = 3) -> TableSummary:
    """A compact view of ``frame`` to ``display``: ``columns`` (default: all), the first and last rows
    (``rows`` in all, after sorting by ``sort_by``), floats to ``digits`` places, and a link to
    ``csv`` (the path ``Run.save_table`` returned) with the full table."""
    return TableSummary(frame, csv, columns, rows, sort_by, ascending, caption, digits)
