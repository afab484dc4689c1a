"""The front page of a run's reports: ``runs/<profile>/report/index.html``.

One section per notebook: its title, a link to its HTML report, its figures as thumbnails (each a
link to the full PNG), its headline numbers under them (read from the run's ``metrics/<notebook>.json``
by :func:`taskrel_utils.present.headlines.headlines`) and its CSV tables. Inline CSS, no script, only relative links inside the run
directory, so the folder can be copied or zipped and opened offline.
"""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

from ..core.io import atomic_path
from ..present.headlines import headlines
from .report import read_notebook

INDEX_NAME = "index.html"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #223; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccd; }
.smoke { background: #ffe08a; border: 2px solid #c99a00; padding: 0.6em 1em; border-radius: 4px; font-weight: 700; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures figure { margin: 0; width: 320px; }
.figures img { width: 100%; height: 220px; object-fit: contain; border: 1px solid #dde; background: #fff; }
a.report { font-weight: 600; font-size: 1.05em; }
.figures figcaption, .meta { font-size: 0.85em; color: #556; }
ul.tables { columns: 2; font-size: 0.9em; }
ul.headline { margin: 0.8em 0 0.4em; padding: 0.5em 1em 0.5em 2em; background: #f4f6fb; border-left: 3px solid #4a6fa5; }
ul.headline li { margin: 0.15em 0; }
"""


def _title(executed: Path, fallback: str) -> str:
    """The first markdown heading of an executed notebook (``fallback`` when there is none)."""
    if executed.exists():
        for cell in read_notebook(executed).cells:
            if cell.cell_type == "markdown":
                m = re.search(r"^#+\s+(.+)$", cell.source, re.M)
                if m:
                    return m.group(1).strip()
    return fallback


def _href(path: Path, report_dir: Path) -> str:
    return html.escape(Path(os.path.relpath(path, report_dir)).as_posix())


def _notebook_section(run_root: Path, report_dir: Path, number: str, seconds: dict) -> str:
    """The section of notebook ``number`` ("03"): report link, figure thumbnails, table links."""
    reports = sorted(report_dir.glob(f"{number}_*.html"))
    executed = sorted((run_root / "executed").glob(f"{number}_*.ipynb"))
    executed = [p for p in executed if not p.name.endswith(".failed.ipynb")]
    stem = (reports or executed)[0].stem if (reports or executed) else number
    title = _title(run_root / "executed" / f"{stem}.ipynb", stem)
    parts = [f'<section id="nb{number}"><h2>{html.escape(title)}</h2><p class="meta">']
    parts.append(f'<a class="report" href="{_href(reports[0], report_dir)}">open the report {html.escape(stem)}.html</a>' if reports
                 else f"no report of {html.escape(stem)}")
    if stem in seconds:
        parts.append(f" · ran in {float(seconds[stem]):.0f} s")
    parts.append("</p>")
    figures = sorted((run_root / "figures").glob(f"{number}_*.png"))
    if figures:
        parts.append('<div class="figures">')
        for fig in figures:
            href = _href(fig, report_dir)
            parts.append(f'<figure><a href="{href}"><img src="{href}" loading="lazy" alt="{html.escape(fig.stem)}">'
                         f"</a><figcaption>{html.escape(fig.stem)}</figcaption></figure>")
        parts.append("</div>")
    lines = headlines(stem, _metrics(run_root, stem))
    if lines:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        parts.append(f'<ul class="headline" aria-label="headline numbers">{items}</ul>')
    tables = sorted((run_root / "tables").glob(f"{number}_*.csv"))
    if tables:
        items = "".join(f'<li><a href="{_href(t, report_dir)}">{html.escape(t.name)}</a></li>' for t in tables)
        parts.append(f'<p class="meta">tables (CSV):</p><ul class="tables">{items}</ul>')
    return "".join(parts) + "</section>"


def _metrics(run_root: Path, stem: str) -> dict:
    """The notebook's ``metrics/<stem>.json`` ({} when it is missing or unreadable)."""
    path = run_root / "metrics" / f"{stem}.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def _run_facts(run_root: Path) -> tuple[str, dict]:
    """The run's profile name and the seconds per notebook (from ``params/``, where present)."""
    pipeline = run_root / "params" / "pipeline.json"
    if pipeline.exists():
        record = json.loads(pipeline.read_text())
        return record.get("profile", "?"), record.get("seconds", {})
    profile = run_root / "params" / "profile.json"
    return (json.loads(profile.read_text()).get("name", "?") if profile.exists() else "?"), {}


def write_index(run_root, report_dir=None) -> Path:
    """Write ``report_dir/index.html`` (default ``<run_root>/report``) linking every notebook's report,
    figures and tables found in the run; returns its path."""
    run_root = Path(run_root).resolve()
    report_dir = Path(report_dir).resolve() if report_dir else run_root / "report"
    profile, seconds = _run_facts(run_root)
    numbers = sorted({p.name[:2] for folder, pattern in ((report_dir, "[0-9][0-9]_*.html"),
                                                         (run_root / "figures", "[0-9][0-9]_*.png"),
                                                         (run_root / "tables", "[0-9][0-9]_*.csv"))
                      for p in folder.glob(pattern)})
    banner = ('<p class="smoke">SMOKE RUN: tiny slices of the data, for tests only; the numbers mean nothing.</p>'
              if profile == "smoke" else "")
    contents = " · ".join(f'<a href="#nb{n}">{n}</a>' for n in numbers)
    sections = "".join(_notebook_section(run_root, report_dir, n, seconds) for n in numbers)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>taskrel kit run: {html.escape(profile)}</title><style>{_STYLE}</style></head><body>"
            f"{banner}<h1>taskrel kit run: profile {html.escape(profile)}</h1>"
            f'<p class="meta">run folder {html.escape(run_root.name)} · notebooks: {contents}</p>{sections}</body></html>\n')
    out = report_dir / INDEX_NAME
    report_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
