"""Test-wide settings: offline (any download fails at once), headless plots, quiet progress, and
the jobs in local processes (a Dask scheduler only where a test names one)."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.pop("TASKREL_SCHEDULER", None)
