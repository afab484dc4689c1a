"""The Dask backend of run_jobs: jobs run on the workers in order, errors come back, the workers
use the caller's cache folder and share its entries, the relatedness and score tables equal a
serial run's; the scheduler reaches the notebooks' kernels."""
import os

import numpy as np
import pytest

from dask_worker_jobs import fail_on, pid_after, shared_entry
from taskrel_utils.core import cluster, jobs, workers
from taskrel_utils.study import config, tables
from taskrel_utils.kit import pipeline
from taskrel_utils.core.errors import TaskrelError


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 worker processes (one thread each), shared by this module."""
    local = cluster.start_local_cluster(n_workers=2)
    try:
        yield local.scheduler_address
    finally:
        cluster.close_clients()
        local.close()


def test_jobs_run_on_the_workers_in_order_and_errors_come_back(scheduler, monkeypatch):
    work = [(i, 0.3 if i == 0 else 0.0) for i in range(5)]  # the first job finishes last
    out = jobs.run_jobs(pid_after, work, scheduler=scheduler, progress=False)
    assert [i for i, _ in out] == list(range(5)) and os.getpid() not in {pid for _, pid in out}
    monkeypatch.setenv(cluster.SCHEDULER_VARIABLE, scheduler)  # the variable does what the argument does
    assert os.getpid() not in {pid for _, pid in jobs.run_jobs(pid_after, work[1:], progress=False)}
    assert {pid for _, pid in jobs.run_jobs(pid_after, work[1:], n_jobs=1, scheduler="", progress=False)} == {
        os.getpid()}  # an empty address: no scheduler, local processes (here: this one)
    with pytest.raises(TaskrelError, match="job 2 failed on purpose"):
        jobs.run_jobs(fail_on, [(i, 2) for i in range(4)], progress=False)


def test_two_workers_computing_one_key_share_the_callers_cache(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "marks").mkdir()
    out = jobs.run_jobs(shared_entry, [(str(tmp_path / "marks"), 7)] * 2, scheduler=scheduler, progress=False)
    (Z1, hit1, pid1, cache1), (Z2, hit2, pid2, cache2) = out
    assert pid1 != pid2 and os.getpid() not in (pid1, pid2)  # two workers at once
    assert cache1 == cache2 == str(tmp_path / "cache")
    assert (tmp_path / "marks" / "computed").read_text().count("\n") == 1  # computed once, read once
    assert sorted([hit1, hit2]) == [False, True] and np.array_equal(Z1, Z2) and Z1[0, 0] == 7.0
    assert len(list((tmp_path / "cache" / "dask-shared").glob("*.npz"))) == 1


def test_workers_get_the_callers_cache_folder_as_an_absolute_path(monkeypatch, tmp_path):
    from taskrel_utils.core.paths import cache_dir

    monkeypatch.delenv("TASKREL_CACHE", raising=False)
    assert workers.caller_environment() == {"TASKREL_CACHE": None}  # local processes share this machine's default
    assert workers.caller_environment(resolve_cache=True) == {"TASKREL_CACHE": str(cache_dir().resolve())}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TASKREL_CACHE", "relative-cache")  # a worker elsewhere would read another folder
    assert workers.caller_environment(resolve_cache=True) == {"TASKREL_CACHE": str(tmp_path.resolve() / "relative-cache")}


def test_relatedness_and_score_tables_on_dask_equal_serial(feats, monkeypatch):
    """On two worker threads of a LocalCluster (the jobs' pickling is the joblib tests' concern)."""
    from distributed import LocalCluster

    two = {**feats, **{("f",) + k[1:]: (Z * 2.0 + 1.0, y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f"),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    serial = (tables.relatedness_table(cfg, two, cache=False, n_jobs=1, progress=False),
              tables.score_table(cfg, two, n_jobs=1, progress=False))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=cluster.LOCAL_DASHBOARD) as local:
        monkeypatch.setenv(cluster.SCHEDULER_VARIABLE, local.scheduler_address)
        try:
            on_dask = (tables.relatedness_table(cfg, two, cache=False, progress=False),
                       tables.score_table(cfg, two, progress=False))
        finally:
            cluster.close_clients()
    for a, b in zip(serial, on_dask):
        assert list(b.encoder) == ["e", "f"]
        cols = [c for c in a.columns if c != "seconds"]
        assert a[cols].equals(b[cols])  # exactly: the same floats in the same order
    assert serial[0].value.nunique() == 2  # two different encoders, two different values


def test_the_scheduler_address_reaches_the_notebook_kernels(monkeypatch, tmp_path):
    seen = []
    monkeypatch.delenv(cluster.SCHEDULER_VARIABLE, raising=False)
    monkeypatch.setattr(pipeline, "_kernel_name", lambda: "python3")
    monkeypatch.setattr(pipeline, "_execute", lambda *a, **k: seen.append(os.environ.get(cluster.SCHEDULER_VARIABLE)))
    first = pipeline.list_notebooks()[:1]
    pipeline.run_notebooks("smoke", run_dir=tmp_path / "a", notebooks=first, render=False, scheduler="tcp://h:8786")
    assert seen == ["tcp://h:8786"] and cluster.SCHEDULER_VARIABLE not in os.environ  # restored after

    class FakeCluster:  # 'local': one cluster for all the notebooks, its address in the kernels
        scheduler_address, closed = "tcp://127.0.0.1:9", False

        def close(self):
            FakeCluster.closed = True

    monkeypatch.setattr(cluster, "start_local_cluster", lambda n_workers=None: FakeCluster())
    monkeypatch.setenv(cluster.SCHEDULER_VARIABLE, "local")
    run = pipeline.run_notebooks("smoke", run_dir=tmp_path / "b", notebooks=first, render=False)
    assert seen[-1] == "tcp://127.0.0.1:9" and FakeCluster.closed
    assert run.load_params("pipeline")["scheduler"] == "local"
    monkeypatch.delenv(cluster.SCHEDULER_VARIABLE)
    pipeline.run_notebooks("smoke", run_dir=tmp_path / "c", notebooks=first, render=False)
    assert seen[-1] == ""  # none: the kernels run their jobs in local processes


def test_cli_run_passes_the_scheduler(monkeypatch, tmp_path):
    from taskrel_utils.kit.cli import main

    calls = []
    monkeypatch.setattr(pipeline, "run_notebooks", lambda *a, **k: calls.append(k) or pipeline.Run(tmp_path))
    assert main(["run", "--profile", "smoke", "--scheduler", "local", "--notebooks", "01"]) == 0
    assert calls[0]["scheduler"] == "local"
