"""Test-wide settings: offline (any download fails at once), headless plots, quiet progress; and
how ``make test`` shares the tests among pytest-xdist workers."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

#: the folder of the tests that assert on one smoke run (the session fixture ``smoke_run``)
SMOKE_RUN_TESTS = "tests/notebooks/"


def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N`` (``make test``): every test of :data:`SMOKE_RUN_TESTS` goes to one
    worker, which executes the smoke run once; every other test is a unit of its own that any worker
    takes. (xdist's ``xdist_group`` marks would say the same, but pytest 9 ignores the node ids they
    rewrite.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SmokeRunOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SMOKE_RUN_TESTS if nodeid.startswith(SMOKE_RUN_TESTS) else nodeid

    return SmokeRunOnOneWorker(config, log)
