"""Running independent jobs (one per (encoder, target) pair, per CNN to pre-train, per fine-tuning
seed) in worker processes, in order, with a progress bar.

:func:`run_jobs` is the one place the kit fans work out: to local worker processes (joblib), or,
when a Dask scheduler is named (``scheduler=`` or ``TASKREL_SCHEDULER``), to the workers of a
``dask.distributed`` cluster (:mod:`taskrel_utils.cluster`). Parallel runs give the numbers of a
serial run because every job is deterministic on its own (its own seed, its own threads).
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm

from .errors import TaskrelError
from .memory import available_bytes
from .paths import cache_dir

#: The variable that sets the default number of worker processes (else: the CPUs and the memory).
JOBS_VARIABLE = "TASKREL_JOBS"
#: The memory one worker process is assumed to take: about 650 MB once it has imported the kit
#: (torch), plus its own copy of the features and its fits.
WORKER_MEMORY_BYTES = 2 ** 30

#: Environment variables every job sees as the caller has them *now*. joblib keeps its worker
#: processes from one call to the next and a worker keeps the environment it started with, so a
#: caller that has since pointed TASKREL_CACHE elsewhere (a test, a notebook cell) would have its
#: jobs read and write the old cache folder. Each job carries these values and sets them first.
WORKER_ENVIRONMENT = ("TASKREL_CACHE",)


def n_jobs_default(n_tasks: int) -> int:
    """Worker processes for ``n_tasks`` independent jobs, at least 1 and at most ``n_tasks``:
    ``TASKREL_JOBS`` if set, else as many as both the CPUs and the memory allow,
    ``min(CPU count, available memory // WORKER_MEMORY_BYTES)`` (every worker holds its own copy
    of the features; the CPU count alone where the available memory is unknown)."""
    env = os.environ.get(JOBS_VARIABLE, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise TaskrelError(f"{JOBS_VARIABLE}={env!r}: it must be a positive integer (the number of worker "
                               f"processes); set e.g. {JOBS_VARIABLE}=1, or unset it for the default")
        n = int(env)
    else:
        n = os.cpu_count() or 1
        memory = available_bytes()
        if memory is not None:
            n = min(n, memory // WORKER_MEMORY_BYTES)
    return max(1, min(n, n_tasks))


def worker_count(n_tasks: int, n_jobs: int | None = None) -> int:
    """The worker processes :func:`run_jobs` uses for ``n_tasks`` jobs: ``n_jobs`` (None:
    :func:`n_jobs_default`) capped to ``1 .. n_tasks``."""
    return n_jobs_default(n_tasks) if n_jobs is None else max(1, min(int(n_jobs), n_tasks))


def run_jobs(fn: Callable, jobs: Iterable[Sequence], *, n_jobs: int | None = None, desc: str = "jobs",
             progress: bool = True, scheduler: str | None = None) -> list:
    """``[fn(*job) for job in jobs]``, in the order of ``jobs``.

    ``jobs``: argument tuples, one per job (picklable, as ``fn``: they travel to other processes).
    ``scheduler``: a Dask scheduler address, or ``"local"`` for a ``LocalCluster`` (None:
    ``TASKREL_SCHEDULER``; unset or empty: none); with one, every job runs on the cluster's
    workers and ``n_jobs`` does not apply (:func:`cluster.map_jobs`). Otherwise ``n_jobs``: local
    worker processes (None: :func:`n_jobs_default`; capped by :func:`worker_count`);
    with one, the jobs run in this process. ``desc``, ``progress``: the progress bar (one tick per
    finished job).
    """
    from . import cluster

    jobs = list(jobs)
    address = cluster.scheduler_address(scheduler)
    if address is not None and jobs:
        return cluster.map_jobs(fn, jobs, address, caller_environment(resolve_cache=True), desc=desc,
                                progress=progress)
    workers = worker_count(len(jobs), n_jobs)
    if workers == 1:
        return [fn(*job) for job in tqdm(jobs, desc=desc, disable=not progress)]
    from joblib import Parallel, delayed

    environment = caller_environment()
    results = Parallel(n_jobs=workers, return_as="generator")(
        delayed(with_environment)(environment, fn, *job) for job in jobs)
    return list(tqdm(results, total=len(jobs), desc=desc, disable=not progress))


def caller_environment(resolve_cache: bool = False) -> dict:
    """The caller's :data:`WORKER_ENVIRONMENT` values (None: unset). ``resolve_cache``:
    ``TASKREL_CACHE`` becomes the absolute path of the folder this process uses
    (``paths.cache_dir()``), for workers that may have another default or another working
    directory (another machine, another checkout)."""
    environment = {name: os.environ.get(name) for name in WORKER_ENVIRONMENT}
    if resolve_cache:
        environment["TASKREL_CACHE"] = str(cache_dir().resolve())
    return environment


def with_environment(environment: dict, fn: Callable, *args):
    """``fn(*args)`` in a worker, with the caller's :data:`WORKER_ENVIRONMENT` (None: unset)."""
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return fn(*args)
