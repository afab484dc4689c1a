"""The kit's input checks: each rule accepts good input and refuses a bad one with a clear message."""
import numpy as np
import pytest

from taskrel_utils.core.checks import as_features, as_labels, as_pair, as_seed, check_classes
from taskrel_utils.core.errors import TaskrelError


def test_as_features_returns_float64_2d():
    Z = as_features(np.arange(6, dtype=np.float32).reshape(3, 2), "Z", d=2)
    assert Z.dtype == np.float64 and Z.shape == (3, 2)


@pytest.mark.parametrize("Z, d, match", [
    ([["a", "b"]], None, "numeric array"),
    (np.zeros(4), None, "2-D array"),
    (np.zeros((3, 2)), 5, "dimension 2, expected 5"),
    (np.array([[0.0, np.nan]]), None, "NaN or infinite"),
    (np.array([[np.inf, 0.0]]), None, "NaN or infinite"),
    (np.zeros((3, 0)), None, r"no columns \(shape \(3, 0\)\); extract them again"),
])
def test_as_features_refuses(Z, d, match):
    with pytest.raises(TaskrelError, match=match):
        as_features(Z, "feats", d)


def test_as_labels_accepts_integers_and_whole_floats():
    y = as_labels(np.array([0.0, 2.0, 1.0]), 3, "y")
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]
    assert as_labels(np.array([1, 0], dtype=np.uint8), 2, "y").dtype == np.int64


@pytest.mark.parametrize("y, n, match", [
    (np.array([0, 1]), 3, r"shape \(3,\)"),
    (np.array([True, False]), 2, "dtype bool"),
    (np.array(["a", "b"]), 2, "integers 0..K-1, got dtype"),
    (np.array([0.5, 1.0]), 2, "integers 0..K-1"),
    (np.array([np.nan, 1.0]), 2, "integers 0..K-1"),
    (np.array([0, -1]), 2, "found -1"),
])
def test_as_labels_refuses(y, n, match):
    with pytest.raises(TaskrelError, match=match):
        as_labels(y, n, "labels")


def test_as_pair_checks_both_and_allows_missing_labels():
    Z, y = as_pair((np.zeros((2, 3)), [0, 1]), "train", d=3)
    assert Z.shape == (2, 3) and y.tolist() == [0, 1]
    Z, y = as_pair([np.zeros((2, 3)), None], "train")
    assert y is None
    with pytest.raises(TaskrelError, match="must be a pair"):
        as_pair(np.zeros((2, 3)), "train")
    with pytest.raises(TaskrelError, match="must be a pair"):
        as_pair((np.zeros((2, 3)), [0, 1], [1, 0]), "train")
    with pytest.raises(TaskrelError, match="train: features have dimension 3"):
        as_pair((np.zeros((2, 3)), [0, 1]), "train", d=4)
    with pytest.raises(TaskrelError, match="train: labels must have shape"):
        as_pair((np.zeros((2, 3)), [0, 1, 1]), "train")


def test_check_classes():
    check_classes(np.array([0, 1, 2]), 3, "y", require_all=True)
    check_classes(np.array([0, 0]), 3, "y", require_all=False)  # classes may be absent from a test split
    with pytest.raises(TaskrelError, match="label 3 is outside 0..2"):
        check_classes(np.array([0, 3]), 3, "y", require_all=False)
    with pytest.raises(TaskrelError, match="2 samples for 3 classes"):
        check_classes(np.array([0, 1]), 3, "y", require_all=True)
    with pytest.raises(TaskrelError, match=r"class\(es\) \[1\] have no samples"):
        check_classes(np.array([0, 2, 2]), 3, "y", require_all=True)


def test_as_seed_takes_integers_from_zero():
    assert as_seed(0) == 0 and as_seed(np.int64(7)) == 7 and type(as_seed(np.int64(7))) is int
    for bad in (-1, 1.5, "3", True, None):
        with pytest.raises(TaskrelError, match=r"seed must be an integer >= 0 .* pass 0, 1, 2"):
            as_seed(bad)
