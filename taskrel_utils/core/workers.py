"""The worker processes of :func:`taskrel_utils.core.jobs.run_jobs`: how many (the CPUs, the memory,
``TASKREL_JOBS``), and the environment every job carries from its caller (the cache folder), for
local processes and Dask workers (:mod:`taskrel_utils.core.cluster`) alike.
"""
from __future__ import annotations

import os
from typing import Callable

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
