import numpy as np
import pytest

from taskrel_utils.inputs import feature_space
from taskrel_utils.core.errors import TaskrelError


def test_standardise_zero_variance_keeps_scale_one():
    Z = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    S = feature_space.standardise(Z)
    np.testing.assert_allclose(S[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    np.testing.assert_array_equal(S[:, 1], 0.0)


def test_standardise_uses_the_fit_set():
    S = feature_space.standardise(np.array([[2.0], [4.0]]), fit_on=np.array([[0.0], [2.0]]))
    np.testing.assert_allclose(S[:, 0], [1.0, 3.0])


def test_pca_finds_the_planted_direction_and_is_sign_stable():
    rng = np.random.default_rng(0)
    t = rng.normal(size=500)
    Z = np.column_stack([t * 10, t * 10, rng.normal(size=500) * 0.01, rng.normal(size=500)])
    P = feature_space.pca_2d(Z)
    assert P.shape == (500, 2)
    assert abs(np.corrcoef(P[:, 0], t)[0, 1]) > 0.99  # first component = the shared direction
    np.testing.assert_array_equal(P, feature_space.pca_2d(Z.copy()))


def test_nearest_mean_accuracy_separable_vs_shuffled():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 50)
    Z = rng.normal(size=(200, 8)) + 6 * np.eye(4, 8)[y]
    assert feature_space.nearest_mean_accuracy(Z[::2], y[::2], Z[1::2], y[1::2]) == 1.0
    y_shuffled = rng.permutation(y)
    acc = feature_space.nearest_mean_accuracy(Z[::2], y_shuffled[::2], Z[1::2], y_shuffled[1::2])
    assert acc < 0.5


def test_errors():
    with pytest.raises(ValueError, match="NaN"):
        feature_space.pca_2d(np.array([[np.nan, 1.0], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="dimension"):
        feature_space.nearest_mean_accuracy(np.ones((4, 2)), np.arange(4), np.ones((4, 3)), np.arange(4))
    with pytest.raises(ValueError, match="labels"):
        feature_space.nearest_mean_accuracy(np.ones((4, 2)), np.arange(3), np.ones((4, 2)), np.arange(4))


def test_bad_input_raises_the_kits_error():
    from taskrel_utils.core.errors import TaskrelError
    with pytest.raises(TaskrelError, match="2-D"):
        feature_space.pca_2d(np.zeros(5))


def test_nearest_mean_accuracy_on_principal_components():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 40)
    # the classes differ along one direction shared by 3 dimensions (the first principal axis); 7 of noise
    Z = np.column_stack([(6.0 * y)[:, None] + rng.normal(size=(120, 3)), rng.normal(size=(120, 7))])
    full = feature_space.nearest_mean_accuracy(Z[::2], y[::2], Z[1::2], y[1::2])
    one = feature_space.nearest_mean_accuracy(Z[::2], y[::2], Z[1::2], y[1::2], n_components=1)
    assert one == 1.0 and full <= one
    assert feature_space.nearest_mean_accuracy(Z[::2], y[::2], Z[1::2], y[1::2], n_components=10) == full
    from taskrel_utils.core.errors import TaskrelError
    with pytest.raises(TaskrelError, match="n_components"):
        feature_space.nearest_mean_accuracy(Z, y, Z, y, n_components=0)


def test_zoo_views_one_projection_row_per_test_point_and_one_separability_row_per_pair(feats):
    two = {**feats, **{("f",) + k[1:]: (Z * 3.0, y) for k, (Z, y) in feats.items()}}
    names = {"ref": ["a", "b", "c", "d"], "tgt": ["w", "x", "y", "z"]}
    projections, separability = feature_space.zoo_views(two, names)
    assert len(projections) == 2 * (80 + 80) and list(separability.columns) == ["encoder", "task", "nearest_mean_accuracy"]
    assert len(separability) == 4  # (e, f) x (ref, tgt)
    row = separability[(separability.encoder == "e") & (separability.task == "tgt")].nearest_mean_accuracy.item()
    assert row == feature_space.nearest_mean_accuracy(*feats["e", "tgt", "train"], *feats["e", "tgt", "test"])
    tgt = projections[(projections.encoder == "e") & (projections.task == "tgt")]
    np.testing.assert_allclose(tgt[["pc1", "pc2"]].to_numpy(), feature_space.pca_2d(feats["e", "tgt", "test"][0]))
    assert (tgt.class_name.to_numpy() == np.array(names["tgt"])[feats["e", "tgt", "test"][1]]).all()


def test_zoo_views_says_what_is_missing(feats):
    names = {"ref": list("abcd"), "tgt": list("wxyz")}
    no_train = {k: v for k, v in feats.items() if k != ("e", "tgt", "train")}
    with pytest.raises(TaskrelError, match="no train features of e on tgt"):
        feature_space.zoo_views(no_train, names)
    with pytest.raises(TaskrelError, match="no class names of task 'tgt'"):
        feature_space.zoo_views(feats, {"ref": names["ref"]})
