"""The headline numbers of each notebook, read from its ``metrics/<notebook>.json``: the few lines the
run's front page (``report/index.html``) shows under the notebook's thumbnails.

``headlines(stem, metrics)`` returns plain-text lines (no Markdown), built from the metrics passed
in, never typed: a line whose numbers the metrics lack is left out, so a run of another profile or
of an older kit shows what it has. Unknown notebooks get no line.
"""
from __future__ import annotations

import numpy as np

from .reading.common import count, formatted, signed
from .reading.finetune_correlation import rank_words, sign_corrected_rank

__all__ = ["headlines"]


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in values)


def _range(values, fmt: str) -> str:
    values = [v for v in values if _finite(v)]
    lo, hi = formatted(min(values), fmt), formatted(max(values), fmt)
    return lo if lo == hi else f"{lo} to {hi}"


def _encoder_features(m: dict) -> list[str]:
    lines = []
    if _finite(m.get("feature_sets")) and m.get("encoders") and m.get("tasks"):
        hits = f" ({m['cache_hits']} from the cache)" if _finite(m.get("cache_hits")) else ""
        lines.append(f"{count(len(m['encoders']), 'encoder')} x {count(len(m['tasks']), 'task')}: "
                     f"{count(m['feature_sets'], 'feature set')}{hits}")
    ref, acc = m.get("reference"), m.get("nearest_mean_accuracy") or {}
    on_ref = {k.rsplit("/", 1)[0]: v for k, v in acc.items() if k.endswith(f"/{ref}") and _finite(v)}
    if on_ref:
        best = max(on_ref, key=on_ref.get)
        lines.append(f"nearest-class-mean accuracy on the reference {ref}: {_range(on_ref.values(), '.3f')} "
                     f"(best {best})")
    return lines


def _fit_transformations(m: dict) -> list[str]:
    fit = (m.get("modes") or {}).get("learned_all") or {}
    lines = []
    terms = [fit.get(k) for k in ("value", "reweighted_reference_loss", "label_mismatch", "distribution_mismatch")]
    if _finite(*terms):
        value, lc, h, dm = terms
        lines.append(f"{m.get('encoder', '?')} on {m.get('target', '?')}: task-relatedness {value:.2f} = "
                     f"L_C {lc:.2f} + H {abs(h):.2f} + tau W {dm:.2f}")
    if _finite(fit.get("steps_used")):
        lines.append(f"the fit {'converged' if fit.get('converged') else 'stopped at its cap'} after "
                     f"{fit['steps_used']} steps"
                     + (f"; h_R's reference accuracy {m['reference_accuracy']:.3f}"
                        if _finite(m.get("reference_accuracy")) else ""))
    return lines


def _bound_decomposition(m: dict) -> list[str]:
    lines = []
    by_target = [v for v in (m.get("pearson_by_target") or {}).values() if _finite(v)]
    if _finite(m.get("pearson_all_pairs")):
        lines.append(f"task-relatedness vs the probe's loss: r {signed(m['pearson_all_pairs'])} over all pairs"
                     + (f", {_range(by_target, '+.2f')} within a target" if by_target else ""))
    gaps = [p.get("gap") for p in m.get("pairs") or [] if _finite(p.get("gap"))]
    if gaps:
        lines.append(f"the bound's gap to the probe's loss: median {np.median(gaps):.2f} nats over {count(len(gaps), 'pair')}")
    return lines


def _finetune_correlation(m: dict) -> list[str]:
    lines = []
    head = m.get("headline") or {}
    if _finite(head.get("r"), head.get("low"), head.get("high")):
        related = (m.get("target_groups") or {}).get("related") or []
        lines.append(f"headline: task-relatedness's r with fine-tuned accuracy {signed(head['r'])} "
                     f"(95 % interval {signed(head['low'])} to {signed(head['high'])}) over "
                     f"{len(related) or head.get('n_targets', '?')} related targets; negative is good")
    average = (m.get("pearson") or {}).get("Average") or {}
    if "Ours (TR)" in average:
        import pandas as pd

        row = pd.Series({k: (np.nan if v is None else v) for k, v in average.items()}, dtype=float)
        rank, n, best = sign_corrected_rank(row, "Ours (TR)")
        if rank:
            lines.append(f"sign-corrected, task-relatedness {rank_words(rank, n)} of the paper's table"
                         + ("" if rank == 1 else f"; the best is {best}, {signed(row[best])}"))
    return lines


def _pseudo_labels(m: dict) -> list[str]:
    lines = []
    avg = (m.get("true_vs_pseudo_pearson") or {}).get("Average") or {}
    if _finite(avg.get("true labels"), avg.get("pseudo-labels")):
        lines.append(f"r with fine-tuned accuracy: {signed(avg['true labels'])} with the target's labels, "
                     f"{signed(avg['pseudo-labels'])} without them (average over targets, both with the theorem's W)")
    agree = [r.get("pseudo_label_accuracy") for r in m.get("pseudo_label_accuracy") or []]
    if any(_finite(a) for a in agree):
        lines.append(f"pseudo-label agreement with the hidden labels: {_range(agree, '.2f')}")
    by_fraction: dict = {}
    for r in m.get("fraction_pearson") or []:
        if _finite(r.get("pearson_r"), r.get("fraction")):
            by_fraction.setdefault(r["fraction"], []).append(r["pearson_r"])
    if len(by_fraction) >= 2:
        lo, hi = min(by_fraction), max(by_fraction)
        lines.append(f"with {lo:.0%} of the target data: r {signed(np.mean(by_fraction[lo]))}; with {hi:.0%}: "
                     f"{signed(np.mean(by_fraction[hi]))}")
    return lines


_BY_NOTEBOOK = {"01": _encoder_features, "02": _fit_transformations, "03": _bound_decomposition,
                "04": _finetune_correlation, "05": _pseudo_labels}


def headlines(stem: str, metrics: dict) -> list[str]:
    """The headline lines of notebook ``stem`` (e.g. ``"04_finetune_correlation"``) from its metrics
    dict (``metrics/<stem>.json``); ``[]`` for a notebook without headlines or a line that fails."""
    reader = _BY_NOTEBOOK.get(stem[:2])
    if reader is None or not isinstance(metrics, dict):
        return []
    try:
        return reader(metrics)
    except (KeyError, TypeError, ValueError, AttributeError):  # metrics of another shape: no line rather than none
        return []
