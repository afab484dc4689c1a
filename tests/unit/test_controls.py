"""Variants of a pair: the shuffled-label control and a stratified fraction of the target data."""
import numpy as np
import pytest

from taskrel_utils.study import controls, experiment
from taskrel_utils.core.errors import TaskrelError


def test_shuffled_target_keeps_features_and_label_counts(feats):
    p = experiment.pair(feats, "e", "ref", "tgt")
    c = controls.shuffled_target(p, seed=1)
    for key in ("target_train", "target_test"):
        assert c[key][0] is p[key][0]
        assert np.array_equal(np.bincount(c[key][1]), np.bincount(p[key][1]))
        assert not np.array_equal(c[key][1], p[key][1])
    assert c["ref_train"] is p["ref_train"]


def test_target_fraction_is_stratified_and_used_for_the_whole_target_side(feats):
    p = experiment.pair(feats, "e", "ref", "tgt")
    y = p["target_train"][1]
    small = controls.target_fraction(p, 0.1, seed=0)
    Zs, ys = small["target_train"]
    assert small["target_test"] is small["target_train"] and small["ref_train"] is p["ref_train"]
    np.testing.assert_array_equal(np.bincount(ys), np.round(0.1 * np.bincount(y)).astype(int))
    tiny = controls.target_fraction(p, 1e-4, seed=0)
    np.testing.assert_array_equal(np.bincount(tiny["target_train"][1]), np.ones(4, int))  # >= 1 per class
    rows = {tuple(r) for r in p["target_train"][0]}
    assert all(tuple(r) in rows for r in Zs)  # a subset of the real target data
    again = controls.target_fraction(p, 0.1, seed=0)["target_train"][0]
    other = controls.target_fraction(p, 0.1, seed=1)["target_train"][0]
    assert np.array_equal(again, Zs) and not np.array_equal(other, Zs)
    full = controls.target_fraction(p, 1.0)
    assert np.array_equal(full["target_train"][0], p["target_train"][0])
    for bad in (0, 1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match="fraction"):
            controls.target_fraction(p, bad)
        with pytest.raises(TaskrelError):
            controls.target_fraction(p, bad)


def test_shuffled_test_labels_leave_the_fit_inputs_alone(feats):
    p = experiment.pair(feats, "e", "ref", "tgt")
    c = controls.shuffled_test_labels(p, seed=1)
    assert c["target_train"] is p["target_train"] and c["ref_train"] is p["ref_train"]
    assert c["target_test"][0] is p["target_test"][0]
    assert np.array_equal(np.bincount(c["target_test"][1]), np.bincount(p["target_test"][1]))
    assert not np.array_equal(c["target_test"][1], p["target_test"][1])
    assert np.array_equal(controls.shuffled_test_labels(p, seed=1)["target_test"][1], c["target_test"][1])
