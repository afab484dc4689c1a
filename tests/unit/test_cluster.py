"""The Dask backend of run_jobs: on a 2-worker LocalCluster the tables equal a serial run's, the
workers use the caller's cache folder and share its entries; the scheduler reaches the notebooks."""
import os
import time
from pathlib import Path

import numpy as np
import pytest

from taskrel_utils import cache, cluster, config, jobs, pipeline, tables
from taskrel_utils.errors import TaskrelError


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 worker processes (one thread each), shared by this module."""
    local = cluster.start_local_cluster(n_workers=2)
    try:
        yield local.scheduler_address
    finally:
        cluster.close_clients()
        local.close()


def _pid_after(i, delay):
    time.sleep(delay)
    return i, os.getpid()


def _fail_on(i, bad):
    if i == bad:
        raise TaskrelError(f"job {i} failed on purpose")
    return i


def test_jobs_run_on_the_workers_in_order_and_errors_come_back(scheduler, monkeypatch):
    work = [(i, 0.3 if i == 0 else 0.0) for i in range(5)]  # the first job finishes last
    out = jobs.run_jobs(_pid_after, work, scheduler=scheduler, progress=False)
    assert [i for i, _ in out] == list(range(5)) and os.getpid() not in {pid for _, pid in out}
    monkeypatch.setenv(cluster.SCHEDULER_VARIABLE, scheduler)  # the variable does what the argument does
    assert os.getpid() not in {pid for _, pid in jobs.run_jobs(_pid_after, work[1:], progress=False)}
    assert {pid for _, pid in jobs.run_jobs(_pid_after, work[1:], n_jobs=1, scheduler="", progress=False)} == {
        os.getpid()}  # an empty address: no scheduler, local processes (here: this one)
    with pytest.raises(TaskrelError, match="job 2 failed on purpose"):
        jobs.run_jobs(_fail_on, [(i, 2) for i in range(4)], progress=False)


def test_relatedness_and_score_tables_on_dask_equal_serial(feats, scheduler, monkeypatch):
    two = {**feats, **{("f",) + k[1:]: (Z * 2.0 + 1.0, y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f"),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    serial = (tables.relatedness_table(cfg, two, cache=False, n_jobs=1, progress=False),
              tables.score_table(cfg, two, n_jobs=1, progress=False))
    monkeypatch.setenv(cluster.SCHEDULER_VARIABLE, scheduler)
    on_dask = (tables.relatedness_table(cfg, two, cache=False, progress=False),
               tables.score_table(cfg, two, progress=False))
    for a, b in zip(serial, on_dask):
        assert list(b.encoder) == ["e", "f"]
        cols = [c for c in a.columns if c != "seconds"]
        assert a[cols].equals(b[cols])  # exactly: the same floats in the same order
    assert serial[0].value.nunique() == 2  # two different encoders, two different values


def _shared_entry(folder, value):
    """On a worker: wait until the other job has started too, then both ask the cache for one key."""
    Path(folder, f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while len(list(Path(folder).glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    ns = cache.Namespace("dask-shared", code=("numerics",), kind="arrays")

    def compute():
        with open(Path(folder, "computed"), "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # long enough for the other worker to find the entry locked
        return {"Z": np.full((50, 4), float(value))}

    entry, hit = ns.get_or_compute(ns.key(value=value), compute)
    return entry["Z"], hit, os.getpid(), os.environ.get("TASKREL_CACHE")


def test_two_workers_computing_one_key_share_the_callers_cache(scheduler, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "marks").mkdir()
    out = jobs.run_jobs(_shared_entry, [(str(tmp_path / "marks"), 7)] * 2, scheduler=scheduler, progress=False)
    (Z1, hit1, pid1, cache1), (Z2, hit2, pid2, cache2) = out
    assert pid1 != pid2  # two workers at once
    assert cache1 == cache2 == str(tmp_path / "cache")
    assert (tmp_path / "marks" / "computed").read_text().count("\n") == 1  # computed once, read once
    assert sorted([hit1, hit2]) == [False, True] and np.array_equal(Z1, Z2) and Z1[0, 0] == 7.0
    assert len(list((tmp_path / "cache" / "dask-shared").glob("*.npz"))) == 1


def test_workers_get_the_resolved_cache_folder_when_the_caller_has_none(monkeypatch):
    monkeypatch.delenv("TASKREL_CACHE", raising=False)
    from taskrel_utils.paths import cache_dir

    assert jobs.caller_environment() == {"TASKREL_CACHE": None}  # local processes share this machine's default
    assert jobs.caller_environment(resolve_cache=True) == {"TASKREL_CACHE": str(cache_dir())}


def test_the_scheduler_address_reaches_the_notebook_kernels(monkeypatch, tmp_path):
    seen = []
    monkeypatch.delenv(cluster.SCHEDULER_VARIABLE, raising=False)
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
    from taskrel_utils.__main__ import main

    calls = []
    monkeypatch.setattr(pipeline, "run_notebooks", lambda *a, **k: calls.append(k) or pipeline.Run(tmp_path))
    assert main(["run", "--profile", "smoke", "--scheduler", "local", "--notebooks", "01"]) == 0
    assert calls[0]["scheduler"] == "local"
