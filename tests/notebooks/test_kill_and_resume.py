"""A smoke run killed (SIGKILL) at a random point and run again: the same metrics as the uninterrupted
run, and no half-written file, neither in the run directory nor in the cache."""
import json
import math
import os
import random
import subprocess
import sys
import time

import nbformat
import numpy as np
import pandas as pd
import psutil
import pytest

from taskrel_utils.core import cache, io
from taskrel_utils.kit import pipeline
from taskrel_utils.core.paths import KIT_ROOT

pytestmark = pytest.mark.notebooks

#: the kill lands at a seeded random fraction of the uninterrupted run's duration
KILL_SEED, KILL_RANGE = 20261130, (0.2, 0.8)
#: the notebooks the killed run executes: notebook 02 alone computes features, h_R and fits from an
#: empty cache and writes every kind of file a run writes, in a fifth of the smoke run's time, which
#: keeps ``make test`` within its budget
NOTEBOOKS = ("02",)
#: metrics that measure the machine or the cache, not the method
VOLATILE = {"seconds", "cache_hits", "cache_hit", "images_per_second"}


def _command(run_dir):
    return [sys.executable, "-m", "taskrel_utils", "run", "--profile", "smoke", "--run-dir", str(run_dir),
            "--no-report", "--notebooks", *NOTEBOOKS]  # the reports: tests/notebooks/test_reports_browser.py


def _kill_tree(pid):
    """SIGKILL the run and every process it started (the notebook kernel) at once."""
    parent = psutil.Process(pid)
    for p in [parent, *parent.children(recursive=True)]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _unreadable(folder) -> list:
    """Files under ``folder`` that are not whole: visible files that fail to parse, cache entries
    that fail their checksum."""
    bad = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        try:
            if path.read_bytes().startswith(cache.MAGIC):
                cache.check_entry(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".csv":
                pd.read_csv(path)
            elif path.suffix == ".ipynb":
                nbformat.read(path, as_version=4)
            elif path.suffix == ".npz":
                with np.load(path) as f:
                    [f[k] for k in f.files]
        except Exception as exc:
            bad.append(f"{path}: {type(exc).__name__}: {exc}")
    return bad


def _stable(obj):
    """``obj`` without the volatile keys (recursively)."""
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in VOLATILE and not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def _differences(a, b, where="") -> list:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return [] if same else [f"{where}: {a!r} != {b!r}"]


def test_a_killed_run_resumes_to_the_same_metrics(smoke_run, tmp_path):
    seconds = {name: s for name, s in json.loads(smoke_run.path("params", "pipeline.json").read_text())["seconds"].items()
               if name.startswith(NOTEBOOKS)}
    kill_after = random.Random(KILL_SEED).uniform(*KILL_RANGE) * sum(seconds.values())
    run_dir, cache_root = tmp_path / "run", tmp_path / "cache"
    env = dict(os.environ, TASKREL_CACHE=str(cache_root))  # its own, empty cache: the killed run computes
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(_command(run_dir), cwd=KIT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
        else:
            pytest.fail(f"the run finished in less than {kill_after:.0f} s, before the kill")
    assert proc.returncode == -9
    # at the kill: whole files and hidden temporaries only
    assert _unreadable(run_dir) == [] and _unreadable(cache_root) == []

    left = sorted(p.name for p in io.temporaries(run_dir))
    t0 = time.perf_counter()
    resumed = subprocess.run(_command(run_dir), cwd=KIT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    print(f"killed after {kill_after:.0f} s of an uninterrupted {sum(seconds.values()):.0f} s, leaving {left}; "
          f"the rerun took {time.perf_counter() - t0:.0f} s")
    assert io.temporaries(run_dir) == [] and _unreadable(run_dir) == []
    for nb in (p for p in pipeline.list_notebooks() if p.name.startswith(NOTEBOOKS)):
        expected = _stable(smoke_run.load_metrics(nb.stem))
        got = _stable(json.loads((run_dir / "metrics" / f"{nb.stem}.json").read_text()))
        assert _differences(expected, got) == [], nb.stem
