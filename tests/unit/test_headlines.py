"""The run's front page shows each notebook's headline numbers, read from its metrics."""
import json

from taskrel_utils.present.headlines import headlines

METRICS = {
    "01_encoder_features": {"encoders": {"a": 8, "b": 16}, "tasks": {"ref": {}, "t": {}}, "feature_sets": 8,
                            "cache_hits": 3, "reference": "ref",
                            "nearest_mean_accuracy": {"a/ref": 0.61, "b/ref": 0.88, "a/t": 0.99}},
    "02_fit_transformations": {"encoder": "a", "target": "t", "reference_accuracy": 0.874,
                               "modes": {"learned_all": {"value": 3.7074, "reweighted_reference_loss": 1.8182,
                                                         "label_mismatch": -1e-12, "distribution_mismatch": 1.8892,
                                                         "steps_used": 169, "converged": True}}},
    "03_bound_decomposition": {"pearson_all_pairs": 0.363, "pearson_by_target": {"t": 0.98, "u": -0.91},
                               "pairs": [{"gap": 1.0}, {"gap": 2.0}, {"gap": 4.0}]},
    "04_finetune_correlation": {"headline": {"r": -0.178, "low": -0.684, "high": 0.324, "n_targets": 3},
                                "target_groups": {"related": ["t", "u", "v"]},
                                "pearson": {"Average": {"LogME": 0.83, "Ours (TR)": -0.18, "PACTran": -0.81,
                                                        "OTCE": None}}},
    "05_pseudo_labels": {"true_vs_pseudo_pearson": {"Average": {"true labels": -0.18, "pseudo-labels": -0.2}},
                         "pseudo_label_accuracy": [{"pseudo_label_accuracy": 0.42}, {"pseudo_label_accuracy": 0.86}],
                         "fraction_pearson": [{"fraction": 0.1, "pearson_r": -0.2}, {"fraction": 0.1, "pearson_r": -0.1},
                                              {"fraction": 1.0, "pearson_r": -0.15}]},
}


def test_each_notebook_has_headlines_built_from_its_metrics():
    lines = {stem: headlines(stem, m) for stem, m in METRICS.items()}
    assert lines["01_encoder_features"] == ["2 encoders x 2 tasks: 8 feature sets (3 from the cache)",
                                            "nearest-class-mean accuracy on the reference ref: 0.610 to 0.880 (best b)"]
    assert lines["02_fit_transformations"] == [
        "a on t: task-relatedness 3.71 = L_C 1.82 + H 0.00 + tau W 1.89",
        "the fit converged after 169 steps; h_R's reference accuracy 0.874"]
    assert lines["03_bound_decomposition"] == [
        "task-relatedness vs the probe's loss: r +0.36 over all pairs, -0.91 to +0.98 within a target",
        "the bound's gap to the probe's loss: median 2.00 nats over 3 pairs"]
    assert lines["04_finetune_correlation"] == [
        "headline: task-relatedness's r with fine-tuned accuracy -0.18 (95 % interval -0.68 to +0.32) over 3 related "
        "targets; negative is good",
        "sign-corrected, task-relatedness ranks 3 of 3 scores of the paper's table; the best is LogME, +0.83"]
    assert lines["05_pseudo_labels"] == [
        "r with fine-tuned accuracy: -0.18 with the target's labels, -0.20 without them (average over targets, both "
        "with the theorem's W)",
        "pseudo-label agreement with the hidden labels: 0.42 to 0.86",
        "with 10% of the target data: r -0.15; with 100%: -0.15"]


def test_missing_or_odd_metrics_give_fewer_lines_never_an_error():
    assert headlines("04_finetune_correlation", {}) == []
    assert headlines("99_other", METRICS["01_encoder_features"]) == []
    assert headlines("05_pseudo_labels", {"pseudo_label_accuracy": "odd"}) == []
    assert headlines("03_bound_decomposition", {"pearson_all_pairs": None, "pairs": [{"gap": 1.0}]}) == [
        "the bound's gap to the probe's loss: median 1.00 nats over 1 pair"]
    json.dumps(METRICS)  # the fixtures are what a metrics file can hold
