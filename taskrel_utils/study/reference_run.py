"""Same result or broken? A run's key numbers against a recorded reference run, within the
tolerance measured across CPUs.

On one machine a run gives the same numbers every time. Another CPU sums in another order (other
vector kernels in torch, oneDNN and the BLAS), so the fits land a little apart: the tolerance below
was measured by running the same profile with torch's AVX-512, AVX2 and default kernels on one
machine. ``python -m taskrel_utils check-run runs/mini`` compares a run with the reference shipped
in ``data/reference_runs/<profile>.json`` (recorded by ``check-run --record``) and says which
numbers, if any, are outside it; the fine-tuned accuracies it correlates with must equal the
shipped ground truth exactly (they are read, not recomputed).
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import MissingDataError, TaskrelError
from ..core.io import write_json
from ..core.paths import KIT_ROOT

__all__ = ["TOLERANCE", "key_metrics", "record", "compare", "reference_path"]

#: ``|run - reference| <= atol + rtol * |reference|`` per kind of number: ``value`` (task-relatedness
#: and its terms per pair, nats), ``correlation`` (Pearson r). Measured with torch's AVX2 (and, on
#: smoke, default) kernels against AVX-512 on one machine, separate caches: smoke values within
#: 0.0008 nats, correlations within 0.006; mini values within 0.12 nats (relative 0.044: a
#: 1,000-step fit stops a few steps apart), its correlations within 0.010. Across two real machines
#: the mini profile's main-zoo correlations moved by at most 0.003. The bounds are about twice the
#: largest value change and five times the largest correlation change.
TOLERANCE = {"value": {"atol": 0.05, "rtol": 0.05}, "correlation": {"atol": 0.05, "rtol": 0.0}}


def reference_path(profile: str) -> Path:
    return KIT_ROOT / "data" / "reference_runs" / f"{profile}.json"


def _load(run_dir: Path, name: str) -> dict:
    path = run_dir / "metrics" / f"{name}.json"
    if not path.is_file():
        raise MissingDataError(f"{path} is missing: run the notebooks first "
                               f"(python -m taskrel_utils run --run-dir {run_dir})")
    return json.loads(path.read_text())


def key_metrics(run_dir) -> dict:
    """``{name: (kind, number)}`` of a run: task-relatedness and its terms per (encoder, target)
    (notebook 03), the headline and the Pearson r of every score per target (notebook 04)."""
    run_dir = Path(run_dir)
    out = {}
    for pair in _load(run_dir, "03_bound_decomposition")["pairs"]:
        for term in ("value", "reweighted_reference_loss", "label_mismatch", "distribution_mismatch"):
            out[f"03 {term} {pair['encoder']}/{pair['target']}"] = ("value", pair[term])
    m4 = _load(run_dir, "04_finetune_correlation")
    if m4.get("headline"):
        out["04 headline r"] = ("correlation", m4["headline"]["r"])
    for target, row in m4["pearson"].items():
        for score, r in row.items():
            out[f"04 pearson {score} {target}"] = ("correlation", r)
    return out


def _machine() -> dict:
    from ..inputs.zoo_build import build_machine
    return {**build_machine(), "python": platform.python_version()}


def record(run_dir, out=None) -> Path:
    """Write the key metrics of ``run_dir`` as the reference of its profile (``out``: default
    :func:`reference_path`), with the machine they were measured on."""
    run_dir = Path(run_dir)
    profile = _load(run_dir, "04_finetune_correlation")["profile"]
    metrics = {k: {"kind": kind, "number": v} for k, (kind, v) in key_metrics(run_dir).items()}
    path = Path(out) if out else reference_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"profile": profile, "machine": _machine(), "tolerance": TOLERANCE, "metrics": metrics})
    return path


def compare(run_dir, reference=None, tolerance=None) -> pd.DataFrame:
    """One row per key metric of the reference: ``reference``, ``run``, ``difference``, ``allowed``
    and ``ok`` (a metric missing from the run, or undefined on one side only, is not ok)."""
    run_dir = Path(run_dir)
    run = key_metrics(run_dir)
    profile = _load(run_dir, "04_finetune_correlation")["profile"]
    ref_path = Path(reference) if reference else reference_path(profile)
    if not ref_path.is_file():
        raise MissingDataError(f"no reference run for profile {profile!r} at {ref_path}; record one on a trusted "
                               f"machine with `python -m taskrel_utils check-run {run_dir} --record`")
    ref = json.loads(ref_path.read_text())
    if ref.get("profile") != profile:
        raise TaskrelError(f"{ref_path} is a reference of profile {ref.get('profile')!r}, the run is {profile!r}")
    tol = tolerance or TOLERANCE
    rows = []
    for name, entry in ref["metrics"].items():
        expected = entry["number"]
        got = run.get(name, (entry["kind"], "missing"))[1]
        t = tol[entry["kind"]]
        allowed = t["atol"] + t["rtol"] * abs(expected) if expected is not None else 0.0
        if got == "missing" or (got is None) != (expected is None):
            ok, diff = False, np.nan
        elif got is None:
            ok, diff = True, 0.0
        else:
            diff = abs(got - expected)
            ok = bool(diff <= allowed)
        rows.append({"metric": name, "kind": entry["kind"], "reference": expected,
                     "run": None if got == "missing" else got, "difference": diff, "allowed": allowed, "ok": ok})
    return pd.DataFrame(rows)
