"""The runner renders each notebook's report while the next notebook executes: papermill and the
renderer are replaced by fakes, so no kernel starts."""
import errno
import subprocess
import sys
import threading
import time

import nbformat
import papermill
import pytest

from taskrel_utils.core import io
from taskrel_utils.kit import pipeline, report, report_index
from taskrel_utils.core.errors import TaskrelError

NOTEBOOKS = pipeline.list_notebooks()[:3]
STEMS = [nb.stem for nb in NOTEBOOKS]
WAIT = 10  # seconds a fake waits for the other thread before it fails the test


@pytest.fixture
def fakes(monkeypatch):
    """Fake papermill and renderer; ``hooks[("execute" | "render", stem)]`` runs inside them (and may
    raise); ``events`` lists what happened, in order; ``started[stem]`` is set when a notebook
    starts executing."""
    hooks, events = {}, []
    started = {stem: threading.Event() for stem in STEMS}

    def execute_notebook(source, out, **kwargs):
        stem = source.rsplit("/", 1)[-1][:-len(".ipynb")]
        started[stem].set()
        events.append(("execute", stem))
        nbformat.write(nbformat.v4.new_notebook(), out)
        hooks.get(("execute", stem), lambda: None)()

    def render_html(executed, out_dir):
        hooks.get(("render", executed.stem), lambda: None)()
        out = out_dir / f"{executed.stem}.html"
        with io.atomic_path(out) as tmp:
            tmp.write_text(executed.stem)
        events.append(("render", executed.stem))
        return out

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.setattr(report, "render_html", render_html)
    monkeypatch.setattr(pipeline, "_kernel_name", lambda: "python3")
    return hooks, events, started


def _run(tmp_path, **kwargs):
    return pipeline.run_notebooks("smoke", run_dir=tmp_path / "run", notebooks=NOTEBOOKS, progress=False, **kwargs)


def _waits_for(event, what):
    def wait():
        if not event.wait(WAIT):
            raise AssertionError(f"{what} did not happen within {WAIT} s")
    return wait


def test_a_report_renders_while_the_next_notebook_executes(fakes, tmp_path):
    hooks, events, started = fakes
    for stem, following in zip(STEMS, STEMS[1:]):  # a serial runner would wait here for the timeout
        hooks[("render", stem)] = _waits_for(started[following], f"executing {following}")
    hooks[("render", STEMS[-1])] = lambda: time.sleep(0.2)
    run = _run(tmp_path)
    assert [stem for kind, stem in events if kind == "render"] == STEMS  # in order, each once
    assert [stem for kind, stem in events if kind == "execute"] == STEMS
    record = run.load_params("pipeline")
    assert list(record["seconds"]) == STEMS and max(record["seconds"].values()) < 0.2  # execution only
    assert set(record["render_seconds"]) == set(STEMS) and record["render_seconds"][STEMS[-1]] >= 0.2
    assert set(record["wrap_up_seconds"]) == {"renders", "scheduler"} and record["saved_at"]
    assert record["wrap_up_seconds"]["renders"] >= 0.1  # the runner waited for the last report


def test_every_report_and_the_record_exist_before_the_index_is_written(fakes, tmp_path, monkeypatch):
    hooks, _, _ = fakes
    hooks[("render", STEMS[-1])] = lambda: time.sleep(0.2)  # the last report is the slowest
    seen = {}

    def write_index(root):
        seen["reports"] = sorted(p.stem for p in (root / "report").glob("*.html"))
        seen["record"] = (root / "params" / "pipeline.json").exists()

    monkeypatch.setattr(report_index, "write_index", write_index)
    _run(tmp_path)
    assert seen == {"reports": STEMS, "record": True}


def test_a_failed_render_fails_the_run_and_names_its_notebook(fakes, tmp_path):
    hooks, _, _ = fakes

    def broken():
        raise RuntimeError("template missing")

    hooks[("render", STEMS[0])] = broken
    with pytest.raises(TaskrelError, match=f"report of {STEMS[0]} failed .*template missing") as err:
        _run(tmp_path)
    assert isinstance(err.value.__cause__, RuntimeError)
    assert not (tmp_path / "run" / "params" / "pipeline.json").exists()
    assert not (tmp_path / "run" / "report" / f"{STEMS[0]}.html").exists()
    assert not (tmp_path / "run" / "report" / "index.html").exists()


