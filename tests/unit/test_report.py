"""The HTML report: self-contained, header with profile and parameters, smoke banner, code collapsed."""
import base64
import re

import nbformat
import pytest

from taskrel_utils import report

PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def executed_notebook(tmp_path, profile):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("secret_marker = 1\nprint('hello')")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), code]
    nb.metadata["papermill"] = {"parameters": {"profile": profile, "run_dir": "runs/x", "seed": 3},
                                "start_time": "2026-01-01T00:00:00", "end_time": "2026-01-01T00:00:05",
                                "duration": 5.0}
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("profile", ["smoke", "mini"])
def test_report_header_banner_and_collapsed_code(tmp_path, profile):
    html = report.render_html(executed_notebook(tmp_path, profile), tmp_path / "report").read_text()
    assert "taskrel kit report: 01_demo" in html
    assert re.search(r"<td>profile</td><td>" + profile, html)
    assert "runs/x" in html and "<td>seed</td>" in html
    assert ("SMOKE RUN" in html) == (profile == "smoke")
    assert re.search(r"<details class=\"taskrel-code\"><summary>code</summary>.*secret_marker", html, re.S)
    assert "data:image/png;base64," in html  # figures inline


def test_report_is_self_contained(tmp_path):
    html = report.render_html(executed_notebook(tmp_path, "mini"), tmp_path / "r").read_text()
    assert not re.search(r"<script[^>]+src=\"https?:", html), "no external scripts"
    assert not re.search(r"<link[^>]+href=\"https?:", html), "no external stylesheets"
    assert "<style" in html
