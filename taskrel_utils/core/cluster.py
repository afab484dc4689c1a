"""The Dask backend of :func:`jobs.run_jobs`: the same jobs, sent to a ``dask.distributed`` cluster.

A *scheduler address* chooses the cluster: ``tcp://host:8786`` (any running scheduler: a SLURM
cluster of ``dask-jobqueue``, ``dask scheduler`` started by hand, ...) or ``local`` (a
``LocalCluster`` of this machine, started on first use: :func:`workers.n_jobs_default` worker
processes, one thread each). ``TASKREL_SCHEDULER`` gives the address to every
:func:`jobs.run_jobs` of the process (the tables, the zoo's pre-training, the fine-tuning grid);
``python -m taskrel_utils run --scheduler ADDRESS`` sets it for the notebooks' kernels.

Each job is one task; the caller's :data:`workers.WORKER_ENVIRONMENT` travels with it (the cache
folder resolved, so that the workers read and write the caller's cache: on a cluster it must be on
a file system every worker mounts). Results come back in the order of the jobs; they equal a
serial run's because every job is deterministic on its own.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Sequence

from tqdm.auto import tqdm

from .errors import TaskrelError
from .workers import n_jobs_default, with_environment

#: The variable that sends :func:`jobs.run_jobs` to a Dask scheduler (unset or empty: local processes).
SCHEDULER_VARIABLE = "TASKREL_SCHEDULER"
#: The address that starts a ``LocalCluster`` on this machine instead of joining a running scheduler.
LOCAL = "local"

#: where a local cluster serves its dashboard: a free port, so that clusters of several runs coexist
LOCAL_DASHBOARD = "127.0.0.1:0"

_CLIENTS: dict = {}  # address -> (Client, LocalCluster or None), one per process
_LOCK = threading.Lock()


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The scheduler to use: ``scheduler`` if given, else ``TASKREL_SCHEDULER``; None (or an empty
    string) when neither names one."""
    value = os.environ.get(SCHEDULER_VARIABLE, "") if scheduler is None else scheduler
    return value.strip() or None


def _require_distributed():
    try:
        import distributed
    except ImportError as exc:
        raise TaskrelError(f"a Dask scheduler was asked for ({SCHEDULER_VARIABLE} or --scheduler) but "
                           "dask.distributed is not installed: pip install -r requirements.txt "
                           f"(or unset {SCHEDULER_VARIABLE} to run the jobs in local processes)") from exc
    return distributed


def start_local_cluster(n_workers: int | None = None):
    """A ``LocalCluster`` of ``n_workers`` processes (None: :func:`workers.n_jobs_default`), one
    thread each, its HTTP server (dashboard) on a free port of this machine. The caller closes it."""
    distributed = _require_distributed()
    n = n_jobs_default(os.cpu_count() or 1) if n_workers is None else max(1, int(n_workers))
    return distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    dashboard_address=LOCAL_DASHBOARD)


def client(address: str):
    """This process's client of the scheduler at ``address`` (``local``: of its own
    ``LocalCluster``, started on first use), connected once and reused."""
    distributed = _require_distributed()
    with _LOCK:
        known = _CLIENTS.get(address)
        if known is not None and known[0].status == "running":
            return known[0]
        cluster = start_local_cluster() if address == LOCAL else None
        try:
            c = distributed.Client(cluster if cluster is not None else address, set_as_default=False, timeout="30s")
        except OSError as exc:
            raise TaskrelError(f"cannot reach the Dask scheduler at {address!r} ({exc}); start it first, or set "
                               f"{SCHEDULER_VARIABLE} / --scheduler to 'local' or leave it unset") from exc
        _CLIENTS[address] = (c, cluster)
        return c


def close_clients() -> None:
    """Close this process's clients and the local cluster it started (a later job reconnects)."""
    with _LOCK:
        for c, cluster in _CLIENTS.values():
            c.close()
            if cluster is not None:
                cluster.close()
        _CLIENTS.clear()


@contextmanager
def scheduler_session(scheduler: str | None):
    """The address that other processes (the notebooks' kernels) should use for ``scheduler``:
    ``local`` starts one ``LocalCluster`` here for the duration of the block and yields its
    ``tcp://`` address; any other address is yielded as it is; None yields None."""
    address = scheduler_address(scheduler)
    if address != LOCAL:
        yield address
        return
    cluster = start_local_cluster()
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def map_jobs(fn: Callable, jobs: Sequence[Sequence], address: str, environment: dict, *, desc: str = "jobs",
             progress: bool = True) -> list:
    """``[fn(*job) for job in jobs]`` computed on the cluster at ``address``, in the order of ``jobs``.

    Each job's arguments are scattered to the workers (large arrays travel once per job, not in
    the task graph); each task sets ``environment`` (:data:`workers.WORKER_ENVIRONMENT` values, None:
    unset) before calling ``fn``. The first failing job cancels the rest and raises its error here.
    """
    distributed = _require_distributed()
    c = client(address)
    packed = c.scatter([tuple(job) for job in jobs], hash=False)
    futures = [c.submit(_call_packed, environment, fn, job, pure=False) for job in packed]
    try:
        finished = distributed.as_completed(futures, loop=c.loop)
        for future in tqdm(finished, total=len(futures), desc=desc, disable=not progress):
            if future.status == "error":
                future.result()  # raises the job's own exception
        return c.gather(futures)
    except BaseException:
        c.cancel(futures)
        raise
    finally:
        c.cancel(packed)


def _call_packed(environment: dict, fn: Callable, job: tuple):
    """``fn(*job)`` on a worker, with the caller's environment."""
    return with_environment(environment, fn, *job)
