"""Run directories: one folder per run holding its parameters, metrics, tables, figures,
executed notebooks and HTML reports.

    runs/<name>/
        params/profile.json      the resolved profile (what the run actually used)
        metrics/<notebook>.json  numbers asserted by the tests and read by later notebooks
        tables/*.csv, figures/*.png, executed/*.ipynb, report/*.html

Every write is atomic (temporary file + rename): an interrupted run leaves no half-written file,
at most hidden temporary files (``.<name>.<random>.tmp<suffix>``), which the next run removes
(:meth:`Run.remove_temporaries`). A run directory takes one run at a time.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..study.config import Profile
from ..core.errors import MissingDataError
from ..core import io
from ..core.io import atomic_path, write_json
from ..core.paths import KIT_ROOT

SUBDIRS = ("params", "metrics", "tables", "figures", "executed", "report")


class Run:
    """A run directory; ``Run(path)`` creates the folder layout if it is missing."""

    def __init__(self, root):
        root = Path(root)
        self.root = root if root.is_absolute() else KIT_ROOT / root
        with io.writing(self.root):
            for sub in SUBDIRS:
                (self.root / sub).mkdir(parents=True, exist_ok=True)

    def __repr__(self):
        return f"Run({str(self.root)!r})"

    def path(self, *parts) -> Path:
        return self.root.joinpath(*parts)

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files an interrupted (killed) run left behind; returns them."""
        return io.remove_temporaries(self.root)

    def save_params(self, name: str, params: dict) -> Path:
        return write_json(self.path("params", f"{name}.json"), params)

    def load_params(self, name: str = "profile") -> dict:
        return json.loads(self.path("params", f"{name}.json").read_text())

    def save_metrics(self, name: str, metrics: dict) -> Path:
        """Write ``metrics/<name>.json`` (the file the notebook tests assert on)."""
        return write_json(self.path("metrics", f"{name}.json"), metrics)

    def load_metrics(self, name: str, produced_by: str | None = None) -> dict:
        """Read ``metrics/<name>.json``; if missing, say which notebook produces it."""
        path = self.path("metrics", f"{name}.json")
        if not path.exists():
            hint = f"run notebook {produced_by} first" if produced_by else "run the notebook that writes it first"
            raise MissingDataError(f"{path} is missing: {hint} (with the same run_dir)")
        return json.loads(path.read_text())

    def save_table(self, name: str, frame) -> Path:
        """Write a pandas DataFrame to ``tables/<name>.csv``."""
        path = self.path("tables", f"{name}.csv")
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        return path

    def save_figure(self, name: str, fig, dpi: int = 110) -> Path:
        """Write a matplotlib figure to ``figures/<name>.png``."""
        path = self.path("figures", f"{name}.png")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        return path


def open_run(run_dir=None, profile: Profile | None = None) -> Run:
    """Open (create) the run directory and record the profile it runs with.

    ``run_dir=None`` means ``runs/<profile name>``; relative paths are relative to the kit root.
    """
    if run_dir is None:
        run_dir = Path("runs") / (profile.name if profile else "default")
    run = Run(run_dir)
    if profile is not None:
        run.save_params("profile", profile.to_dict())
    return run
