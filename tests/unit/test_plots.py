"""plots: each figure function returns a figure with the expected content on a tiny input."""
import io
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle

from taskrel_utils.study import correlation
from taskrel_utils.present import plots

matplotlib.use("Agg")
ENCODERS = ["enc-a", "enc-b", "enc-c"]
TARGETS = ["t1", "t2"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _pairs(seed=0):
    """One row per (encoder, target): the bound's terms, their sum, the probe CE."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in TARGETS:
        for e in ENCODERS:
            terms = rng.uniform(0.1, 1.0, size=3)
            rows.append({"encoder": e, "target": t, **dict(zip(plots.BOUND_TERMS, terms)), "value": terms.sum(),
                         "probe_cross_entropy": terms.sum() * 0.5, "accuracy": rng.uniform(0.5, 0.9),
                         "group": "main", "target_accuracy": rng.uniform(0.3, 0.9)})
    return pd.DataFrame(rows)


def _bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_width() > 0]


def test_bound_decomposition_stacks_the_three_terms_per_encoder_and_target():
    frame = _pairs()
    fig = plots.bound_decomposition(frame, TARGETS, ENCODERS)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == TARGETS
    for ax, target in zip(axes, TARGETS):
        bars = _bars(ax)
        assert len(bars) == len(ENCODERS) * len(plots.BOUND_TERMS)
        sub = frame[frame.target == target].set_index("encoder").loc[ENCODERS]
        # the stack of each encoder ends at task-relatedness (the sum of the terms)
        ends = {}
        for b in bars:
            ends[b.get_y()] = max(ends.get(b.get_y(), 0.0), b.get_x() + b.get_width())
        np.testing.assert_allclose(sorted(ends.values()), sorted(sub["value"]))
        dots = [c for c in ax.collections if isinstance(c, PathCollection)]
        np.testing.assert_allclose(sorted(dots[0].get_offsets()[:, 0]), sorted(sub["probe_cross_entropy"]))
    labels = {t.get_text() for t in fig.legends[0].get_texts()}  # one legend above all panels
    assert labels == {t.replace("_", " ") for t in plots.BOUND_TERMS} | {"probe CE (transferability)"}


def test_bound_decomposition_lays_out_many_panels_without_a_warning():
    """Four targets (as in the mini profile): the layout makes room for the legend above the panels
    without the UserWarning that tight_layout printed into the report."""
    encoders = ["enc-a", "enc-b", "enc-c"]
    targets = ["fashion-coarse", "mnist5k", "uci-digits", "digits-rotated"]
    rows = [{"encoder": e, "target": t, **dict.fromkeys(plots.BOUND_TERMS, 0.5), "probe_cross_entropy": 1.0}
            for t in targets for e in encoders]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.bound_decomposition(pd.DataFrame(rows), targets, encoders)
        fig.savefig(io.BytesIO(), format="png", dpi=40)


def test_bound_vs_transferability_has_one_point_per_pair_and_the_diagonal():
    frame = _pairs()
    fig = plots.bound_vs_transferability(frame, 0.5)
    ax = fig.axes[0]
    assert "Pearson r = 0.50" in ax.get_title()
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(points) == len(frame)
    (line,) = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    np.testing.assert_allclose(line.get_xdata(), line.get_ydata())


def test_reference_training_has_a_line_per_target_in_both_panels():
    longer = pd.concat([_pairs(s).assign(epochs=e) for s, e in enumerate([1, 2, 5])])
    fig = plots.reference_training(longer)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        assert len([ln for ln in ax.lines if len(ln.get_xdata()) == 3]) == len(TARGETS)


def test_finetune_seeds_shows_every_seed():
    ft = _pairs().assign(accuracy_seed0=0.5, accuracy_seed1=0.6)
    fig = plots.finetune_seeds(ft, ENCODERS)
    assert len(fig.axes) == len(TARGETS)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 2 * len(ENCODERS)
    far = ft.assign(accuracy_seed0=np.where(ft.target == TARGETS[0], 0.5, 0.95), accuracy_seed1=lambda f: f.accuracy_seed0 + 0.01)
    axes = plots.finetune_seeds(far, ENCODERS).axes
    assert all(ax.get_xlim()[1] - ax.get_xlim()[0] < 0.1 for ax in axes)  # each target on its own axis


def test_scores_vs_accuracy_one_panel_per_score():
    table = _pairs().assign(logme=np.arange(6.0), leep=np.arange(6.0) ** 2, task_relatedness=np.arange(6.0))
    long = correlation.scores_long(table, {"logme": "LogME", "leep": "LEEP", "task_relatedness": "Ours (TR)"})
    fig = plots.scores_vs_accuracy(long)
    assert sorted(ax.get_title() for ax in fig.axes) == ["LEEP", "LogME", "Ours (TR) (lower is better)"]


def test_scores_vs_accuracy_standardises_each_target_so_no_target_is_a_vertical_line():
    """Targets whose scores sit at different levels (LEEP's) fill the panel alike, and the slope of a
    target's line is its Pearson r."""
    table = _pairs(seed=3)
    table["leep"] = table.accuracy * 0.01 + np.where(table.target == TARGETS[0], -2.3, -1.3)  # tiny spread, far apart
    long = correlation.scores_long(table, {"leep": "LEEP"})
    ax = plots.scores_vs_accuracy(long).axes[0]
    points = [c.get_offsets() for c in ax.collections if len(c.get_offsets())]
    assert len(points) == len(TARGETS)
    for xy in points:
        np.testing.assert_allclose([xy[:, 0].mean(), xy[:, 0].std(), xy[:, 1].mean(), xy[:, 1].std()], [0, 1, 0, 1],
                                   atol=1e-9)
    for t, line in zip(TARGETS, [ln for ln in ax.lines if len(ln.get_xdata()) > 1]):
        g = table[table.target == t]
        x, y = line.get_xdata(), line.get_ydata()
        assert (y[-1] - y[0]) / (x[-1] - x[0]) == pytest.approx(correlation.pearson(g.leep, g.accuracy))


def test_score_panel_names_the_encoders_and_reports_pearson():
    table = _pairs().assign(logme=[1.0, 2.0, 3.0, 3.0, 1.0, 2.0])
    long = correlation.scores_long(table, {"logme": "LogME"})
    fig = plots.score_panel(long, "LogME", "t1", "main")
    ax = fig.axes[0]
    g = table[table.target == "t1"]
    r = correlation.pearson(g.logme, g.accuracy)
    assert f"Pearson r = {r:+.2f}" in ax.get_title()
    assert sorted(t.get_text() for t in ax.texts) == ENCODERS
    # fewer than three encoders: no r
    assert "nan" in plots.score_panel(long, "LogME", "t1", "contrast").axes[0].get_title()


def _both():
    pairs = _pairs()
    both = pd.concat([pairs.assign(labels="true"), pairs.assign(labels="pseudo", value=pairs.value * 1.1)])
    return both.assign(value_failed=False)


def test_pseudo_label_agreement_heatmap_and_scatter():
    agreement = pd.DataFrame(np.full((3, 2), 0.7), index=ENCODERS, columns=TARGETS)
    both = _both()
    both.loc[both.index[0], "value_failed"] = True  # a failed pair is left out of the scatter
    fig = plots.pseudo_label_agreement(agreement, both)
    heat, scatter = fig.axes[0], fig.axes[1]
    assert len(heat.texts) == agreement.size
    assert sum(len(c.get_offsets()) for c in scatter.collections) == len(_pairs()) - 1


def _fractions():
    rows = [_pairs(10 * s + int(f * 10)).assign(fraction=f, seed=s) for f in (0.1, 0.5, 1.0) for s in (0, 1)]
    return pd.concat(rows, ignore_index=True)


def test_fraction_curve_one_line_per_target():
    by_fraction = pd.DataFrame([{"fraction": f, "seed": s, "target": t, "pearson_r": 0.1 * s + f}
                                for f in (0.1, 1.0) for s in (0, 1) for t in TARGETS])
    fig = plots.fraction_curve(by_fraction)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert len([ln for ln in ax.lines if list(ln.get_xdata()) == [0.1, 1.0]]) == len(TARGETS)
    _assert_legends_beside_the_axes(fig)


def _assert_legends_beside_the_axes(fig):
    """Every legend lies outside every axes of the figure (and their labels), so it never covers a
    line, a point or another panel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer))
            assert not box.overlaps(ax.yaxis.label.get_window_extent(renderer))


def test_fraction_panel_lines_for_value_and_terms_and_the_chosen_fraction():
    frame = _fractions()
    fig = plots.fraction_panel(frame, "t1", "enc-a", 0.5)
    left, right = fig.axes[:2]
    assert len([ln for ln in left.lines if len(ln.get_xdata()) == 3]) == 1 + len(plots.BOUND_TERMS)
    assert any(list(ln.get_xdata()) == [0.5, 0.5] and ln.get_linestyle() == ":" for ln in left.lines)
    n = ((frame.target == "t1") & (frame.fraction == 0.5)).sum()
    assert sum(len(c.get_offsets()) for c in right.collections) == n
    assert "fraction 0.5" in right.get_title()
    _assert_legends_beside_the_axes(fig)


def test_projection_panel_shows_one_encoder_and_task():
    frame = pd.DataFrame({"encoder": ["a"] * 4 + ["b"] * 2, "task": "t", "pc1": np.arange(6.0),
                          "pc2": np.arange(6.0), "label": [0, 1] * 3, "class_name": ["x", "y"] * 3})
    fig = plots.projection_panel(frame, "a", "t")
    assert fig.axes[0].get_title() == "a on t"
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 4


# ------------------------------------------------------------------ notebook 02
def test_gradient_norms_histogram_and_threshold():
    norms = pd.DataFrame({"gradient norm": np.r_[np.linspace(0, 1, 20), np.linspace(0.5, 2, 20)],
                          "labels": ["true"] * 20 + ["random"] * 20})
    fig = plots.gradient_norms(norms, 0.3, "h_R")
    ax = fig.axes[0]
    assert ax.get_title() == "h_R"
    assert any(ln.get_xdata()[0] == 0.3 for ln in ax.lines)
    assert len(ax.collections) == 2  # one step outline per label


def test_fit_curves_one_panel_per_quantity():
    history = pd.DataFrame({"step": [0, 1, 2], "objective": [3.0, 2.0, 1.0], "W": [1.0, 0.5, 0.4]})
    fig = plots.fit_curves(history)
    assert sorted(ax.get_title() for ax in fig.axes) == ["W", "objective"]
    scales = {ax.get_title(): ax.get_yscale() for ax in fig.axes}
    assert scales == {"objective": "log", "W": "linear"}  # J spans orders of magnitude


def test_label_map_and_prior_shows_B_and_both_priors():
    B = np.array([[0.9, 0.2, 0.0], [0.1, 0.8, 1.0]])
    D = np.array([0.5, 0.3, 0.2])
    fig = plots.label_map_and_prior(B, D, np.full(3, 1 / 3), ["x", "y"], ["a", "b", "c"], target="T", reference="R")
    heat, bars = fig.axes[:2]
    assert [t.get_text() for t in heat.texts] == [f"{v:.2f}" for v in B.ravel()]
    widths = sorted(b.get_width() for b in _bars(bars))
    np.testing.assert_allclose(widths, sorted(np.r_[np.full(3, 1 / 3), D]))


def test_transport_plan_heatmap_with_class_names():
    plan = {"plan": np.eye(3) / 3, "target_labels": [0, 1, 1], "reference_labels": [1, 0, 0]}
    fig = plots.transport_plan(plan, ["x", "y"], ["a", "b"], target="T", reference="R")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "y"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "a"]
    assert "3 + 3 points" in ax.get_title()


def test_tau0_sweep_three_panels_with_the_limit_and_the_choice():
    sweep = pd.DataFrame([{"encoder": e, "tau0": t, "penalty_price": 0.01 * t, "penalty_active": 0.5 / t,
                           "separation": t * (1 - t)} for e in "ab" for t in (0.1, 0.5, 1.0)])
    fig = plots.tau0_sweep(sweep, 0.02, 0.5)
    assert len(fig.axes) == 3
    assert any(np.allclose(ln.get_ydata(), 0.02) for ln in fig.axes[0].lines)
    assert "chosen tau0 = 0.5" in fig.axes[2].get_title()


def _step_problem():
    """A 3-class transport step: B sends reference class j to target class (j + 1) % 3."""
    yk, sl = np.array([2, 0, 1, 0, 2, 1]), np.array([1, 2, 0, 0, 1, 2])
    B = np.eye(3)[:, [1, 2, 0]]
    P = np.zeros((6, 6))
    for k, y in enumerate(yk):  # each reference point sends its mass to a target point of B's class
        P[k, np.flatnonzero(sl == (y + 1) % 3)[k % 2]] = 1 / 6
    cost = dict(feature=np.arange(36.0).reshape(6, 6), label=np.ones((6, 6)), Lambda=1e8, ref_labels=yk,
                target_labels=sl, B=B)
    return cost, P


def test_plan_and_cost_sorts_rows_by_matched_class_so_the_plan_is_block_diagonal():
    cost, P = _step_problem()
    fig = plots.plan_and_cost(cost, P, ["r0", "r1", "r2"], ["t0", "t1", "t2"], reference="R", target="T")
    axes = [ax for ax in fig.axes if ax.get_title()]  # the three panels (not the colour bars)
    assert len(axes) == 3 and "Lambda = 1e+08" in axes[1].get_title()
    dots = axes[2].collections[0].get_offsets()
    assert len(dots) == 6 and "6 non-zero entries of 36" in axes[2].get_title()
    rows, cols = dots[:, 1], dots[:, 0]
    # columns by target class (2 points each), rows by the target class B sends them to: the same blocks
    np.testing.assert_array_equal(rows // 2, cols // 2)
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["r2", "r0", "r1"]  # r2 -> t0, r0 -> t1, r1 -> t2
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["t0", "t1", "t2"]
    # the feature panel shows the cost permuted the same way
    image = axes[0].get_images()[0].get_array()
    rows_order = np.lexsort((cost["ref_labels"], cost["B"].argmax(0)[cost["ref_labels"]]))
    np.testing.assert_array_equal(image, cost["feature"][np.ix_(rows_order, np.argsort(cost["target_labels"], kind="stable"))])


def test_hand_iterations_draws_j_before_and_after_and_the_terms():
    table = pd.DataFrame({"step": [0, 1, 2], "J_before": [10.0, 8.0, 9.0], "J_after": [7.0, 6.0, 5.0],
                          "feature_term": [3.0, 2.0, 1.0], "label_term": [1e-3, 1e-4, 1e-5], "dA": [0.1, 0.1, 0.1]})
    fig = plots.hand_iterations(table)
    assert len(fig.axes) == 4
    before, after = fig.axes[0].get_lines()[:2]
    np.testing.assert_array_equal(before.get_ydata(), table.J_before)
    np.testing.assert_array_equal(after.get_ydata(), table.J_after)
    np.testing.assert_array_equal(fig.axes[2].get_lines()[0].get_ydata(), table.label_term)
