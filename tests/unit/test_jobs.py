"""The job runner: in order, the numbers of a serial run, worker counts, TASKREL_JOBS, and the
caller's cache folder in every worker."""
import os
import time

import numpy as np
import pytest

from taskrel_utils.core import jobs, memory, workers
from taskrel_utils.core.errors import TaskrelError


def _slow_identity(i, delay):
    time.sleep(delay)
    return i, os.getpid()


def _draw(seed):
    return np.random.default_rng(seed).normal(size=3)


def _cache_folder():
    return os.environ.get("TASKREL_CACHE"), os.getpid()


def test_results_keep_the_order_of_the_jobs():
    work = [(i, 0.3 if i == 0 else 0.0) for i in range(6)]  # the first job finishes last
    out = jobs.run_jobs(_slow_identity, work, n_jobs=2, progress=False)
    assert [i for i, _ in out] == list(range(6))
    assert os.getpid() not in {pid for _, pid in out}  # they ran in worker processes
    assert jobs.run_jobs(_slow_identity, iter(work[1:]), n_jobs=1, progress=False) == [
        (i, os.getpid()) for i in range(1, 6)]  # one worker: in this process; any iterable of jobs
    assert jobs.run_jobs(_draw, [], n_jobs=4, progress=False) == []


def test_parallel_results_equal_serial():
    work = [(seed,) for seed in range(5)]
    serial = jobs.run_jobs(_draw, work, n_jobs=1, progress=False)
    parallel = jobs.run_jobs(_draw, work, n_jobs=3, progress=False)
    assert len(parallel) == 5 and all(np.array_equal(a, b) for a, b in zip(serial, parallel))
    assert not np.array_equal(serial[0], serial[1])


@pytest.mark.parametrize("n_tasks, n_jobs, expected", [(3, 10, 3), (5, 2, 2), (5, 0, 1), (5, -2, 1), (0, 4, 1),
                                                        (0, None, 1), (1, None, 1)])
def test_worker_count_is_capped_by_the_jobs(n_tasks, n_jobs, expected):
    assert workers.worker_count(n_tasks, n_jobs) == expected


def test_taskrel_jobs_sets_the_default(monkeypatch):
    monkeypatch.setenv("TASKREL_JOBS", "3")
    assert workers.n_jobs_default(10) == 3 and workers.n_jobs_default(2) == 2 and workers.worker_count(10) == 3
    assert workers.worker_count(10, n_jobs=5) == 5  # an explicit n_jobs wins
    monkeypatch.setenv("TASKREL_JOBS", "1")
    out = jobs.run_jobs(_slow_identity, [(i, 0.0) for i in range(3)], progress=False)
    assert {pid for _, pid in out} == {os.getpid()}
    monkeypatch.delenv("TASKREL_JOBS")
    monkeypatch.setattr(workers, "available_bytes", lambda: None)  # memory unknown: the CPUs
    assert workers.n_jobs_default(10 ** 6) == (os.cpu_count() or 1)


@pytest.mark.parametrize("cpus, available_gib, expected", [
    (8, 3.5, 3),     # an 8-core laptop with 3.5 GB free: 3 workers, not 8
    (8, 100, 8),     # plenty of memory: the CPUs
    (8, 0.5, 1),     # less than one worker's share: still one
    (None, 4, 1),    # the CPU count unknown: one
    (8, None, 8),    # the memory unknown: the CPUs
])
def test_the_default_respects_the_available_memory_as_well_as_the_cores(monkeypatch, cpus, available_gib, expected):
    monkeypatch.delenv("TASKREL_JOBS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    memory = None if available_gib is None else int(available_gib * workers.WORKER_MEMORY_BYTES)
    monkeypatch.setattr(workers, "available_bytes", lambda: memory)
    assert workers.n_jobs_default(100) == expected and workers.worker_count(100) == expected
    assert workers.n_jobs_default(2) == min(expected, 2)
    monkeypatch.setenv("TASKREL_JOBS", "5")  # the explicit setting wins over both
    assert workers.n_jobs_default(100) == 5


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_taskrel_jobs_is_named(monkeypatch, value):
    monkeypatch.setenv("TASKREL_JOBS", value)
    with pytest.raises(TaskrelError, match=f"TASKREL_JOBS='{value}': it must be a positive integer .* set e.g. "
                                           "TASKREL_JOBS=1, or unset it"):
        workers.n_jobs_default(10)


def test_available_memory_is_read_from_the_system():
    available = memory.available_bytes()
    assert available is None or 0 < available <= __import__("psutil").virtual_memory().total


def test_workers_see_the_callers_cache_folder_now(monkeypatch, tmp_path):
    work = [()] * 4
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path / "a"))
    first = jobs.run_jobs(_cache_folder, work, n_jobs=2, progress=False)
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path / "b"))  # the workers started with "a"
    second = jobs.run_jobs(_cache_folder, work, n_jobs=2, progress=False)
    monkeypatch.delenv("TASKREL_CACHE")
    third = jobs.run_jobs(_cache_folder, work, n_jobs=2, progress=False)
    assert {c for c, _ in first} == {str(tmp_path / "a")}
    assert {c for c, _ in second} == {str(tmp_path / "b")}
    assert {c for c, _ in third} == {None}
    assert os.getpid() not in {pid for _, pid in first + second + third}
