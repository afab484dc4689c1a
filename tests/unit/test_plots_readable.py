"""Figures a learner can read: no legend over bars, lines or points; class names whole (wrapped, not
cut); the projection grid in a stated order with the class names of every task; tables without
``-0.000`` or ``30000.000``."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from taskrel_utils.present import plots, tables_display

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _legend_covers_nothing(fig, legend):
    """The legend's box meets no visible axes' plotting area."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        if ax.get_visible():
            area = ax.get_window_extent(renderer)
            overlap = min(box.x1, area.x1) - max(box.x0, area.x0), min(box.y1, area.y1) - max(box.y0, area.y0)
            assert min(overlap) <= 1.0, f"the legend {[t.get_text() for t in legend.get_texts()]} covers {ax.get_title()!r}"


def _legends(fig):
    return [a.get_legend() for a in fig.axes if a.get_legend() is not None] + list(fig.legends)


def test_the_prior_panel_keeps_its_legend_off_the_bars():
    names = ["T-shirt/top", "trousers & dresses", "footwear", "bags"]
    B = np.eye(4)
    fig = plots.label_map_and_prior(B, np.full(4, 0.25), np.full(4, 0.25), names, names, target="t", reference="r")
    (legend,) = _legends(fig)
    _legend_covers_nothing(fig, legend)
    ticks = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert "trousers &\ndresses" in ticks  # whole, on two lines


@pytest.mark.parametrize("figure", ["reference_training", "bound_vs_transferability", "gradient_norms",
                                    "hand_iterations"])
def test_legends_sit_beside_the_data(figure):
    rng = np.random.default_rng(0)
    targets = ["fashion", "fashion-upper", "mnist5k", "uci-digits"]
    if figure == "reference_training":
        frame = pd.DataFrame([{"epochs": e, "target": t, "value": 3 + rng.random(), "target_accuracy": rng.random()}
                              for e in (1, 2, 5, 10) for t in targets])
        fig = plots.reference_training(frame)
    elif figure == "bound_vs_transferability":
        frame = pd.DataFrame([{"target": t, "value": 1 + 3 * rng.random(), "probe_cross_entropy": 0.5 + rng.random()}
                              for t in targets for _ in range(10)])
        fig = plots.bound_vs_transferability(frame, 0.4)
    elif figure == "gradient_norms":
        norms = pd.DataFrame({"gradient norm": rng.uniform(0.1, 0.3, 400), "labels": ["true", "random"] * 200})
        fig = plots.gradient_norms(norms, 0.2, "h_R")
    else:
        fig = plots.hand_iterations(pd.DataFrame({"step": range(5), "J_before": [1e6, 300, 310, 290, 280],
                                                  "J_after": [290, 280, 300, 285, 270], "feature_term": range(5),
                                                  "label_term": range(5), "dA": range(5)}))
    legends = _legends(fig)
    assert legends
    for legend in legends:
        _legend_covers_nothing(fig, legend)
    if figure == "reference_training":
        assert len(legends) == 1  # one legend for both panels


def _projection_frame():
    rng = np.random.default_rng(0)
    rows = []
    names = {"ref": ["a", "b", "c"], "coarse": ["tops", "trousers & dresses"]}
    for encoder in ("zeta", "alpha", "random"):
        for task in ("coarse", "ref"):  # neither alphabetical nor the order asked for
            for label in rng.permutation(np.repeat(np.arange(len(names[task])), 5)):
                rows.append({"encoder": encoder, "task": task, "pc1": rng.normal(), "pc2": rng.normal(),
                             "label": label, "class_name": names[task][label]})
    return pd.DataFrame(rows)


def test_the_projection_grid_has_a_stated_order_and_the_class_names_of_each_task():
    fig = plots.projections(_projection_frame(), encoders=["zeta", "alpha", "random"], tasks=["ref", "coarse"])
    axes = np.asarray(fig.axes).reshape(3, 2)
    assert [ax.get_title() for ax in axes[0]] == ["ref", "coarse"]  # the tasks across the top, in order
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["zeta", "alpha", "random"]  # the encoders down the side
    assert all(ax.get_title() == "" for ax in axes[1:].flat)
    legends = [ax.get_legend() for ax in axes[-1]]
    assert [[t.get_text() for t in lg.get_texts()] for lg in legends] == [["a", "b", "c"], ["tops", "trousers &\ndresses"]]
    # one colour per class, the same in every row of a column
    for j in range(2):
        colours = [tuple(np.round(ax.collections[0].get_facecolors(), 3).tolist()[0]) for ax in axes[:, j]]
        assert len(axes[:, j]) == 3 and colours  # every panel drew its points
    default = plots.projections(_projection_frame())  # default: the order of first appearance
    assert [ax.get_title() for ax in np.asarray(default.axes).reshape(3, 2)[0]] == ["coarse", "ref"]


def test_task_samples_titles_keep_the_whole_class_name():
    class Task:
        class_names = ["tops", "trousers & dresses"]
        labels = np.array([0, 1, 0, 1])

        def __len__(self):
            return 4

        def image(self, i):
            return np.zeros((4, 4))

    fig = plots.task_samples({"coarse": Task()}, per_row=2)
    assert {ax.get_title() for ax in fig.axes} == {"tops", "trousers &\ndresses"}


def test_a_table_summary_shows_no_negative_zero_and_whole_numbers_without_decimals():
    frame = pd.DataFrame({"encoder": ["a", "b"], "label_mismatch": [-0.0, -1e-9], "n_train": [30000.0, np.nan],
                          "value": [1.25, -0.5]})
    html = tables_display.table_summary(frame, digits=3)._repr_html_()
    assert "-0.000" not in html and "<td>0.000</td>" in html
    assert "<td>30000</td>" in html and "30000.000" not in html
    assert "<td>-0.500</td>" in html and "<td>1.250</td>" in html


def test_an_empty_table_summary_says_so_instead_of_showing_headers_alone():
    empty = pd.DataFrame({"encoder": [], "images_per_second": []})
    view = tables_display.table_summary(empty, caption="throughput")
    assert "<table" not in view._repr_html_() and "no rows" in view._repr_html_()
    assert "no rows" in repr(view)


def test_a_heatmap_keeps_the_order_it_is_given():
    frame = pd.DataFrame([{"encoder": e, "task": t, "acc": 0.5} for e in ("b", "a") for t in ("z", "y")])
    fig = plots.heatmap(frame, index="encoder", columns="task", values="acc", title="t", index_order=["b", "a"],
                        columns_order=["z", "y"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["z", "y"]
