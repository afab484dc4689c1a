"""HTML reports of executed notebooks with the kit's nbconvert template (``taskrel_report``).

One self-contained file per notebook: CSS and figures inline, no script at all, maths as MathML
(converted here, :mod:`taskrel_utils.kit.mathml`), code collapsed, a header with the profile and the
papermill parameters, and a banner on smoke runs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat

from ..core.errors import TaskrelError
from ..core.io import atomic_path
from ..core.paths import TEMPLATES_DIR
from ..present.tables_display import RUN_FILE_ATTRIBUTE

TEMPLATE = "taskrel_report"


def _exporter():
    """nbconvert's HTML exporter with the kit's template, its markdown maths turned into MathML."""
    from nbconvert import HTMLExporter
    from jinja2 import pass_context

    from .mathml import markdown_to_html

    class ReportExporter(HTMLExporter):
        @pass_context
        def markdown2html(self, context, source):
            cell = context.get("cell", {})
            path = context.get("resources", {}).get("metadata", {}).get("path", "")
            return markdown_to_html(source, attachments=cell.get("attachments", {}), path=path,
                                    embed_images=self.embed_images, anchor_link_text=self.anchor_link_text,
                                    exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)

    return ReportExporter(template_name=TEMPLATE, extra_template_basedirs=[str(TEMPLATES_DIR)])


def render_html(notebook_path, out_dir) -> Path:
    """Render ``notebook_path`` to ``out_dir/<stem>.html``; returns the HTML path."""
    notebook_path = Path(notebook_path)
    nb = _without_widgets(read_notebook(notebook_path))
    exporter = _exporter()
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook_path.stem}})
    out = Path(out_dir) / f"{notebook_path.stem}.html"
    body = point_run_links(body, run_root=notebook_path.parent.parent, report_dir=out.parent)
    with atomic_path(out) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return out


def read_notebook(path):
    """The notebook at ``path`` (nbformat 4); a file that is not a whole notebook (cut short by a
    full disk or a killed writer) raises a :class:`TaskrelError` that names it and says how to
    get it again."""
    path = Path(path)
    try:
        return nbformat.read(path, as_version=4)
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # nbformat's errors on broken JSON
        raise TaskrelError(f"{path} is not a whole notebook ({type(e).__name__}: {str(e)[:80]}); it was cut short "
                           f"or edited: execute it again (python -m taskrel_utils run --notebooks {path.name[:2]} "
                           f"--run-dir {path.parent.parent}) or open it to repair it") from None


#: the output type of a Jupyter widget (a progress bar of ``tqdm.auto``, an explorer)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _without_widgets(nb):
    """``nb`` without its widget outputs and saved widget state (``metadata.widgets``), in place.

    A widget lives in a running kernel: in a static page nbconvert writes its state as scripts
    and its text fallback is the bar as first drawn ("0/13 [00:00<?]"), not as it ended. Headless
    runs draw the explorers as static figures, so the widgets left are the progress bars.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    return nb


_RUN_LINK = re.compile(r'<a\b[^>]*\b' + RUN_FILE_ATTRIBUTE + r'="([^"]+)"[^>]*>')
_HREF = re.compile(r'\bhref="[^"]*"')


def point_run_links(html: str, run_root, report_dir) -> str:
    """Re-point the links to files of the run (``tables_display`` marks them with the file's path
    inside the run) so that they open from ``report_dir``: ``../tables/<name>.csv`` in a run's
    ``report/`` folder."""
    def relative(m):
        target = Path(run_root).resolve() / m.group(1)
        href = Path(os.path.relpath(target, Path(report_dir).resolve())).as_posix()
        return _HREF.sub(lambda _: f'href="{href}"', m.group(0))
    return _RUN_LINK.sub(relative, html)


def stderr_outputs(notebook_path) -> list[tuple[int, str]]:
    """``(cell index, text)`` of every stderr stream in an executed notebook: warnings and messages
    that a report would show to its reader. A clean run has none."""
    nb = read_notebook(notebook_path)
    return [(index, output.get("text", "")) for index, cell in enumerate(nb.cells)
            for output in cell.get("outputs", [])
            if output.get("output_type") == "stream" and output.get("name") == "stderr"]
