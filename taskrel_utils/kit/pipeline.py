"""Run the numbered notebooks headlessly with papermill, in order, into one run directory.

``run_notebooks("mini")`` executes ``notebooks/NN_*.ipynb`` with the profile's parameters file
(``notebooks/params/<profile>.yaml`` where one exists), writes ``executed/<stem>.ipynb`` and
``report/<stem>.html`` under the run directory and returns the :class:`~taskrel_utils.kit.runs.Run`.
Each report renders in a background thread while the next notebook executes.
Each notebook receives the parameters its ``parameters`` cell declares; a parameter that no
notebook declares is refused, not silently ignored. A failing notebook is kept as ``executed/<stem>.failed.ipynb`` for inspection.
The kernels inherit ``TASKREL_SCHEDULER``: with ``scheduler=`` (``run --scheduler``) every job of
their tables goes to that Dask cluster (:mod:`taskrel_utils.core.cluster`).

Every file of the run directory is written atomically: papermill fills a hidden temporary notebook
that is renamed to ``executed/<stem>.ipynb`` once it is complete, the notebooks write through
:class:`~taskrel_utils.kit.runs.Run`. A run killed at any point leaves complete files and hidden
temporaries; run it again: it removes those, and the caches give back what was computed.
"""
from __future__ import annotations

import ast
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ..study import config
from . import report, report_index
from ..core.errors import TaskrelError, UnknownNameError
from ..core.io import atomic_path
from ..core.memory import PeakMemory
from ..core.paths import KIT_ROOT, NOTEBOOKS_DIR
from .runs import Run

KERNEL_NAME = "taskrel"


def list_notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(path) -> dict:
    """The names and defaults (their source text, e.g. ``'[1, 2]'``) declared in a notebook's
    ``parameters`` cell."""
    import papermill as pm

    return {name: spec["default"] for name, spec in pm.inspect_notebook(str(path)).items()}


def profile_parameters(profile: str) -> dict:
    """The papermill parameters of a profile: its ``notebooks/params/<profile>.yaml`` if any."""
    if profile not in config.list_profiles():
        raise UnknownNameError("profile", profile, config.list_profiles())
    path = NOTEBOOKS_DIR / "params" / f"{profile}.yaml"
    params = config.read_yaml(path, "parameters file") if path.exists() else {}
    params["profile"] = profile
    return params


def check_parameters(notebooks, parameters: dict) -> dict:
    """Refuse a name of ``parameters`` that none of ``notebooks`` (one path or several) declares
    (papermill would only warn); the error lists the names they declare. Returns what each
    notebook declares, ``{path: {name: default}}``."""
    paths = [Path(p) for p in ([notebooks] if isinstance(notebooks, (str, Path)) else notebooks)]
    declared = {path: notebook_parameters(path) for path in paths}
    known = sorted({name for names in declared.values() for name in names})
    where = paths[0].name if len(paths) == 1 else "the notebooks"
    for name in parameters:
        if name not in known:
            raise UnknownNameError("parameter", name, known, of=where)
    return declared


def check_parameter_values(profile: str, declared: dict, parameters: dict) -> None:
    """Refuse a parameter value of the wrong kind before any notebook starts: the profile's fields
    (``targets``, ``encoders``, ``seed``, ...) as :func:`config.load_profile` checks them, any other
    against the kind of its default in the notebooks that ``declared`` it (a list for a list, a
    number for a number; a default of None takes anything)."""
    config.load_profile(profile, **{k: v for k, v in parameters.items() if k in config.FIELDS and k != "name"})
    for path, defaults in declared.items():
        for name, source in defaults.items():
            kind = _kind(source)
            if name in parameters and name not in config.FIELDS and kind and not _fits(parameters[name], kind[0]):
                raise TaskrelError(f"parameter {name} = {parameters[name]!r} does not fit {Path(path).name}, whose "
                                   f"default is {source}: pass {kind[1]} (python -m taskrel_utils run -p {name} VALUE "
                                   f"reads VALUE as YAML)")


#: the kinds of notebook defaults: ``(kind of the default, types a value may have, name)``; bool first
_KINDS = ((bool, (bool,), "true or false"), (int, (int,), "an integer"), (float, (int, float), "a number"),
          (str, (str,), "text"), ((list, tuple), (list, tuple), "a list"), (dict, (dict,), "a mapping"))


def _kind(source: str):
    """``(types, name)`` of :data:`_KINDS` for a default's source text; None for None or an expression."""
    try:
        default = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None
    return next(((types, name) for kind, types, name in _KINDS if isinstance(default, kind)), None)


