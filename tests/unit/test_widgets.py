"""widgets: every explorer builds on a tiny table, and setting a control changes what it shows."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from taskrel_utils.study import correlation
from taskrel_utils.present import plots, widgets

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _controls(box):
    return {c.description: c for c in box.children[0].children}


def _points(fig, ax=0):
    return np.concatenate([c.get_offsets() for c in fig.axes[ax].collections])


def test_projection_explorer_redraws_on_a_new_encoder():
    frame = pd.DataFrame({"encoder": ["a"] * 4 + ["b"] * 2, "task": "t", "pc1": np.arange(6.0),
                          "pc2": -np.arange(6.0), "label": [0, 1] * 3, "class_name": ["x", "y"] * 3})
    box = widgets.projection_explorer(frame)
    assert box.figure.axes[0].get_title() == "a on t" and len(_points(box.figure)) == 4
    _controls(box)["encoder"].value = "b"
    assert box.figure.axes[0].get_title() == "b on t"
    np.testing.assert_array_equal(_points(box.figure)[:, 0], [4.0, 5.0])


def _long():
    rows = [{"encoder": e, "target": t, "group": "main", "accuracy": 0.5 + 0.1 * i + 0.01 * j,
             "task_relatedness": 3.0 - i + j, "logme": float(i * j)}
            for j, t in enumerate(["t1", "t2"]) for i, e in enumerate(["a", "b", "c"])]
    return correlation.scores_long(pd.DataFrame(rows), {"task_relatedness": "Ours (TR)", "logme": "LogME"})


def test_score_explorer_redraws_on_a_new_score_and_target():
    long = _long()
    box = widgets.score_explorer(long, targets=["t1", "t2"])
    controls = _controls(box)
    assert controls["score"].value == "Ours (TR)"
    first = _points(box.figure).copy()
    assert box.figure.axes[0].get_title().startswith("Ours (TR) on t1 (main)")
    controls["score"].value = "LogME"
    assert box.figure.axes[0].get_title().startswith("LogME on t1 (main)")
    assert not np.array_equal(_points(box.figure), first)
    controls["target"].value = "t2"
    g = long[(long.score == "LogME") & (long.target == "t2")]
    np.testing.assert_allclose(sorted(_points(box.figure)[:, 0]), sorted(g.score_value))


def test_fraction_explorer_redraws_on_a_new_fraction_and_encoder():
    rows = [{"encoder": e, "target": "t1", "fraction": f, "seed": s, "value": 1.0 + i + f + 0.1 * s,
             "accuracy": 0.5 + 0.1 * i, **{term: 0.3 + f for term in plots.BOUND_TERMS}}
            for f in (0.1, 1.0) for s in (0, 1) for i, e in enumerate(["a", "b", "c"])]
    frame = pd.DataFrame(rows)
    box = widgets.fraction_explorer(frame, ["t1"], ["a", "b", "c"], [0.1, 1.0])
    controls = _controls(box)
    assert "fraction 0.1" in box.figure.axes[1].get_title()
    before = _points(box.figure, ax=1).copy()
    controls["fraction"].value = 1.0
    assert "fraction 1:" in box.figure.axes[1].get_title()
    assert not np.array_equal(_points(box.figure, ax=1), before)
    controls["encoder"].value = "b"
    assert box.figure.axes[0].get_title() == "b on t1"


def test_the_figure_is_shown_as_a_png_under_any_backend():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    image = widgets._png(fig)
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_headless_explorer_draws_the_default_view_and_creates_no_widget(monkeypatch):
    import ipywidgets

    created = []
    monkeypatch.setattr(ipywidgets.Widget, "open", lambda self: created.append(type(self).__name__))
    monkeypatch.setenv(widgets.HEADLESS_VARIABLE, "1")
    shown = widgets.score_explorer(_long(), targets=["t1", "t2"], score="LogME")
    assert created == [] and not hasattr(shown, "children")
    assert shown.figure.axes[0].get_title().startswith("LogME on t1 (main)")  # the default choice
    monkeypatch.setenv(widgets.HEADLESS_VARIABLE, "0")
    box = widgets.score_explorer(_long(), targets=["t1", "t2"], score="LogME")
    assert created and len(box.children) == 2  # with a frontend: controls and output


def test_notebook_runs_are_headless(monkeypatch, tmp_path):
    from taskrel_utils.kit import pipeline

    seen = {}
    monkeypatch.delenv(widgets.HEADLESS_VARIABLE, raising=False)
    monkeypatch.setattr(pipeline, "_execute", lambda *a, **k: seen.setdefault("env", widgets.headless()))
    pipeline.run_notebooks("smoke", run_dir=tmp_path / "run", notebooks=pipeline.list_notebooks()[:1], render=False, progress=False)
    assert seen["env"] is True and not widgets.headless()  # set for the kernels, restored after
