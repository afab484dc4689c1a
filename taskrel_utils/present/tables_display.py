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

import numpy as np
import pandas as pd

from ..core.errors import TaskrelError
from ..core.paths import NOTEBOOKS_DIR
from ..study.published import LOWER_IS_BETTER

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


def below_probe_table(ft: pd.DataFrame, margin: float = 0.01):
    """The pairs whose fine-tuned ``accuracy`` ends more than ``margin`` below the frozen probe's
    (``probe_accuracy``) as a compact grid: one row per encoder and one column per target that has
    such a pair, each cell "fine-tuned / probe" (blank where the pair is not below). A styled
    table with its caption, to ``display``; None when no pair is below."""
    below = ft[(ft.accuracy < ft.probe_accuracy - margin)]
    if below.empty:
        return None
    cells = below.assign(cell=[f"{a:.3f} / {p:.3f}" for a, p in zip(below.accuracy, below.probe_accuracy)])
    grid = (cells.pivot(index="encoder", columns="target", values="cell")
            .reindex(index=[e for e in dict.fromkeys(ft.encoder) if e in set(below.encoder)],
                     columns=[t for t in dict.fromkeys(ft.target) if t in set(below.target)])
            .fillna(""))
    what = "the pair that ends" if len(below) == 1 else f"the {len(below)} pairs that end"
    return grid.style.set_caption(f"{what} more than {margin:.2f} below the frozen probe: fine-tuned / probe "
                                  "accuracy (blank: at or above)")


#: what the colours of :func:`pearson_style` mean, for its caption
SIGN_CORRECTED_LEGEND = ("Colour: r times the score's good sign (blue: it ranks the zoo the right way, red: the "
                         "wrong way, whatever the score's direction); the numbers are the raw r.")


def sign_corrected(table: pd.DataFrame, lower_is_better=LOWER_IS_BETTER) -> pd.DataFrame:
    """``table`` (one column per score) with the columns of lower-is-better scores negated: a
    correlation with accuracy in the good direction is positive for every score."""
    sign = pd.Series([-1.0 if c in lower_is_better else 1.0 for c in table.columns], index=table.columns)
    return table.astype(float) * sign


def pearson_style(table: pd.DataFrame, caption: str, lower_is_better=LOWER_IS_BETTER):
    """A table of correlations with accuracy (one column per score) shown with its raw r, signed to
    two places ("-" where undefined), coloured by the sign-corrected r (:func:`sign_corrected`), so
    a good negative r of a lower-is-better score (task-relatedness, PACTran) is as blue as a good
    positive r of the others (an undefined r: neutral); the caption ends with :data:`SIGN_CORRECTED_LEGEND`."""
    return (table.style.format(lambda v: number_text(v, 2, signed=True))
            .background_gradient(cmap="RdBu", vmin=-1, vmax=1, axis=None,
                                 gmap=sign_corrected(table, lower_is_better).fillna(0.0).to_numpy())
            .set_caption(f"{caption} {SIGN_CORRECTED_LEGEND}"))


def number_text(value, digits: int = 3, signed: bool = False, na: str = "-") -> str:
    """A table cell: ``value`` to ``digits`` places (``signed``: with its sign), never ``-0.000`` (a
    number that rounds to zero is written without a sign), ``na`` where it is missing or not finite;
    integers as they are, anything else as text."""
    if value is None or (isinstance(value, (float, np.floating)) and not np.isfinite(value)):
        return na
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(value)
    text = f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return text.lstrip("+-") if float(text) == 0 else text


def percent_text(value, digits: int = 0, na: str = "n/a") -> str:
    """``value`` as a percentage (``31%``), never ``-0%``; ``na`` where missing or not finite."""
    if value is None or not np.isfinite(value):
        return na
    text = f"{value:.{digits}%}"
    return text.lstrip("-") if float(text[:-1]) == 0 else text


def interval_text(estimate, low, high, digits: int = 2) -> str:
    """``+0.65 [+0.03, +0.96]``: an estimate and its interval, signed (:func:`number_text`); ``-``
    for an undefined estimate, ``+0.65 [-]`` for an undefined interval."""
    if number_text(estimate) == "-":
        return "-"
    bounds = [number_text(v, digits, True) for v in (low, high)]
    return f"{number_text(estimate, digits, True)} " + ("[-]" if "-" in bounds else f"[{bounds[0]}, {bounds[1]}]")


def number_style(frame: pd.DataFrame, digits: int = 3, signed: bool = False, caption: str | None = None,
                 na: str = "-"):
    """``frame`` styled for display with every number written by :func:`number_text` (``digits``
    places, no ``-0.000``, ``na`` for a missing value, integers whole), and ``caption``."""
    style = frame.style.format(lambda v: number_text(v, digits, signed, na))
    if isinstance(frame.index, pd.MultiIndex) or frame.index.dtype.kind == "f":
        style = style.format_index(lambda v: number_text(v, digits, False, na), axis=0)
    return style.set_caption(caption) if caption else style


def fraction_view(by_fraction: pd.DataFrame):
    """Notebook 05's fraction table to display: one row per fraction, one column per target, each
    cell the mean Pearson r over the subsample seeds with its range ("-0.58 (-0.60 to -0.57)"); a
    fraction with one subsample (the whole set) shows its one r."""
    cells = {}
    for (fraction, target), g in by_fraction.groupby(["fraction", "target"], sort=False):
        r = g.pearson_r.to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        cells[fraction, target] = ("-" if not len(r) else number_text(r[0], 2, True) if len(r) == 1 else
                                   f"{number_text(r.mean(), 2, True)} ({number_text(r.min(), 2, True)} to "
                                   f"{number_text(r.max(), 2, True)})")
    view = pd.Series(cells).unstack()
    view.index = [f"{f:g}" for f in view.index]
    view.index.name, view.columns.name = "fraction", "target"
    return view.style.set_caption("Pearson r of task-relatedness with fine-tuned accuracy per fraction of the "
                                  "target data: mean over the subsample seeds (their range)")


#: notebook 05's label-dependence table, the columns shown and their headers
LABEL_DEPENDENCE_COLUMNS = {
    "agreement": "pseudo-label agreement", "r_value": "r of TR, with / without labels",
    "share_reweighted_reference_loss": "L_C share of TR's variance", "share_distribution_mismatch": "tau W share",
    "w_true": "W, true labels", "w_pseudo": "W, pseudo-labels", "w_shuffled": "W, shuffled labels",
    "w_spread": "W's std over encoders", "w_change": "std of W's change without labels"}


def label_dependence_view(dependence: pd.DataFrame):
    """``drivers.label_dependence`` to display: one row per target, the columns of
    :data:`LABEL_DEPENDENCE_COLUMNS` under readable headers, two places."""
    view = dependence.set_index("target")[list(LABEL_DEPENDENCE_COLUMNS)].rename(columns=LABEL_DEPENDENCE_COLUMNS)
    return number_style(view, digits=2, caption="main zoo, per target, every value with the theorem's W "
                                                "(unrounded): what the labels change")