def _fits(value, types) -> bool:
    """``value`` has one of ``types``, and is a bool only where a bool is expected."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def parameters_for(declared: dict, parameters: dict) -> dict:
    """The part of ``parameters`` whose names a notebook ``declared`` (``notebook_parameters``)."""
    return {name: value for name, value in parameters.items() if name in declared}


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    return KERNEL_NAME if KERNEL_NAME in KernelSpecManager().find_kernel_specs() else "python3"


def run_notebooks(profile: str = "mini", run_dir=None, parameters: dict | None = None,
                  notebooks=None, render: bool = True, progress: bool = True, scheduler: str | None = None) -> Run:
    """Execute ``notebooks`` (default: all, in order) on ``profile`` into ``run_dir``.

    ``parameters`` override the profile's parameters file (``notebooks/params/<profile>.yaml``).
    Each notebook receives the names its ``parameters`` cell declares. Before anything executes,
    the file's names are checked against all the numbered notebooks and ``parameters`` against
    ``notebooks``: a name that none of them declares is refused, and so is a value of the wrong
    kind (:func:`check_parameter_values`). ``scheduler``: a Dask
    scheduler address for every job of the notebooks' tables (None: ``TASKREL_SCHEDULER``, if
    set); ``local`` starts one ``LocalCluster`` that all the notebooks share (:mod:`cluster`).

    The report of each notebook renders while the next one executes (:class:`_Reports`); a failed
    render stops the run at the next notebook boundary, at the latest before ``params/pipeline.json``
    is written. ``pipeline.json`` records the seconds of each notebook's execution (``seconds``) and
    of each report (``render_seconds``), and of what follows the last notebook (``wrap_up_seconds``),
    and each notebook's peak resident memory in MiB (``peak_memory_mb``: ``kernel``, the kernel
    process's, and ``all_processes``, the kernel's and its worker processes' together; :class:`PeakMemory`;
    the workers of a ``local`` scheduler start before the notebooks and do not count).
    """
    from ..core.cluster import SCHEDULER_VARIABLE, scheduler_address, scheduler_session
    from ..present.widgets import HEADLESS_VARIABLE

    paths = [Path(p) for p in (notebooks or list_notebooks())]
    if not paths:
        raise TaskrelError(f"no notebooks found in {NOTEBOOKS_DIR}")
    params = profile_parameters(profile)
    check_parameters(list_notebooks(), params)  # a typo in the profile's file
    declared = check_parameters(paths, parameters or {})  # a typo on the command line
    params.update(parameters or {})
    check_parameter_values(profile, declared, params)  # a value of the wrong kind, before anything runs
    run = Run(run_dir or params.get("run_dir") or f"runs/{profile}")
    params["run_dir"] = str(run.root)
    run.remove_temporaries()  # what a killed run was writing (its complete files stay)
    kernel = _kernel_name()
    timings, peaks = {}, {}
    with scheduler_session(scheduler) as address:
        # the kernels inherit these: explorers draw and create no widget; the jobs go to the scheduler
        with _environment({HEADLESS_VARIABLE: "1", SCHEDULER_VARIABLE: address or ""}), \
                _Reports(run.path("report") if render else None) as reports:
            for path in paths:
                with PeakMemory() as peak:
                    _execute(path, run, parameters_for(declared[path], params), kernel, timings, progress)
                peaks[path.stem] = peak.megabytes()
                reports.submit(run.path("executed", path.name))
            executed = time.perf_counter()
        rendered = time.perf_counter()  # every report is written
    wrap_up = {"renders": rendered - executed, "scheduler": time.perf_counter() - rendered}
    run.save_params("pipeline", {"profile": profile, "parameters": params, "seconds": timings, "peak_memory_mb": peaks,
                                 "render_seconds": reports.seconds, "scheduler": scheduler_address(scheduler),
                                 "wrap_up_seconds": {k: round(v, 1) for k, v in wrap_up.items()},
                                 "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})  # vs. index.html's mtime, the exit
    if render:  # report/index.html: every report, figure and table of the run directory
        report_index.write_index(run.root)
    return run


def _execute(path: Path, run: Run, params: dict, kernel: str, timings: dict, progress: bool) -> None:
    """Execute one notebook into ``run`` (atomically; a failed run is kept as ``*.failed.ipynb``
    when papermill wrote it whole: a full disk leaves it cut short, and then nothing is kept);
    ``timings[stem]``: the seconds of its execution."""
    import papermill as pm

    out = run.path("executed", path.name)
    failed = out.with_suffix(".failed.ipynb")
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        with atomic_path(out) as tmp:
            try:
                pm.execute_notebook(str(path), str(tmp), parameters=params, kernel_name=kernel,
                                    cwd=str(KIT_ROOT), progress_bar=progress, log_output=False)
            except BaseException:
                if _whole_json(tmp):
                    tmp.replace(failed)
                raise
    finally:
        timings[path.stem] = round(time.perf_counter() - start, 1)


def _whole_json(path: Path) -> bool:
    """Whether the file at ``path`` exists and holds whole JSON (a notebook not cut short)."""
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


class _Reports:
    """Render the HTML reports of executed notebooks one at a time in a background thread, in the
    order submitted, into ``report_dir`` (None: render nothing). ``seconds[stem]``: each render's
    wall seconds. Leaving the block waits for every render; without another error in flight, the
    first failed render is raised then, naming its notebook; ``submit`` raises it earlier, at the
    first notebook boundary after it failed."""

    def __init__(self, report_dir):
        self.report_dir, self.seconds, self._renders = report_dir, {}, {}
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskrel-report") if report_dir else None

    def submit(self, executed: Path) -> None:
        if self._thread:
            self._raise_failed(only_done=True)
            self._renders[executed] = self._thread.submit(self._render, executed)

    def _render(self, executed: Path) -> None:
        start = time.perf_counter()
        report.render_html(executed, self.report_dir)  # atomic: a failed render leaves no file
        self.seconds[executed.stem] = round(time.perf_counter() - start, 1)

    def _raise_failed(self, only_done: bool = False) -> None:
        for executed, future in self._renders.items():
            error = future.exception() if future.done() or not only_done else None
            if error:
                raise TaskrelError(f"the HTML report of {executed.stem} failed ({type(error).__name__}: {error}); "
                                   f"the executed notebook is complete: render it again with "
                                   f"python -m taskrel_utils report {executed}") from error

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._thread:
            self._thread.shutdown(wait=True)  # the renders already submitted finish, even after an error
            if error is None:
                self._raise_failed()


@contextmanager
def _environment(values: dict):
    """Set environment variables for the duration of the block (restored after)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
