"""The job runner: in order, the numbers of a serial run, worker counts, TASKREL_JOBS, and the
caller's cache folder in every worker."""
import os
import time

import numpy as np
import pytest

from taskrel_utils import jobs


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
    assert jobs.worker_count(n_tasks, n_jobs) == expected


def test_taskrel_jobs_sets_the_default(monkeypatch):
    monkeypatch.setenv("TASKREL_JOBS", "3")
    assert jobs.n_jobs_default(10) == 3 and jobs.n_jobs_default(2) == 2 and jobs.worker_count(10) == 3
    assert jobs.worker_count(10, n_jobs=5) == 5  # an explicit n_jobs wins
    monkeypatch.setenv("TASKREL_JOBS", "1")
    out = jobs.run_jobs(_slow_identity, [(i, 0.0) for i in range(3)], progress=False)
    assert {pid for _, pid in out} == {os.getpid()}
    monkeypatch.delenv("TASKREL_JOBS")
    assert jobs.n_jobs_default(10 ** 6) == (os.cpu_count() or 1)


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