def test_a_failed_notebook_waits_for_the_reports_already_started(fakes, tmp_path):
    hooks, events, started = fakes
    hooks[("render", STEMS[0])] = lambda: (_waits_for(started[STEMS[1]], "executing")(), time.sleep(0.2))

    def broken():
        raise RuntimeError("cell 4 failed")

    hooks[("execute", STEMS[1])] = broken
    with pytest.raises(RuntimeError, match="cell 4 failed"):  # the notebook's own error
        _run(tmp_path)
    assert events[-1] == ("render", STEMS[0])  # finished before the error reached the caller
    run = tmp_path / "run"
    assert (run / "report" / f"{STEMS[0]}.html").read_text() == STEMS[0]
    assert (run / "executed" / f"{STEMS[1]}.failed.ipynb").exists()
    assert not (run / "executed" / f"{STEMS[2]}.ipynb").exists()  # the run stopped there
    assert io.temporaries(run) == [] and not (run / "params" / "pipeline.json").exists()


def test_without_reports_nothing_renders(fakes, tmp_path):
    hooks, events, _ = fakes
    run = _run(tmp_path, render=False)
    assert [kind for kind, _ in events] == ["execute"] * 3 and not list(run.path("report").glob("*.html"))
    assert run.load_params("pipeline")["render_seconds"] == {}


def test_a_broken_parameters_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "smoke.yaml").write_text("run_dir: runs/smoke\nreference_epochs: [1, 2\n")
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", tmp_path)
    with pytest.raises(TaskrelError, match=f"parameters file {tmp_path / 'params' / 'smoke.yaml'} is not valid YAML "
                                           "at line 3"):
        pipeline.profile_parameters("smoke")


def test_parameter_values_are_checked_against_the_profile_and_the_notebooks_defaults():
    declared = {NOTEBOOKS[1]: pipeline.notebook_parameters(NOTEBOOKS[1])}  # 02: hand_steps = 5, tau0_grid = [...]
    ok = dict(targets=["uci-digits"], seed=2, hand_steps=3, tau0_grid=(0.1, 1), max_penalty_price=1, encoder="lenet")
    pipeline.check_parameter_values("smoke", declared, ok)  # an int where the default is a float, a tuple for a list
    for bad, message in ((dict(targets=3), "targets must be a non-empty list"), (dict(seed=1.5), "seed"),
                         (dict(hand_steps=True), "pass an integer"), (dict(tau0_grid=0.2), "pass a list"),
                         (dict(max_penalty_price="0.1"), "pass a number")):
        with pytest.raises(TaskrelError, match=message):
            pipeline.check_parameter_values("smoke", declared, dict(ok, **bad))


def test_a_full_run_disk_names_the_notebook_and_leaves_no_half_written_failed_notebook(fakes, tmp_path):
    """papermill fills the temporary notebook when the disk fills: the error names the executed
    notebook and says what to do; neither it nor a cut-short ``.failed.ipynb`` is left (an invalid-JSON
    one was before)."""
    hooks, _, _ = fakes

    def disk_full_midway():
        executed = next((tmp_path / "run" / "executed").glob(f".{STEMS[0]}.ipynb.*"))
        executed.write_text(executed.read_text()[:30])
        raise OSError(errno.ENOSPC, "No space left on device")

    hooks[("execute", STEMS[0])] = disk_full_midway
    executed = tmp_path / "run" / "executed" / f"{STEMS[0]}.ipynb"
    with pytest.raises(TaskrelError, match=f"cannot write {executed}: No space left on device; free space on that "):
        _run(tmp_path)
    assert not list((tmp_path / "run" / "executed").iterdir()), "no notebook, failed or temporary"


def _holding(megabytes: int, seconds: float, child: str = "") -> str:
    """Python code that holds ``megabytes`` of resident memory for ``seconds`` (and runs ``child``,
    code of the same kind, in a process of its own meanwhile)."""
    spawn = f"c = subprocess.Popen([sys.executable, '-c', {child!r}]); " if child else ""
    return (f"import subprocess, sys, time; b = b'x' * ({megabytes} << 20); {spawn}time.sleep({seconds}); "
            + ("c.wait()" if child else ""))


def test_pipeline_json_records_each_notebooks_peak_memory(fakes, tmp_path):
    """A fake kernel holding 200 MB with a worker of 100 MB: the kernel's peak and that of both;
    a notebook that starts no process has none, and a process started before the run never counts."""
    hooks, _, _ = fakes
    kernel = _holding(200, 1.5, child=_holding(100, 1.0))
    hooks[("execute", STEMS[0])] = lambda: subprocess.run([sys.executable, "-c", kernel], check=True)
    before = subprocess.Popen([sys.executable, "-c", _holding(150, 30)])
    try:
        peaks = _run(tmp_path).load_params("pipeline")["peak_memory_mb"]
    finally:
        before.kill()
        before.wait()
    assert list(peaks) == STEMS
    assert 200 <= peaks[STEMS[0]]["kernel"] < 300, peaks
    assert 300 <= peaks[STEMS[0]]["all_processes"] < 450, peaks
    assert peaks[STEMS[1]] == peaks[STEMS[2]] == {"kernel": None, "all_processes": None}
