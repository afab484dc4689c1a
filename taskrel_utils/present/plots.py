"""Figures of the notebooks (seaborn on matplotlib). Each function returns the figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(context="notebook", style="whitegrid")


#: class names longer than this wrap onto a second line in small titles and tick labels (never cut)
LABEL_WIDTH = 12


def _wrapped(name, width: int = LABEL_WIDTH) -> str:
    """A class name for a small title or tick label: whole, wrapped at spaces onto lines of about
    ``width`` characters ("trousers & dresses" -> "trousers &\\ndresses")."""
    import textwrap

    return "\n".join(textwrap.wrap(str(name), width, break_long_words=False)) or str(name)


def _legend_outside(ax, title=None, **kwargs):
    """Move the axes' legend to the right of the axes, where it covers no bar, line or point."""
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False,
                    title=title, **kwargs)


def task_samples(tasks: dict, per_row: int = 10, seed: int = 0):
    """One row of sample images per task (``{label: Task}``), titled with their class names."""
    fig, axes = plt.subplots(len(tasks), per_row, figsize=(1.2 * per_row, 1.6 * len(tasks)), squeeze=False)
    rng = np.random.default_rng(seed)
    for row, (label, task) in zip(axes, tasks.items()):
        # one image of each class first, then random others
        firsts = [int(np.flatnonzero(task.labels == c)[0]) for c in np.unique(task.labels)]
        rest = rng.permutation(len(task))
        picks = (firsts + [int(i) for i in rest if i not in firsts])[:per_row]
        for ax, i in zip(row, picks):
            img = np.asarray(task.image(i))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(_wrapped(task.class_names[task.labels[i]]), fontsize=7)
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
        for ax in row[len(picks):]:
            ax.axis("off")
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def projections(frame, max_points: int = 400, seed: int = 0, encoders=None, tasks=None):
    """Scatter of 2-D projections: one row per encoder (in the order of ``encoders``), one column
    per task (``tasks``), coloured by class, with the task's class names in a legend under each
    column. Default orders: as the encoders and tasks first appear in ``frame``.

    ``frame`` columns: encoder, task, pc1, pc2, label (and class_name for the legends).
    """
    encoders = list(encoders) if encoders is not None else list(dict.fromkeys(frame.encoder))
    tasks = list(tasks) if tasks is not None else list(dict.fromkeys(frame.task))
    frame = frame[frame.encoder.isin(encoders) & frame.task.isin(tasks)]
    shuffled = frame.sample(frac=1.0, random_state=seed)  # no class drawn on top of the others
    sample = shuffled[shuffled.groupby(["encoder", "task"]).cumcount() < max_points]
    labels = sorted(frame.label.unique())
    palette = dict(zip(labels, sns.color_palette("tab10", len(labels)) if len(labels) <= 10
                       else sns.color_palette("husl", len(labels))))
    grid = sns.relplot(data=sample, x="pc1", y="pc2", hue="label", row="encoder", col="task",
                       row_order=encoders, col_order=tasks, hue_order=labels, palette=palette, s=8, linewidth=0,
                       height=1.9, aspect=1, facet_kws={"sharex": False, "sharey": False}, legend=False)
    grid.set_titles("")
    grid.set(xticks=[], yticks=[], xlabel="", ylabel="")
    for j, task in enumerate(tasks):
        grid.axes[0, j].set_title(task, fontsize=9, fontweight="bold")
        if "class_name" in frame:
            names = (frame[frame.task == task].drop_duplicates("label").set_index("label")["class_name"]
                     .sort_index())
            handles = [plt.Line2D([], [], ls="", marker="o", ms=5, color=palette[k]) for k in names.index]
            grid.axes[-1, j].legend(handles, [_wrapped(n, 16) for n in names], loc="upper center",
                                    bbox_to_anchor=(0.5, -0.04), fontsize=7, frameon=False, handletextpad=0.1,
                                    title=f"{task} classes", title_fontsize=7)
    for i, encoder in enumerate(encoders):
        grid.axes[i, 0].set_ylabel(encoder, rotation=0, ha="right", va="center", fontsize=9)
    return grid.figure


