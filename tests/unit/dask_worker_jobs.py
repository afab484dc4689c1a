"""Jobs that the Dask tests send to worker processes. A worker imports a job's module to run it,
so this one imports nothing heavy (no torch): the workers start in a fraction of a second."""
import os
import time
from pathlib import Path

import numpy as np

from taskrel_utils.core import cache
from taskrel_utils.core.errors import TaskrelError


def pid_after(i, delay):
    time.sleep(delay)
    return i, os.getpid()


def fail_on(i, bad):
    if i == bad:
        raise TaskrelError(f"job {i} failed on purpose")
    return i


def shared_entry(folder, value):
    """Wait until the other job has started too, then both ask the cache for one key; the
    computation is logged in ``folder/computed`` and slow enough for the other to find it locked."""
    Path(folder, f"started-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while len(list(Path(folder).glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    ns = cache.Namespace("dask-shared", code=("core.numerics",), kind="arrays")

    def compute():
        with open(Path(folder, "computed"), "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)
        return {"Z": np.full((50, 4), float(value))}

    entry, hit = ns.get_or_compute(ns.key(value=value), compute)
    return entry["Z"], hit, os.getpid(), os.environ.get("TASKREL_CACHE")
