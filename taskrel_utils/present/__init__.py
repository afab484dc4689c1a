"""What the notebooks show: figures, widgets, prose written from a run's numbers, short tables.

``plots`` (seaborn figures), ``widgets`` (ipywidgets explorers), ``reading`` (the prose written
from a run's numbers: one module per notebook), ``tables_display`` (long tables shown short, linked
to their CSV; numbers written without -0.000 or NaN), ``headlines`` (each notebook's headline numbers
for the run's index page).

Imports :mod:`taskrel_utils.core` and the layers below it, up to :mod:`taskrel_utils.study`.
"""
__all__ = ["plots", "widgets", "reading", "tables_display", "headlines"]
