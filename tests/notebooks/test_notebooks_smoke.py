"""Every notebook, run headlessly by papermill on the smoke profile, asserted from its metrics."""
import json
import math

import pytest

from taskrel_utils.method import fit_inspection
from taskrel_utils.study import config
from taskrel_utils.kit import pipeline

pytestmark = pytest.mark.notebooks  # the smoke_run fixture: tests/notebooks/conftest.py


def test_every_notebook_executed_and_reported(smoke_run):
    for nb in pipeline.list_notebooks():
        assert smoke_run.path("executed", nb.name).exists()
        html = smoke_run.path("report", f"{nb.stem}.html").read_text()
        assert "SMOKE RUN" in html and "<details" in html
        assert "<script" not in html  # the progress bars' widgets are left out
    timings = json.loads(smoke_run.path("params", "pipeline.json").read_text())["seconds"]
    assert set(timings) == {nb.stem for nb in pipeline.list_notebooks()}


def test_01_encoder_features(smoke_run):
    m = smoke_run.load_metrics("01_encoder_features")
    cfg = config.load_profile("smoke")
    assert m["profile"] == "smoke" and m["reference"] == cfg.reference
    assert set(m["tasks"]) == {cfg.reference, *cfg.targets}
    for name, sizes in m["tasks"].items():
        k = m["classes"][name]
        assert sizes["train"] <= 30 * k and sizes["test"] <= 10 * k and sizes["test"] >= k
    assert sizes["train"] > sizes["test"]
    assert set(m["encoders"]) == set(cfg.encoders) and all(d > 0 for d in m["encoders"].values())
    assert m["feature_sets"] == len(cfg.encoders) * len(m["tasks"]) * 2
    acc = m["nearest_mean_accuracy"]
    assert len(acc) == len(cfg.encoders) * len(m["tasks"]) and all(0 <= a <= 1 for a in acc.values())
    # a CNN pre-trained on the source separates the reference classes far better than chance (0.1)
    assert acc[f"lenet-short/{cfg.reference}"] > 0.3
    assert m["groups"] == {e: cfg.group(e) for e in cfg.encoders} and set(m["reference_classes"]) == set(cfg.targets)
    assert m["photo_check"] and all(m["photo_check"].values()), m["photo_check"]
    assert smoke_run.path("tables", "01_extraction.csv").exists()
    assert smoke_run.path("figures", "01_projections.png").exists()


TERMS = ("reweighted_reference_loss", "label_mismatch", "distribution_mismatch")


def _check_terms(row):
    values = [row[k] for k in (*TERMS, "value", "wasserstein", "tau")]
    assert all(math.isfinite(v) for v in values), row
    assert row["value"] == pytest.approx(sum(row[k] for k in TERMS), rel=1e-9, abs=1e-9)
    assert 0.0 <= row["target_accuracy"] <= 1.0
    assert row["label_mismatch"] >= -1e-12 and row["wasserstein"] >= 0 and row["tau"] >= 0


def test_02_fit_transformations(smoke_run):
    m = smoke_run.load_metrics("02_fit_transformations")
    cfg = config.load_profile("smoke")
    assert m["encoder"] == cfg.encoders[0] and m["target"] == cfg.targets[0]
    assert set(m["modes"]) == {"learned_all", "learned_a", "fixed_all"}  # uci-digits has 10 classes like the reference
    for row in m["modes"].values():
        _check_terms(row)
    assert m["modes"]["fixed_all"]["label_mismatch"] == pytest.approx(0.0, abs=1e-12)  # a permutation B
    assert m["B_column_sums"] == pytest.approx([1.0] * 10)
    assert 0.0 <= m["reference_accuracy"] <= 1.0
    grid = sorted({r["tau0"] for r in m["tau0_sweep"]})
    encoders = {r["encoder"] for r in m["tau0_sweep"]}
    assert m["best_tau0"] in grid and len(m["tau0_sweep"]) == len(grid) * len(encoders)
    assert encoders <= set(cfg.main_encoders)  # the sweep never uses a contrast
    for r in m["tau0_sweep"]:
        assert r["separation"] == pytest.approx((r["value_unrelated"] - r["value_related"]) / r["value_related"])
        assert r["penalty_price"] == pytest.approx(r["plain_probe_accuracy"] - r["reference_accuracy"])
    assert {r["b_init"] for r in m["b_init"]} == {"random", "class_means"}
    assert all(math.isfinite(r["value"]) for r in m["b_init"])
    # the steps run by hand are the one-line fit's first steps, bit for bit
    assert [r["step"] for r in m["hand_steps"]] == list(range(5)) and m["hand_steps_match_fit"]
    # the first step written out from scratch (numpy, POT, torch) is the kit's step (float64 on smoke)
    assert [r["quantity"] for r in m["by_hand"]] == list(fit_inspection.STEP_QUANTITIES)
    assert all(r["relative"] <= 1e-9 for r in m["by_hand"]), m["by_hand"]
    fit, conv = m["modes"]["learned_all"], m["convergence"]
    assert conv["steps_used"] == fit["steps_used"] and conv["converged"] == fit["converged"]
    assert conv["first_stop"] == (fit["steps_used"] if fit["converged"] else None)


