"""Interactive explorers (ipywidgets) placed next to the notebooks' static figures.

Each ``*_explorer`` builds its controls, draws the figure of the current choice with a function of
:mod:`taskrel_utils.present.plots`, redraws on every change, displays itself and returns the widget box.
The box's ``figure`` attribute is the figure on show (so the explorers are testable without a
browser).

Headless runs (:data:`HEADLESS_VARIABLE` set, as ``pipeline.run_notebooks`` does for papermill)
create no widget at all: they show the figure of the default choice as a picture and return an
object with its ``figure``. Nobody can interact with a widget there, a static HTML report cannot
show one, and a cell that opens widget comms without a frontend can leave the notebook client
waiting for ever (a known nbclient / ipykernel problem).
"""
from __future__ import annotations

import io
import os
from types import SimpleNamespace

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import Image, display

from . import plots

#: set (to anything but "" or "0") for runs without a frontend: explorers draw their default view only
HEADLESS_VARIABLE = "TASKREL_HEADLESS"


def headless() -> bool:
    """Whether this process runs without a frontend (:data:`HEADLESS_VARIABLE`)."""
    return os.environ.get(HEADLESS_VARIABLE, "") not in ("", "0")


def _png(fig) -> Image:
    """The figure as a PNG image: shown the same under any matplotlib backend (inline or Agg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return Image(buf.getvalue())


def _explorer(controls: dict, draw) -> widgets.VBox:
    """A box of ``controls`` ({argument name: (widget class, its keyword arguments)}) over an output
    area showing ``draw(**{name: widget.value})``, redrawn whenever a control's value changes.
    Headless: the default view as a picture, in an object with its ``figure``."""
    if headless():
        fig = draw(**{name: kwargs.get("value", list(kwargs["options"])[0]) for name, (_, kwargs) in controls.items()})
        display(_png(fig))
        plt.close(fig)
        return SimpleNamespace(figure=fig)
    controls = {name: kind(**kwargs) for name, (kind, kwargs) in controls.items()}
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
    controls = {"encoder": (widgets.Dropdown, dict(options=sorted(frame.encoder.unique()), description="encoder")),
                "task": (widgets.Dropdown, dict(options=sorted(frame.task.unique()), description="task"))}
    return _explorer(controls, lambda **choice: plots.projection_panel(frame, **choice))


def score_explorer(long, targets=None, groups=("main", "contrast"), score: str = "Ours (TR)"):
    """Pick a score, a target and a group; see the score against the fine-tuned accuracy with the
    encoders named and the Pearson r (:func:`plots.score_panel`).

    ``long``: columns encoder, target, group, accuracy, score, score_value
    (``correlation.scores_long``); ``targets`` default to those in ``long``.
    """
    scores = list(long.score.unique())
    controls = {"score": (widgets.Dropdown, dict(options=scores, value=score if score in scores else scores[0],
                                                 description="score")),
                "target": (widgets.Dropdown, dict(options=list(targets if targets is not None else long.target.unique()),
                                                  description="target")),
                "group": (widgets.Dropdown, dict(options=list(groups), description="group"))}
    return _explorer(controls, lambda **choice: plots.score_panel(long, **choice))


def fraction_explorer(frame, targets, encoders, fractions, terms=plots.BOUND_TERMS):
    """Pick a target, an encoder and a fraction of the target data; see that encoder's
    task-relatedness and its terms across fractions, and the zoo's TR against accuracy at the
    chosen fraction (:func:`plots.fraction_panel`). ``frame``: the fraction fits (columns
    encoder, target, fraction, seed, value, accuracy and ``terms``)."""
    controls = {"target": (widgets.Dropdown, dict(options=list(targets), description="target")),
                "encoder": (widgets.Dropdown, dict(options=list(encoders), description="encoder")),
                "fraction": (widgets.SelectionSlider, dict(options=list(fractions), value=list(fractions)[0],
                                                           description="fraction"))}
    return _explorer(controls, lambda **choice: plots.fraction_panel(frame, terms=terms, **choice))
