"""What every notebook's reading shares: signs, directions, counts, quoted names, numbers.

The readings are the notebooks' "reading the results" paragraphs, one module per notebook
(:mod:`taskrel_utils.present.reading`); each is built from the tables passed in, so a notebook
never quotes an earlier run, and returns a Markdown string.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...study.published import LOWER_IS_BETTER


def signed(r: float) -> str:
    """``+0.42`` / ``-0.42`` / ``n/a``; ``0.00`` without a sign when it rounds to zero (never ``-0.00``)."""
    if r is None or not np.isfinite(r):
        return "n/a"
    return unsigned_zero(f"{r:+.2f}")


def good_direction(score: str, r: float) -> bool:
    """Whether a correlation ``r`` of ``score`` with accuracy points the right way."""
    return bool(np.isfinite(r) and (r < 0 if score in LOWER_IS_BETTER else r > 0))


def count(n: int, word: str) -> str:
    """``1 encoder`` / ``3 encoders``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def quoted_names(items, limit: int = 6) -> str:
    """```a`, `b`, ... (+3 more)`` for a list of names."""
    items = [f"`{x}`" for x in items]
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


TERM_NAMES = {"reweighted_reference_loss": "the re-weighted reference loss", "label_mismatch": "the label mismatch",
              "distribution_mismatch": "the distribution mismatch (tau W)"}


def unsigned_zero(text: str) -> str:
    """A formatted number without the sign of a zero (``-0.00`` -> ``0.00``, ``-0%`` -> ``0%``)."""
    return text.lstrip("+-\u2212") if not any(c in "123456789" for c in text) else text


def formatted(v: float, fmt: str) -> str:
    """``format(v, fmt)`` that never writes a negative zero (:func:`unsigned_zero`)."""
    return unsigned_zero(format(v, fmt))


def number(v: float, fmt: str = ".3f") -> str:
    """``v`` formatted, or ``n/a`` when it is missing or not finite."""
    return "n/a" if v is None or not np.isfinite(v) else formatted(v, fmt)


def strength(r: float) -> str:
    """A word for |r|: weak (< 0.3), moderate (< 0.6), strong."""
    return "undefined" if not np.isfinite(r) else "weak" if abs(r) < 0.3 else "moderate" if abs(r) < 0.6 else "strong"


def finite_rows(table: pd.DataFrame, columns) -> pd.DataFrame:
    """The rows of ``table`` whose ``columns`` are all finite."""
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return table[np.isfinite(values).all(axis=1)]
