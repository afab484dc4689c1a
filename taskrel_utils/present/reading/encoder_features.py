"""Notebook 01's reading of its own numbers: the tasks, the encoder zoo, the feature extraction, class
separability and the photo check.

Each function returns a Markdown string built from the tables passed in.
"""
from __future__ import annotations

import pandas as pd

from .common import count, quoted_names


def tasks_reading(task_table: pd.DataFrame, reference_classes: pd.DataFrame) -> str:
    """Notebook 01: the tasks of the run (``task_table`` columns task, role, classes, train, test)
    and the reference classes each target is paired with (``reference_classes`` columns target,
    K_T, K_R, reference_classes, reference_train)."""
    ref = task_table[task_table.role == "reference"].iloc[0]
    targets = task_table[task_table.role == "target"]
    parts = "; ".join(f"`{r.task}` {r.classes} classes ({r.train} / {r.test})" for r in targets.itertuples())
    cut = [r for r in reference_classes.itertuples() if r.K_R < int(ref.classes)]
    text = (f"**This run's tasks.** The reference `{ref.task}` has {ref.classes} classes ({ref.train} train / "
            f"{ref.test} test images); the {len(targets)} targets (train / test): {parts}. ")
    if cut:
        text += " ".join(f"For `{r.target}` ({r.K_T} classes) the reference is cut to {r.K_R} of its classes "
                         f"({r.reference_classes}; {r.reference_train} training images)." for r in cut)
    else:
        text += f"Every target has as many classes as the reference, so each is paired with all {ref.classes}."
    return text


def zoo_reading(zoo_table: pd.DataFrame) -> str:
    """Notebook 01: the encoders (``zoo_table`` columns encoder, group, feature_dim)."""
    main = zoo_table[zoo_table.group == "main"]
    contrast = zoo_table[zoo_table.group != "main"]
    lo, hi = zoo_table.loc[zoo_table.feature_dim.idxmin()], zoo_table.loc[zoo_table.feature_dim.idxmax()]
    return (f"**This run's zoo.** {count(len(zoo_table), 'encoder')}: {len(main)} in the main zoo "
            f"({quoted_names(main.encoder)}) and {count(len(contrast), 'contrast')} ({quoted_names(contrast.encoder) or 'none'}). "
            f"Their features have from "
            f"{lo.feature_dim} (`{lo.encoder}`) to {hi.feature_dim} (`{hi.encoder}`) dimensions; every "
            f"later step works on these vectors and never on the images again.")


def extraction_reading(extraction: pd.DataFrame, throughput: pd.DataFrame) -> str:
    """Notebook 01: the feature extraction (``extraction`` columns encoder, images, cache_hit;
    ``throughput`` columns encoder, images_per_second for the sets computed in this run)."""
    hits = int(extraction.cache_hit.sum())
    text = (f"**Extraction.** {len(extraction)} feature sets ({extraction.encoder.nunique()} encoders x tasks x "
            f"2 splits, {int(extraction.images.sum())} images in all); {hits} came from the cache. ")
    if len(throughput):
        fast = throughput.loc[throughput.images_per_second.idxmax()]
        slow = throughput.loc[throughput.images_per_second.idxmin()]
        text += (f"Of those computed now, `{fast.encoder}` was the fastest ({fast.images_per_second:,.0f} "
                 f"images/s) and `{slow.encoder}` the slowest ({slow.images_per_second:,.0f} images/s).")
    else:
        text += "Nothing was computed in this run: the throughput table is empty (a fresh cache fills it)."
    return text


def separability_reading(separability: pd.DataFrame, classes: dict, contrasts=(), reference: str | None = None) -> str:
    """Notebook 01: nearest-class-mean accuracy per (encoder, task) (``separability`` columns
    encoder, task, nearest_mean_accuracy); ``classes``: {task: number of classes} (chance is
    1 / classes); ``contrasts``: encoders outside the main zoo, each compared with the main zoo's mean."""
    acc = separability.pivot(index="encoder", columns="task", values="nearest_mean_accuracy")
    contrasts = [e for e in contrasts if e in acc.index]
    main = acc.drop(index=contrasts)
    tasks = list(acc.columns)
    if reference in tasks:
        tasks = [reference] + [t for t in tasks if t != reference]
    lines = []
    for t in tasks:
        extra = ", ".join(f"`{e}` {acc.loc[e, t]:.2f}" for e in contrasts)
        lines.append(f"* `{t}` (chance {1 / classes[t]:.2f}): the main zoo reaches {main[t].min():.2f} to "
                     f"{main[t].max():.2f} (best `{main[t].idxmax()}`)"
                     + (f"; contrasts {extra}" if extra else "") + ".")
    text = "**Separability in this run** (nearest-class-mean accuracy on the test split):\n\n" + "\n".join(lines)
    below = [f"`{e}` on {int((acc.loc[e, tasks] < main[tasks].mean()).sum())} of {len(tasks)}" for e in contrasts]
    if below:
        text += "\n\nBelow the main zoo's mean: " + ", ".join(below) + " tasks."
    beats = [f"`{e}` on `{t}`" for e in contrasts for t in tasks if acc.loc[e, t] > main[t].max()]
    if beats:
        text += (f" Above the best of the main zoo: {', '.join(beats)}: there, pre-training on the source did not "
                 "make that task's classes easier to separate than the contrast's features do.")
    return text


def photo_reading(photo_table: pd.DataFrame) -> str:
    """Notebook 01: the ImageNet photo check (``photo_table`` columns encoder, photo, top-1,
    p(top-1), recognised_top5)."""
    parts = []
    for enc, g in photo_table.groupby("encoder", sort=False):
        tops = ", ".join(f"{r['photo']} -> {str(r['top-1']).split(',')[0]} ({r['p(top-1)']:.2f})"
                         for _, r in g.iterrows())
        parts.append(f"`{enc}` recognises {int(g.recognised_top5.sum())} of {len(g)} photos in its top 5 "
                     f"(top-1: {tops})")
    verdict = ("the weights are the real ImageNet ones" if photo_table.recognised_top5.all()
               else "**some photo is not recognised: check the weights**")
    return "**Photo check.** " + "; ".join(parts) + f". So {verdict}."
