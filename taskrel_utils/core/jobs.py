"""Running independent jobs (one per (encoder, target) pair, per CNN to pre-train, per fine-tuning
seed) in worker processes, in order, with a progress bar.

:func:`run_jobs` is the one place the kit fans work out: to local worker processes (joblib), or,
when a Dask scheduler is named (``scheduler=`` or ``TASKREL_SCHEDULER``), to the workers of a
``dask.distributed`` cluster (:mod:`taskrel_utils.core.cluster`). Parallel runs give the numbers of a
serial run because every job is deterministic on its own (its own seed, its own threads). How
many local workers, and what they inherit from the caller: :mod:`taskrel_utils.core.workers`.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm

from . import cluster
from .workers import caller_environment, with_environment, worker_count


def run_jobs(fn: Callable, jobs: Iterable[Sequence], *, n_jobs: int | None = None, desc: str = "jobs",
             progress: bool = True, scheduler: str | None = None) -> list:
    """``[fn(*job) for job in jobs]``, in the order of ``jobs``.

    ``jobs``: argument tuples, one per job (picklable, as ``fn``: they travel to other processes).
    ``scheduler``: a Dask scheduler address, or ``"local"`` for a ``LocalCluster`` (None:
    ``TASKREL_SCHEDULER``; unset or empty: none); with one, every job runs on the cluster's
    workers and ``n_jobs`` does not apply (:func:`cluster.map_jobs`). Otherwise ``n_jobs``: local
    worker processes (None: :func:`workers.n_jobs_default`; capped by :func:`workers.worker_count`);
    with one, the jobs run in this process. ``desc``, ``progress``: the progress bar (one tick per
    finished job).
    """
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
