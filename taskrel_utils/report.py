"""HTML reports of executed notebooks with the kit's nbconvert template (``taskrel_report``).

One self-contained file per notebook: CSS and figures inline, no CDN scripts, code collapsed,
a header with the profile and the papermill parameters, and a banner on smoke runs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from .io import atomic_path
from .paths import TEMPLATES_DIR

TEMPLATE = "taskrel_report"


def render_html(notebook_path, out_dir) -> Path:
    """Render ``notebook_path`` to ``out_dir/<stem>.html``; returns the HTML path."""
    from nbconvert import HTMLExporter

    notebook_path = Path(notebook_path)
    nb = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATES_DIR)])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook_path.stem}})
    out = Path(out_dir) / f"{notebook_path.stem}.html"
    with atomic_path(out) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return out