def test_03_bound_decomposition(smoke_run):
    m = smoke_run.load_metrics("03_bound_decomposition")
    cfg = config.load_profile("smoke")
    assert len(m["pairs"]) == len(cfg.encoders) * len(cfg.targets)
    for row in m["pairs"]:
        _check_terms(row)
        assert 0.0 <= row["probe_accuracy"] <= 1.0 and row["probe_cross_entropy"] > 0
        assert row["gap"] == pytest.approx(row["value"] - row["probe_cross_entropy"])
    assert -1.0 <= m["pearson_all_pairs"] <= 1.0
    assert {r["b_init"] for r in m["b_init_effect"]} == {"class_means"}  # the default: the kit's start only
    assert {(r["encoder"], r["K_R"]) for r in m["reference_fits"]} == {
        (e, k) for e in cfg.encoders for k in (10, 4)}  # uci-digits: 10 classes, fashion-coarse: 4
    assert all(r["iterations"] >= 1 and 0 <= r["penalty_active_random"] <= 1 for r in m["reference_fits"])
    assert len(m["steps_used"]) == len(m["pairs"]) and all(s >= 1 for s in m["steps_used"])
    assert set(m["value_change_with_reference_training"]) == set(cfg.targets)
    claim_a = {r["targets"]: r for r in m["claim_a"]}
    assert set(claim_a) == {"all pairs", *m["pearson_by_target"]}
    assert claim_a["all pairs"]["pearson_r"] == pytest.approx(m["pearson_all_pairs"])
    assert all(r["low"] <= r["pearson_r"] <= r["high"] for r in claim_a.values())
    for name in ("03_bound_terms", "03_b_init_effect", "03_longer_reference_training", "03_claim_a"):
        assert smoke_run.path("tables", f"{name}.csv").exists()


def test_04_finetune_correlation(smoke_run):
    m = smoke_run.load_metrics("04_finetune_correlation")
    cfg = config.load_profile("smoke")
    gt = m["ground_truth"]
    assert gt["path"].endswith("data/ground_truth/smoke.csv") and not gt["recomputed"]  # the shipped file
    assert set(gt["chosen_protocols"]) == set(cfg.targets) and {r["target"] for r in gt["reliability"]} == set(cfg.targets)
    pairs = {(r["encoder"], r["target"]) for r in m["finetune"]}
    assert pairs == {(e, t) for e in cfg.encoders for t in cfg.targets}
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["accuracy_std"] >= 0 for r in m["finetune"])
    assert {r["encoder"]: r["group"] for r in m["finetune"]} == {e: cfg.group(e) for e in cfg.encoders}
    # the premise, from the ground truth's probe accuracies: measured for every target, related by the threshold
    premise = {r["target"]: r for r in m["premise"]}
    assert set(premise) == set(cfg.targets) and all(r["measured"] for r in premise.values())
    assert all(r["related"] == (r["gain"] >= cfg.premise["threshold"]) for r in premise.values())
    assert m["target_groups"]["related"] == [t for t in cfg.targets if premise[t]["related"]]
    assert set(m["target_groups"]["related"]) | set(m["target_groups"]["unrelated"]) == set(cfg.targets)
    assert m["target_groups"]["related"] and m["target_groups"]["unrelated"]  # smoke has one of each
    groups = {"main zoo, related targets", "main zoo, unrelated targets"}  # one contrast: too few for a correlation
    assert set(m["pearson_by_group"]) == groups
    head = m["headline"]
    assert head["low"] <= head["r"] <= head["high"] and head["n_targets"] == len(m["target_groups"]["related"])
    assert head["r"] == pytest.approx(m["pearson"]["Average"]["Ours (TR)"])
    assert isinstance(m["below_probe_by_1pt"], int)
    shares = {}
    for r in m["term_attribution"]:
        if r["quantity"] != "task_relatedness":
            shares[r["target"]] = shares.get(r["target"], 0) + r["variance_share"]
    assert shares.keys() == set(cfg.targets) and all(v == pytest.approx(1) for v in shares.values())
    families = {r["family"] for r in m["stability"]}
    assert families == {"default", "tau0", "reference draw", "projection", "leave one encoder out", "ground truth"}
    default = [r["r"] for r in m["stability"] if r["family"] == "default" and r["score"] == "Ours (TR)"]
    assert default == [pytest.approx(head["r"])]
    scores = ("task_relatedness", "logme", "leep", "nce", "h_score", "sfda", "pactran_dirichlet", "pactran_gamma",
              "pactran_gaussian", "ot_nce", "otce")
    for row in m["scores"]:
        assert all(math.isfinite(row[s]) for s in scores), row
        assert row["leep"] <= 0 and row["nce"] <= 1e-12 and row["ot_nce"] <= 1e-12  # log-likelihood / -entropy
    assert set(m["pearson"]) == {*m["target_groups"]["related"], "Average"}
    columns = {"LogME", "LEEP", "NCE", "PACTran", "SFDA", "H-Score", "OT-NCE", "OTCE", "Ours (TR)"}
    assert set(m["pearson"]["Average"]) == columns
    finite = [v for row in m["pearson"].values() for v in row.values() if v is not None]
    assert finite and all(-1.0 - 1e-9 <= v <= 1.0 + 1e-9 for v in finite)
    for name in ("04_finetune", "04_protocol_grid", "04_reliability", "04_scores", "04_premise",
                 "04_pearson_main_zoo_related_targets", "04_pearson_main_zoo_unrelated_targets", "04_rank_correlations",
                 "04_pearson_bootstrap", "04_term_attribution", "04_mechanism", "04_stability", "04_stability_summary"):
        assert smoke_run.path("tables", f"{name}.csv").exists()
    assert smoke_run.path("figures", "04_scores_vs_accuracy.png").exists()


