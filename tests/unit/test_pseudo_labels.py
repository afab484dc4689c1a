"""The pieces of the pseudo-label variant that do not need a fit: matching and the label-map start."""
import numpy as np
import pytest

from taskrel_utils.method import pseudo_labels
from taskrel_utils.core.errors import TaskrelError


def test_matched_accuracy_ignores_class_names():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 200)
    perm = rng.permutation(5)
    assert pseudo_labels.matched_accuracy(perm[true], true) == 1.0
    noisy = perm[true].copy()
    noisy[:20] = (noisy[:20] + 1) % 5
    assert pseudo_labels.matched_accuracy(noisy, true) == pytest.approx(0.9)
    # a many-to-one prediction cannot score above the largest merged share
    assert pseudo_labels.matched_accuracy(np.zeros(200, int), true) == pytest.approx(np.bincount(true).max() / 200)
    with pytest.raises(TaskrelError, match="same non-zero length"):
        pseudo_labels.matched_accuracy([0, 1], [0])


def test_label_map_groups_reference_classes_by_cluster():
    rng = np.random.default_rng(0)
    # 6 reference classes; the target has 3 classes = pairs {0,1}, {2,3}, {4,5}
    ref_class = rng.integers(0, 6, 600)
    P = np.full((600, 6), 0.02)
    P[np.arange(600), ref_class] = 0.9
    P /= P.sum(1, keepdims=True)
    P[np.arange(600), ref_class ^ 1] += 0.05  # the partner class gets extra mass
    P /= P.sum(1, keepdims=True)
    B0, clusters = pseudo_labels.label_map_from_posteriors(P, 3, seed=0)
    np.testing.assert_allclose(B0.sum(0), 1.0)
    assert B0.shape == (3, 6)
    # every cluster holds whole reference classes (k-means on 6 tight groups into 3 clusters)
    for j in range(6):
        assert len(np.unique(clusters[ref_class == j])) == 1
    assert (B0.max(0) > 0.9).all()
    with pytest.raises(TaskrelError, match="at least 3"):
        pseudo_labels.label_map_from_posteriors(P[:2], 3)
