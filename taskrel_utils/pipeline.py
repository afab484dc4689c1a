"""Run the numbered notebooks headlessly with papermill, in order, into one run directory.

``run_notebooks("mini")`` executes ``notebooks/NN_*.ipynb`` with the profile's parameters file
(``notebooks/params/<profile>.yaml`` where one exists), writes ``executed/<stem>.ipynb`` and
``report/<stem>.html`` under the run directory and returns the :class:`~taskrel_utils.runs.Run`.
Each notebook receives the parameters its ``parameters`` cell declares; a parameter that no
notebook declares is refused, not silently ignored. A failing notebook is kept as ``executed/<stem>.failed.ipynb`` for inspection.
The kernels inherit ``TASKREL_SCHEDULER``: with ``scheduler=`` (``run --scheduler``) every job of
their tables goes to that Dask cluster (:mod:`taskrel_utils.cluster`).

Every file of the run directory is written atomically: papermill fills a hidden temporary notebook
that is renamed to ``executed/<stem>.ipynb`` once it is complete, the notebooks write through
:class:`~taskrel_utils.runs.Run`. A run killed at any point leaves complete files and hidden
temporaries; run it again: it removes those, and the caches give back what was computed.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from . import config, report, report_index
from .errors import TaskrelError, UnknownNameError
from .io import atomic_path
from .paths import KIT_ROOT, NOTEBOOKS_DIR
from .runs import Run

KERNEL_NAME = "taskrel"


def list_notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(path) -> dict:
    """The names and defaults declared in a notebook's ``parameters`` cell."""
    import papermill as pm

    return {name: spec["default"] for name, spec in pm.inspect_notebook(str(path)).items()}


def profile_parameters(profile: str) -> dict:
    """The papermill parameters of a profile: its ``notebooks/params/<profile>.yaml`` if any."""
    if profile not in config.list_profiles():
        raise UnknownNameError("profile", profile, config.list_profiles())
    path = NOTEBOOKS_DIR / "params" / f"{profile}.yaml"
    params = yaml.safe_load(path.read_text()) if path.exists() else {}
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
    ``notebooks``: a name that none of them declares is refused. ``scheduler``: a Dask
    scheduler address for every job of the notebooks' tables (None: ``TASKREL_SCHEDULER``, if
    set); ``local`` starts one ``LocalCluster`` that all the notebooks share (:mod:`cluster`).
    """
    from .cluster import SCHEDULER_VARIABLE, scheduler_address, scheduler_session
    from .widgets import HEADLESS_VARIABLE

    paths = [Path(p) for p in (notebooks or list_notebooks())]
    if not paths:
        raise TaskrelError(f"no notebooks found in {NOTEBOOKS_DIR}")
    params = profile_parameters(profile)
    check_parameters(list_notebooks(), params)  # a typo in the profile's file
    declared = check_parameters(paths, parameters or {})  # a typo on the command line
    params.update(parameters or {})
    run = Run(run_dir or params.get("run_dir") or f"runs/{profile}")
    params["run_dir"] = str(run.root)
    run.remove_temporaries()  # what a killed run was writing (its complete files stay)
    kernel = _kernel_name()
    timings = {}
    with scheduler_session(scheduler) as address:
        # the kernels inherit these: explorers draw and create no widget; the jobs go to the scheduler
        with _environment({HEADLESS_VARIABLE: "1", SCHEDULER_VARIABLE: address or ""}):
            for path in paths:
                _execute(path, run, parameters_for(declared[path], params), kernel, timings, render, progress)
    run.save_params("pipeline", {"profile": profile, "parameters": params, "seconds": timings,
                                 "scheduler": scheduler_address(scheduler)})
    if render:  # report/index.html: every report, figure and table of the run directory
        report_index.write_index(run.root)
    return run


def _execute(path: Path, run: Run, params: dict, kernel: str, timings: dict, render: bool, progress: bool) -> None:
    """Execute one notebook into ``run`` (atomically; a failed run is kept as ``*.failed.ipynb``)."""
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
                if tmp.exists():
                    tmp.replace(failed)
                raise
    finally:
        timings[path.stem] = round(time.perf_counter() - start, 1)
    if render:
        report.render_html(out, run.path("report"))


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
