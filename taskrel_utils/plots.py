"""Figures of the notebooks (seaborn on matplotlib). Each function returns the figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

sns.set_theme(context="notebook", style="whitegrid")


def task_samples(tasks: dict, per_row: int = 10, seed: int = 0):
    """One row of sample images per task (``{label: Task}``), titled with their class names."""
    fig, axes = plt.subplots(len(tasks), per_row, figsize=(1.2 * per_row, 1.45 * len(tasks)), squeeze=False)
    rng = np.random.default_rng(seed)
    for row, (label, task) in zip(axes, tasks.items()):
        # one image of each class first, then random others
        firsts = [int(np.flatnonzero(task.labels == c)[0]) for c in np.unique(task.labels)]
        rest = rng.permutation(len(task))
        picks = (firsts + [int(i) for i in rest if i not in firsts])[:per_row]
        for ax, i in zip(row, picks):
            img = np.asarray(task.image(i))
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_title(str(task.class_names[task.labels[i]])[:12], fontsize=7)
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
        for ax in row[len(picks):]:
            ax.axis("off")
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def projections(frame, max_points: int = 400, seed: int = 0):
    """Scatter of 2-D projections: rows = encoders, columns = tasks, colour = class.

    ``frame`` columns: encoder, task, pc1, pc2, label.
    """
    shuffled = frame.sample(frac=1.0, random_state=seed)
    sample = shuffled[shuffled.groupby(["encoder", "task"]).cumcount() < max_points]
    grid = sns.relplot(data=sample, x="pc1", y="pc2", hue="label", row="encoder", col="task",
                       palette="tab10", s=8, linewidth=0, height=1.9, aspect=1,
                       facet_kws={"sharex": False, "sharey": False}, legend=False)
    grid.set_titles("{row_name}\n{col_name}", size=7)
    grid.set(xticks=[], yticks=[], xlabel="", ylabel="")
    return grid.figure


def heatmap(frame, index: str, columns: str, values: str, title: str, fmt: str = ".2f"):
    """A labelled heatmap of ``values`` by ``index`` x ``columns``."""
    table = frame.pivot(index=index, columns=columns, values=values)
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
