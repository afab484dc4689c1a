"""Interactive explorers (ipywidgets) placed next to the notebooks' static figures.

Each ``*_explorer`` builds its controls, draws the figure of the current choice with a function of
:mod:`taskrel_utils.plots`, redraws on every change, displays itself and returns the widget box.
The box's ``figure`` attribute is the figure on show (so the explorers are testable without a
browser).
"""
from __future__ import annotations

import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Image, display

from . import plots


def _png(fig) -> Image:
    """The figure as a PNG image: shown the same under any matplotlib backend (inline or Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return Image(buf.getvalue())


def _explorer(controls: dict, draw) -> widgets.VBox:
    """A box of ``controls`` ({argument name: widget}) over an output area showing
    ``draw(**{name: widget.value})``, redrawn whenever a control's value changes."""
    out = widgets.Output()
    box = widgets.VBox([widgets.HBox(list(controls.values())), out])
    box.figure = None

    def redraw(*_):
        fig = draw(**{name: control.value for name, control in controls.items()})
        box.figure = fig
        with out:
            out.clear_output(wait=True)
            display(_png(fig))
        plt.close(fig)  # shown once, in the output area (not again by the inline backend)

    for control in controls.values():
        control.observe(redraw, names="value")
    redraw()
    display(box)
    return box


def projection_explorer(frame):
    """Pick an encoder and a task; see its 2-D projection coloured by class name.

    ``frame`` columns: encoder, task, pc1, pc2, label, class_name.
    """
    controls = {"encoder": widgets.Dropdown(options=sorted(frame.encoder.unique()), description="encoder"),
                "task": widgets.Dropdown(options=sorted(frame.task.unique()), description="task")}
    return _explorer(controls, lambda **choice: plots.projection_panel(frame, **choice))


def score_explorer(long, targets=None, groups=("main", "contrast"), score: str = "Ours (TR)"):
    """Pick a score, a target and a group; see the score against the fine-tuned accuracy with the
    encoders named and the Pearson r (:func:`plots.score_panel`).

    ``long``: columns encoder, target, group, accuracy, score, score_value
    (``correlation.scores_long``); ``targets`` default to those in ``long``.
    """
    scores = list(long.score.unique())
    controls = {"score": widgets.Dropdown(options=scores, value=score if score in scores else scores[0],
                                          description="score"),
                "target": widgets.Dropdown(options=list(targets if targets is not None else long.target.unique()),
                                           description="target"),
                "group": widgets.Dropdown(options=list(groups), description="group")}
    return _explorer(controls, lambda **choice: plots.score_panel(long, **choice))


def fraction_explorer(frame, targets, encoders, fractions, terms=plots.BOUND_TERMS):
    """Pick a target, an encoder and a fraction of the target data; see that encoder's
    task-relatedness and its terms across fractions, and the zoo's TR against accuracy at the
    chosen fraction (:func:`plots.fraction_panel`). ``frame``: the fraction fits (columns
    encoder, target, fraction, seed, value, accuracy and ``terms``)."""
    controls = {"target": widgets.Dropdown(options=list(targets), description="target"),
                "encoder": widgets.Dropdown(options=list(encoders), description="encoder"),
                "fraction": widgets.SelectionSlider(options=list(fractions), value=list(fractions)[0],
                                                    description="fraction")}
    return _explorer(controls, lambda **choice: plots.fraction_panel(frame, terms=terms, **choice))
