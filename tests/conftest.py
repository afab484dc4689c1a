"""Test-wide settings: offline (any download fails at once), headless plots, quiet progress."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