def projection_panel(frame, encoder: str, task: str):
    """The 2-D projection of one encoder on one task, coloured by class name (``frame`` columns:
    encoder, task, pc1, pc2, class_name)."""
    sel = frame[(frame.encoder == encoder) & (frame.task == task)]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    order = sel.drop_duplicates("label").sort_values("label")["class_name"].tolist() if "label" in sel else None
    sns.scatterplot(data=sel, x="pc1", y="pc2", hue="class_name", hue_order=order, s=10, linewidth=0, ax=ax,
                    palette="tab10")
    ax.legend(fontsize=7, markerscale=1.5, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_title(f"{encoder} on {task}")
    return fig


def heatmap(frame, index: str, columns: str, values: str, title: str, fmt: str = ".2f", index_order=None,
            columns_order=None):
    """A labelled heatmap of ``values`` by ``index`` x ``columns``, rows and columns in
    ``index_order`` / ``columns_order`` when given (else sorted)."""
    table = frame.pivot(index=index, columns=columns, values=values)
    if index_order is not None:
        table = table.loc[[i for i in index_order if i in table.index]]
    if columns_order is not None:
        table = table[[c for c in columns_order if c in table.columns]]
    fig, ax = plt.subplots(figsize=(1.3 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1.2))
    sns.heatmap(table, annot=True, fmt=fmt, cmap="viridis", cbar=False, ax=ax)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def bars(frame, x: str, y: str, title: str, hue: str | None = None, log: bool = False):
    """A horizontal bar chart of ``x`` per ``y``."""
    fig, ax = plt.subplots(figsize=(7, 0.35 * frame[y].nunique() + 1.2))
    sns.barplot(data=frame, x=x, y=y, hue=hue, ax=ax, orient="h")
    if log:
        ax.set_xscale("log")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def photo_predictions(photos: dict, predictions: dict):
    """Photos with each encoder's top-3 ImageNet classes.

    ``photos``: {name: HxWx3 uint8}; ``predictions``: {encoder: {photo: [(class, prob), ...]}}.
    """
    fig, axes = plt.subplots(1, len(photos), figsize=(3.6 * len(photos), 4.2), squeeze=False)
    for ax, (name, img) in zip(axes[0], photos.items()):
        ax.imshow(img)
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
        lines = [f"{enc}: " + ", ".join(f"{c.split(',')[0]} {p:.2f}" for c, p in preds[name][:2])
                 for enc, preds in predictions.items()]
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("\n".join(lines), fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ one fit, step by step (nb 02)
def gradient_norms(norms, tau0: float, title: str):
    """Histogram of h_R's input-gradient norms with true and with random labels (``norms`` columns:
    "gradient norm", labels), the penalty threshold ``tau0`` dashed."""
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.histplot(data=norms, x="gradient norm", hue="labels", bins=40, element="step", ax=ax)
    ax.axvline(tau0, color="k", ls="--", label="tau0")
    ax.set_title(title)
    _legend_outside(ax, title="labels")
    fig.tight_layout()
    return fig


#: panels of :func:`fit_curves` drawn on a log scale when positive: J starts orders of magnitude
#: above where it settles (the label term, weighted by Lambda, vanishes in the first steps)
LOG_SCALE_CURVES = ("objective", "objective_moving_average")


def fit_curves(history):
    """One panel per logged quantity of a fit against its step (``history`` columns: step and
    one column per quantity); :data:`LOG_SCALE_CURVES` on a log scale when all positive."""
    curves = history.melt(id_vars="step", value_vars=[c for c in history.columns if c != "step"],
                          var_name="quantity", value_name="value")
    grid = sns.relplot(data=curves, x="step", y="value", col="quantity", col_wrap=4, kind="line",
                       height=2.2, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    for name, ax in grid.axes_dict.items():
        if name in LOG_SCALE_CURVES and (history[name] > 0).all():
            ax.set_yscale("log")
    return grid.figure


#: label maps with at most this many target classes get their entries printed in the cells
MAX_ANNOTATED_CLASSES = 12


def label_map_and_prior(B, D, reference_prior, target_names, reference_names, target: str, reference: str):
    """Left: the label map ``B`` (K_T x K_R; column j = where reference class j goes). Right: the
    reference class prior next to the re-weighting ``D`` learned by the fit."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.4 * B.shape[0] + 2.5), gridspec_kw={"width_ratios": [3, 2]})
    sns.heatmap(pd.DataFrame(B, index=list(target_names), columns=list(reference_names)),
                annot=B.shape[0] <= MAX_ANNOTATED_CLASSES, fmt=".2f", cmap="mako", ax=axes[0], cbar=False)
    axes[0].set(title="B: reference class (column) -> target class (row)", xlabel=reference, ylabel=target)
    prior = pd.DataFrame({"class": list(reference_names) * 2,
                          "probability": np.r_[reference_prior, D],
                          "prior": ["reference prior"] * len(D) + ["D (learned)"] * len(D)})
    sns.barplot(data=prior, x="probability", y="class", hue="prior", ax=axes[1], orient="h")
    axes[1].set_title("class prior: original vs re-weighted", pad=28)
    # above the bars, not over them (the longest bars reach the right edge)
    sns.move_legend(axes[1], "lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, title=None, frameon=False,
                    fontsize=8)
    axes[1].set_yticks(range(len(D)), [_wrapped(n) for n in reference_names])
    fig.tight_layout()
    return fig


def transport_plan(plan, target_names, reference_names, target: str, reference: str):
    """Heatmap of an exact transport plan between a few mapped reference points (rows) and target
    points (columns), labelled with their class names. ``plan``: ``cached_fits.example_plan``'s dict
    (plan, target_labels, reference_labels)."""
    fig, ax = plt.subplots(figsize=(7, 5.5))
    sns.heatmap(plan["plan"], xticklabels=[target_names[s] for s in plan["target_labels"]],
                yticklabels=[reference_names[y] for y in plan["reference_labels"]],
                cmap="rocket_r", ax=ax, cbar_kws={"label": "mass"})
    n_ref, n_tgt = np.shape(plan["plan"])
    ax.set(xlabel=f"target points ({target})", ylabel=f"mapped reference points ({reference})",
           title=f"an exact transport plan on {n_ref} + {n_tgt} points")
    return fig


def _blocks(ax, labels, names, axis: str):
    """Class blocks of a class-sorted axis: separator lines and the class names at block centres."""
    edges = np.flatnonzero(np.diff(labels)) + 0.5
    centres = [np.mean(np.flatnonzero(labels == c)) for c in dict.fromkeys(labels)]
    ticks = [_wrapped(names[c]) for c in dict.fromkeys(labels)]
    for e in edges:
        (ax.axhline if axis == "y" else ax.axvline)(e, color="w", lw=0.6)
    if axis == "y":
        ax.set_yticks(centres, ticks, fontsize=7)
    else:
        ax.set_xticks(centres, ticks, fontsize=7, rotation=90)


def plan_and_cost(cost: dict, plan, reference_names, target_names, reference: str, target: str):
    """One step's transport problem (docs/method.md (12)-(13)) in three panels: the feature cost
    ``||A z_k + b - t_l||``, the label cost ``||B e_{y_k} - e_{s_l}||`` (weighted by Lambda in M) and
    the exact plan (a dot per non-zero entry, its area proportional to the mass).

    ``cost``: ``fit_inspection.cost_matrix`` (n x m parts, the batches' labels, B); ``plan``: the
    dense n x m plan. Columns are sorted by target class; rows by the target class that B sends
    their reference class to (its largest entry), then by reference class, so that a plan that
    keeps to B's class matching is block-diagonal.
    """
    yk, sl, B = np.asarray(cost["ref_labels"]), np.asarray(cost["target_labels"]), np.asarray(cost["B"])
    rows = np.lexsort((yk, B.argmax(0)[yk]))
    cols = np.argsort(sl, kind="stable")
    P = np.asarray(plan)[np.ix_(rows, cols)]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    panels = (("feature cost ||A z + b - t||", cost["feature"], "viridis"),
              (f"label cost ||B e_y - e_s|| (x Lambda = {cost['Lambda']:.0e} in M)", cost["label"], "mako"))
    for ax, (title, C, cmap) in zip(axes, panels):
        im = ax.imshow(np.asarray(C)[np.ix_(rows, cols)], aspect="auto", cmap=cmap, interpolation="nearest")
        fig.colorbar(im, ax=ax, fraction=0.04)
        ax.set_title(title, fontsize=10)
    r, c = np.nonzero(P)
    axes[2].scatter(c, r, s=min(60.0, 3000.0 / P.shape[0]) * P[r, c] / P.max(), color="k", linewidths=0)
    axes[2].set(xlim=(-0.5, P.shape[1] - 0.5), ylim=(P.shape[0] - 0.5, -0.5), facecolor="white")
    axes[2].set_title(f"exact plan: {len(r)} non-zero entries of {P.size}", fontsize=10)
    for ax in axes:
        ax.grid(False)
        _blocks(ax, yk[rows], reference_names, "y")
        _blocks(ax, sl[cols], target_names, "x")
        ax.set_xlabel(f"target batch ({target}), by class")
    axes[0].set_ylabel(f"mapped reference batch ({reference}), by matched class")
    for e in np.flatnonzero(np.diff(sl[cols])) + 0.5:  # white separators are invisible on white
        axes[2].axvline(e, color="0.8", lw=0.6)
    for e in np.flatnonzero(np.diff(yk[rows])) + 0.5:
        axes[2].axhline(e, color="0.8", lw=0.6)
    fig.tight_layout()
    return fig


def hand_iterations(table):
    """The fit's terms over a few iterations run by hand (``table``: rows of
    ``fit_inspection.step_row``): J under each step's plan before and after its update, the
    feature and label terms, and how far A moved."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    axes[0].plot(table["step"], table["J_before"], "o-", label="before the update")
    axes[0].plot(table["step"], table["J_after"], "s--", label="after (same plan)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    axes[0].set_title("J (14) under the step's plan", fontsize=10)
    for ax, (column, title) in zip(axes[1:], (("feature_term", "feature term sum Pi ||Az+b-t||^2"),
                                              ("label_term", "label term sum Pi ||Be_y-e_s||^2"),
                                              ("dA", "||A_new - A||_F"))):
        ax.plot(table["step"], table[column], "o-")
        ax.set_title(title, fontsize=10)
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_xticks(list(table["step"]))
    fig.tight_layout()
    return fig


def tau0_sweep(sweep, max_price: float, chosen: float):
    """The tau0 sweep of h_R: the penalty's price in accuracy (``max_price`` dashed), the share of
    samples at the threshold, and the separation from the shuffled control (``chosen`` dotted);
    bands over encoders. ``sweep`` columns: tau0, penalty_price, penalty_active, separation."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    sns.lineplot(data=sweep, x="tau0", y="penalty_price", marker="o", errorbar=("pi", 100), ax=axes[0])
    axes[0].axhline(max_price, color="k", ls="--", lw=0.8)
    axes[0].set(xscale="log", title="price of the penalty (plain probe - h_R accuracy)")
    sns.lineplot(data=sweep, x="tau0", y="penalty_active", marker="o", errorbar=("pi", 100), ax=axes[1])
    axes[1].set(xscale="log", title="share of training samples at the threshold")
    sns.lineplot(data=sweep, x="tau0", y="separation", marker="o", errorbar=("pi", 100), ax=axes[2])
    axes[2].axvline(chosen, color="k", ls=":")
    axes[2].set(xscale="log", title=f"separation from the shuffled control; chosen tau0 = {chosen}")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ the bound and its terms (nb 03, 05)
#: the three terms of the bound, in stacking order; their sum is task-relatedness (docs/method.md §5)
BOUND_TERMS = ("reweighted_reference_loss", "label_mismatch", "distribution_mismatch")


#: panels per row of :func:`bound_decomposition` (more targets wrap onto further rows)
DECOMPOSITION_COLUMNS = 4


def bound_decomposition(frame, targets, encoders, terms=BOUND_TERMS):
    """Stacked horizontal bars of the bound's ``terms`` per encoder, one panel per target (at most
    :data:`DECOMPOSITION_COLUMNS` per row), with the probe's target cross-entropy (the actual
    transferability) as black dots.

    ``frame``: one row per (encoder, target) with the columns of ``terms`` and ``probe_cross_entropy``.
    """
    targets = list(targets)
    ncols = min(DECOMPOSITION_COLUMNS, len(targets))
    nrows = -(-len(targets) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, nrows * (0.3 * len(encoders) + 1.6) + 0.6),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    colors = sns.color_palette("Set2", len(terms))
    for ax, target in zip(axes.flat, targets):
        sub = frame[frame.target == target].set_index("encoder").loc[list(encoders)]
        left = np.zeros(len(sub))
        for term, color in zip(terms, colors):
            ax.barh(sub.index, sub[term], left=left, color=color, label=term.replace("_", " "))
            left += sub[term].to_numpy()
        ax.scatter(sub["probe_cross_entropy"], sub.index, color="k", zorder=3, s=18,
                   label="probe CE (transferability)")
        ax.set_title(target)
        ax.tick_params(axis="x", labelbottom=True)  # every panel keeps its scale (rows of panels share it)
    for ax in list(axes.flat)[len(targets):]:
        ax.set_visible(False)
    axes[0][0].invert_yaxis()  # shared y axis: first encoder on top
    # one legend above all panels: constrained layout makes room for it (tight_layout could not,
    # with a legend anchored to the first panel but spanning them all, and warned)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside upper center", ncol=len(terms) + 1,
               fontsize=8)
    return fig


def bound_vs_transferability(frame, pearson_r: float):
    """Task-relatedness (``value``) against the probe's target cross-entropy, one point per
    (encoder, target), with the diagonal where the bound equals the transferability."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    sns.scatterplot(data=frame, x="value", y="probe_cross_entropy", hue="target", style="target", s=60, ax=ax)
    lim = [min(frame["probe_cross_entropy"].min(), frame["value"].min()) * 0.95, frame["value"].max() * 1.05]
    ax.plot(lim, lim, "k--", lw=0.8, label="bound = transferability")
    ax.set(xlabel="task-relatedness (bound)", ylabel="probe target cross-entropy",
           title=f"all pairs: Pearson r = {pearson_r:.2f}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return fig


def reference_training(frame):
    """Task-relatedness and the transferred classifier's target accuracy against the reference
    encoder's training epochs (``frame`` columns: epochs, target, value, target_accuracy)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    sns.lineplot(data=frame, x="epochs", y="value", hue="target", marker="o", ax=axes[0], legend=False)
    axes[0].set(xscale="log", title="task-relatedness vs reference training")
    sns.lineplot(data=frame, x="epochs", y="target_accuracy", hue="target", marker="o", ax=axes[1])
    axes[1].set(xscale="log", title="transferred classifier's target accuracy")
    _legend_outside(axes[1], title="target")  # one legend for both panels, beside them
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ fine-tuning and the scores (nb 04)
def finetune_seeds(frame, encoders):
    """Fine-tuned accuracy of every seed (the ``accuracy_seed*`` columns), one row per encoder,
    one panel per target (four to a row, each with its own accuracy axis: the targets' accuracies
    lie far apart, and one shared axis squashes each target's seeds into a line), coloured by group
    (main zoo / contrast)."""
    seed_cols = [c for c in frame.columns if c.startswith("accuracy_seed")]
    per_seed = (frame[["encoder", "target", "group", *seed_cols]]
                .melt(id_vars=["encoder", "target", "group"], value_vars=seed_cols, value_name="accuracy").dropna())
    grid = sns.catplot(data=per_seed, x="accuracy", y="encoder", hue="group", col="target", kind="strip",
                       col_wrap=min(4, per_seed.target.nunique()), sharex=False,
                       height=0.28 * len(encoders) + 1.6, aspect=0.9, order=list(encoders), s=4)
    grid.set_titles("{col_name}")
    return grid.figure


def _standardised(values: pd.Series) -> pd.Series:
    """``(v - mean) / std`` (population std); NaN when the values are constant."""
    sd = values.std(ddof=0)
    return (values - values.mean()) / sd if sd > 0 else values * np.nan


def scores_vs_accuracy(long):
    """One panel per score, one point per (encoder, target), per-target least-squares lines.

    Both axes are standardised within each (score, target): the targets' scores live on scales that
    differ by far more than the spread of one target's zoo (LEEP's per-target levels, say), so raw
    values squash each target into a vertical line. Standardised, every target fills its panel and
    the slope of its line is its Pearson r. Titles mark the lower-is-better scores.

    ``long``: columns score, score_value, accuracy, target (see ``correlation.scores_long``).
    """
    from ..study.published import LOWER_IS_BETTER

    x, y = "score (z)", "accuracy (z)"
    z = long.copy()
    by = z.groupby(["score", "target"], sort=False)
    z[x] = by["score_value"].transform(_standardised)
    z[y] = by["accuracy"].transform(_standardised)
    z["score"] = [f"{s} (lower is better)" if s in LOWER_IS_BETTER else s for s in z.score]
    grid = sns.lmplot(data=z.dropna(subset=[x, y]), x=x, y=y, hue="target", col="score", col_wrap=4, height=2.6,
                      ci=None, scatter_kws=dict(s=18))
    grid.set_titles("{col_name}", size=9)
    grid.figure.suptitle("each score against the fine-tuned accuracy; z: standardised within each target "
                         "(the slope of a target's line is its Pearson r)", y=1.02, fontsize=10)
    return grid.figure


def score_panel(long, score: str, target: str, group: str):
    """One score against the fine-tuned accuracy on one target and group, encoders named, with
    its Pearson r in the title (NaN with fewer than 3 encoders or a constant score)."""
    from ..study.correlation import pearson

    g = long[(long.score == score) & (long.target == target) & (long.group == group)]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.regplot(data=g, x="score_value", y="accuracy", ci=None, ax=ax)
    for _, row in g.iterrows():
        ax.annotate(row.encoder, (row.score_value, row.accuracy), fontsize=7, alpha=0.8)
    r = pearson(g.score_value, g.accuracy) if len(g) >= 3 and g.score_value.nunique() > 1 else np.nan
    ax.set(title=f"{score} on {target} ({group}): Pearson r = {r:+.2f}", xlabel=score)
    return fig


# ------------------------------------------------------------------ pseudo-labels and fractions (nb 05)
def pseudo_label_agreement(agreement, both):
    """Left: matched agreement of the pseudo-labels with the hidden labels (encoders x targets).
    Right: task-relatedness with true against pseudo-labels per (encoder, target).

    ``both``: rows of both fits with columns encoder, target, labels ("true"/"pseudo"), value,
    value_failed; failed pairs are left out.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.4 * len(agreement) + 2.6))
    sns.heatmap(agreement, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=axes[0],
                cbar_kws={"label": "matched agreement"})
    axes[0].set_title("pseudo-label agreement with the hidden labels")
    ok = both[~both.value_failed]
    pairs = ok.pivot_table(index=["encoder", "target"], columns="labels", values="value").dropna().reset_index()
    sns.scatterplot(data=pairs, x="true", y="pseudo", hue="target", style="target", s=50, ax=axes[1])
    lim = [ok.value.min() * 0.97, ok.value.max() * 1.03]
    axes[1].plot(lim, lim, "k--", lw=0.8)
    axes[1].set(title="task-relatedness: true vs pseudo-labels", xlabel="with true labels",
                ylabel="with pseudo-labels")
    fig.tight_layout()
    return fig


def fraction_curve(by_fraction):
    """Pearson r (TR vs accuracy) per target against the fraction of target data, the band
    spanning the seeds (``by_fraction`` columns: fraction, seed, target, pearson_r)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sns.lineplot(data=by_fraction, x="fraction", y="pearson_r", hue="target", style="target", marker="o",
                 errorbar=("pi", 100), ax=ax)
    ax.set(xscale="log", xlabel="fraction of the target training data", ylabel="Pearson r (TR vs accuracy)",
           title="task-relatedness with little target data (main zoo)")
    ax.set_xticks(sorted(by_fraction.fraction.unique()), [f"{f:g}" for f in sorted(by_fraction.fraction.unique())])
    ax.axhline(0, color="grey", lw=0.8)
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside the lines, never over them
    fig.tight_layout()
    return fig


def fraction_panel(frame, target: str, encoder: str, fraction: float, terms=BOUND_TERMS):
    """Left: task-relatedness and its ``terms`` of one encoder on one target against the fraction
    of target data (band over seeds), the chosen ``fraction`` dotted. Right: TR against the
    fine-tuned accuracy across the zoo at that fraction, one colour per seed.

    ``frame`` columns: encoder, target, fraction, seed, value, accuracy and ``terms``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw=dict(wspace=0.3))
    g = frame[(frame.target == target) & (frame.encoder == encoder)]
    # value_name must differ from the column "value" (task-relatedness), which is melted too
    g = g.melt(id_vars=["fraction", "seed"], value_vars=["value", *terms], var_name="quantity", value_name="amount")
    sns.lineplot(data=g, x="fraction", y="amount", hue="quantity", marker="o", errorbar=("pi", 100), ax=axes[0])
    axes[0].axvline(fraction, color="k", ls=":")
    fractions = sorted(frame.fraction.unique())
    axes[0].set(xscale="log", ylabel="value", title=f"{encoder} on {target}")
    axes[0].set_xticks(fractions, [f"{f:g}" for f in fractions])
    h = frame[(frame.target == target) & np.isclose(frame.fraction, fraction)]
    sns.scatterplot(data=h, x="value", y="accuracy", hue="seed", ax=axes[1])
    for _, row in h[h.seed == h.seed.min()].iterrows():
        axes[1].annotate(row.encoder, (row.value, row.accuracy), fontsize=7, alpha=0.8)
    axes[1].set(title=f"{target}, fraction {fraction:g}: TR vs fine-tuned accuracy", xlabel="task-relatedness")
    # legends outside the axes, never over the lines and points: the terms' under the left panel, the seeds'
    # right of the right one
    sns.move_legend(axes[0], "upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False, title=None)
    if axes[1].get_legend() is not None:
        sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig
