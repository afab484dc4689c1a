"""The HTML report: self-contained, header with profile and parameters, smoke banner, code collapsed."""
import base64
import re

import nbformat
import pytest

from taskrel_utils.kit import report

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


def _run_with_executed(tmp_path, profile="mini"):
    """A run folder with one executed notebook (maths, a summarised table, a figure) and its files."""
    import pandas as pd
    from taskrel_utils.present import tables_display
    from taskrel_utils.kit.runs import Run

    run = Run(tmp_path / "run")
    frame = pd.DataFrame({"encoder": list("abcdefghijkl"), "value": range(12)})
    csv = run.save_table("01_values", frame)
    run.path("figures", "01_curve.png").write_bytes(base64.b64decode(PNG))
    view = tables_display.table_summary(frame, csv=csv, rows=4)
    nb = nbformat.read(executed_notebook(tmp_path, profile), as_version=4)
    nb.cells[0].source = "# Demo notebook\n\nThe bound $\\tau W(P, Q)$ and\n\n$$\\underbrace{a}_{b} \\tag{1}$$"
    nb.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={
        "text/html": view._repr_html_(), "text/plain": repr(view)}))
    nb.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={
        "text/markdown": "reading: $r = 0.5$", "text/plain": "reading"}))
    nb.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={
        "text/latex": "$$\\hat y$$", "text/plain": "y"}))
    path = run.path("executed", "01_demo.ipynb")
    nbformat.write(nb, path)
    return run, path


def test_report_maths_is_mathml_and_table_links_point_beside_the_report(tmp_path):
    run, path = _run_with_executed(tmp_path)
    html = report.render_html(path, run.path("report")).read_text()
    assert html.count("<math") == 4  # markdown cell (2), a text/markdown output, a text/latex output
    assert '<span class="taskrel-eqno">(1)</span>' in html
    assert "$" not in re.sub(r"<(style|script)[^>]*>.*?</\1>", "", html, flags=re.S)  # no TeX delimiter left
    assert not re.search(r"<script", html)  # no MathJax, no script at all
    assert 'href="../tables/01_values.csv"' in html


def test_stderr_outputs_lists_the_warnings_a_report_would_show(tmp_path):
    path = executed_notebook(tmp_path, "smoke")
    assert report.stderr_outputs(path) == []
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs.append(nbformat.v4.new_output("stream", name="stderr", text="UserWarning: careful\n"))
    nbformat.write(nb, path)
    assert report.stderr_outputs(path) == [(1, "UserWarning: careful\n")]


def test_index_links_reports_figures_and_tables(tmp_path):
    from taskrel_utils.kit import report_index

    run, path = _run_with_executed(tmp_path, profile="smoke")
    report.render_html(path, run.path("report"))
    run.save_params("pipeline", {"profile": "smoke", "seconds": {"01_demo": 12.3}})
    index = report_index.write_index(run.root)
    assert index == run.path("report", "index.html")
    page = index.read_text()
    assert "<h2>Demo notebook</h2>" in page and "SMOKE RUN" in page and "ran in 12 s" in page
    for href in ("01_demo.html", "../figures/01_curve.png", "../tables/01_values.csv"):
        assert f'href="{href}"' in page
        assert (index.parent / href).exists()
    assert '<img src="../figures/01_curve.png"' in page
    assert not re.search(r"(src|href)=\"(https?:|/)", page) and "<script" not in page  # offline, relative
    assert 'class="headline"' not in page  # 01_demo has no metrics: no headline numbers


def test_index_shows_each_notebooks_headline_numbers_under_its_thumbnails(tmp_path):
    from taskrel_utils.kit import report_index

    run, path = _run_with_executed(tmp_path)
    run.save_metrics("01_demo", {"encoders": {"a": 8}, "tasks": {"ref": {}, "t": {}}, "feature_sets": 4,
                                 "reference": "ref", "nearest_mean_accuracy": {"a/ref": 0.75}})
    page = report_index.write_index(run.root).read_text()
    figures, headline = page.index('class="figures"'), page.index('class="headline"')
    assert figures < headline < page.index("tables (CSV)")
    assert "<li>1 encoder x 2 tasks: 4 feature sets</li>" in page
    assert "nearest-class-mean accuracy on the reference ref: 0.750 (best a)" in page


def test_cli_report_renders_a_whole_run_and_its_index(tmp_path, capsys):
    from taskrel_utils.kit.cli import main

    run, _ = _run_with_executed(tmp_path)
    assert main(["report", str(run.root)]) == 0
    assert run.path("report", "01_demo.html").exists() and run.path("report", "index.html").exists()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no executed notebooks" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_report_names_a_truncated_notebook_and_how_to_execute_it_again(tmp_path, capsys):
    from taskrel_utils.kit.cli import main

    run, path = _run_with_executed(tmp_path)
    path.write_text(path.read_text()[:200])  # cut short: nbformat's NotJSONError before
    assert main(["report", str(run.root)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a whole notebook (NotJSONError" in err
    assert f"python -m taskrel_utils run --notebooks 01 --run-dir {run.root}" in err
    assert not run.path("report", "01_demo.html").exists()


def test_widget_outputs_and_state_leave_the_report(tmp_path):
    """Progress bars (widget views) and the saved widget state would be scripts and a stale
    "0%" bar in the static page: the report drops them, and keeps every other output."""
    run, path = _run_with_executed(tmp_path)
    nb = nbformat.read(path, as_version=4)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    nb.cells[1].outputs.append(nbformat.v4.new_output("display_data", data={
        report.WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "text/plain": "features:   0%|          | 0/13 [00:00<?, ?it/s]"}))
    nbformat.write(nb, path)
    html = report.render_html(path, run.path("report")).read_text()
    assert "<script" not in html and "widget-state" not in html and "0/13" not in html
    assert 'href="../tables/01_values.csv"' in html  # the other outputs stay
