import numpy as np
import pandas as pd
import pytest

from taskrel_utils.study import config, correlation, stability
from taskrel_utils.study.published import PAPER_COLUMNS


def _study(n=6, targets=("a", "b"), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for t in targets:
        for e in range(n):
            acc = rng.uniform(0.5, 0.9)
            rows.append({"encoder": f"e{e}", "target": t, "group": "main", "accuracy": acc,
                         "probe_accuracy": acc + rng.normal(0, 0.05),
                         **{c: rng.normal() for c in PAPER_COLUMNS}, "task_relatedness": -acc + rng.normal(0, 0.02)})
    return pd.DataFrame(rows)


def test_families_without_refits_recompute_the_average_r():
    cfg = config.load_profile("smoke")
    study = _study()
    stab = stability.stability_table(cfg, feats=None, study=study, targets=["a", "b"], draws=1, projection=False)
    assert set(stab.family) == {"default", "leave one encoder out", "ground truth"}
    tr = stab[stab.score == "Ours (TR)"].set_index("setup").r
    avg = correlation.correlation_table(study, ["task_relatedness"]).loc["Average", "task_relatedness"]
    assert tr["the headline"] == pytest.approx(avg) and tr["the headline"] < -0.9
    without = study[study.encoder != "e3"]
    assert tr["without e3"] == pytest.approx(correlation.correlation_table(without, ["task_relatedness"]).loc["Average"].iloc[0])
    probe = correlation.correlation_table(study, ["task_relatedness"], truth="probe_accuracy").loc["Average"].iloc[0]
    assert tr["frozen-probe accuracy"] == pytest.approx(probe)
    assert len(stab[stab.family == "leave one encoder out"]) == 6 * len(PAPER_COLUMNS)
    # only the targets asked for count
    other = stability.stability_table(cfg, None, study, ["a"], draws=1, projection=False)
    assert other[(other.family == "default") & (other.score == "Ours (TR)")].r.iloc[0] == pytest.approx(
        correlation.correlation_table(study[study.target == "a"], ["task_relatedness"]).loc["a"].iloc[0])


def test_summary_corrects_signs_before_comparing():
    stab = pd.DataFrame([{"family": "f", "setup": s, "score": sc, "r": r}
                         for s, rs in {"s1": (-0.8, 0.5, 0.9), "s2": (-0.2, 0.6, -0.9)}.items()
                         for sc, r in zip(("Ours (TR)", "LogME", "PACTran"), rs)])
    summary = stability.stability_summary(stab)
    # TR -0.8 -> +0.8 beats LogME 0.5 in s1, not in s2 (0.2 < 0.6); PACTran (lower is better) 0.9 -> -0.9, -0.9 -> +0.9
    assert summary.loc["LogME", "Ours (TR) beats it"] == pytest.approx(0.5)
    assert summary.loc["PACTran", "Ours (TR) beats it"] == pytest.approx(0.5)
    assert summary.loc["Ours (TR)", "right_sign"] == 1.0 and summary.loc["PACTran", "right_sign"] == 0.5
    assert summary.loc["Ours (TR)", "median_r"] == pytest.approx(-0.5) and np.isnan(summary.loc["Ours (TR)", "Ours (TR) beats it"])