def test_05_pseudo_labels(smoke_run):
    m = smoke_run.load_metrics("05_pseudo_labels")
    related = [r["target"] for r in smoke_run.load_metrics("04_finetune_correlation")["premise"] if r["related"]]
    assert m["targets"] == related   # the variants run on the related targets only
    cfg = config.load_profile("smoke", targets=related)
    assert set(m["true_vs_pseudo_pearson"]) == {*cfg.targets, "Average"}
    assert all(set(row) == {"true labels", "pseudo-labels"} for row in m["true_vs_pseudo_pearson"].values())
    assert set(m["true_vs_pseudo_pearson_by_group"]) == {"main"}
    assert len(m["pseudo_label_accuracy"]) == len(cfg.encoders) * len(cfg.targets)
    assert all(0.0 <= r["pseudo_label_accuracy"] <= 1.0 for r in m["pseudo_label_accuracy"])
    for row in m["pseudo_pairs"]:
        assert all(math.isfinite(row[k]) for k in ("value", *TERMS))
        assert row["value"] == pytest.approx(sum(row[k] for k in TERMS), rel=1e-9, abs=1e-9)
    fractions = m["fractions"]
    expected = sum(1 if f == 1 else len(m["fraction_seeds"]) for f in fractions) * len(cfg.targets)  # main zoo
    assert len(m["fraction_pearson"]) == expected
    assert {r["fraction"] for r in m["fraction_pearson"]} == set(fractions)
    for name in ("05_true_vs_pseudo", "05_true_vs_pseudo_pearson", "05_fraction_pearson", "05_fraction_values"):
        assert smoke_run.path("tables", f"{name}.csv").exists()
    assert smoke_run.path("figures", "05_fraction_curve.png").exists()


def test_the_run_gives_the_recorded_result_within_the_cross_machine_tolerance(smoke_run):
    """A newcomer's `make test` tells "same result" from "broken": the smoke run's task-relatedness
    values and correlations against the reference run shipped in data/reference_runs/smoke.json
    (recorded on another CPU kind: the tolerance is what crossing CPUs was measured to move), and
    the accuracies it correlates with are exactly the shipped ground truth's."""
    import pandas as pd

    from taskrel_utils.study import ground_truth, reference_run

    table = reference_run.compare(smoke_run.root)
    assert len(table) > 40 and table.ok.all(), table[~table.ok]
    shipped = pd.read_csv(ground_truth.default_path("smoke")).set_index(["encoder", "target"]).accuracy
    used = {(r["encoder"], r["target"]): r["accuracy"] for r in smoke_run.load_metrics("04_finetune_correlation")["finetune"]}
    assert used == {k: shipped[k] for k in used} and len(used) == len(shipped)
