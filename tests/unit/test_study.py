"""The glue between profiles and the analysis: pairs, the unrelated control, the example plan."""
import numpy as np
import pytest

from taskrel_utils import feature_space, relatedness, study


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)

    def blobs(n, d, k, shift):
        y = np.arange(n) % k
        return rng.normal(size=(n, d)) + 4 * np.eye(k, d)[y] + shift, y

    return {("e", "ref", "train"): blobs(200, 12, 4, 0.0), ("e", "ref", "test"): blobs(80, 12, 4, 0.0),
            ("e", "tgt", "train"): blobs(160, 12, 4, 1.0), ("e", "tgt", "test"): blobs(80, 12, 4, 1.0)}


def test_pair_and_projection(feats):
    p = study.pair(feats, "e", "ref", "tgt")
    assert p["target_test"] is feats["e", "tgt", "test"]
    q = study.pair(feats, "e", "ref", "tgt", max_dim=5)
    assert all(Z.shape[1] == 5 for Z, _ in q.values())
    P = feature_space.principal_axes(feats["e", "ref", "train"][0], 5)
    np.testing.assert_allclose(P.T @ P, np.eye(5), atol=1e-10)  # one orthonormal map for both domains
    Zt = feats["e", "tgt", "train"][0]
    np.testing.assert_allclose(q["target_train"][0], (Zt - feats["e", "ref", "train"][0].mean(0)) @ P)
    assert study.pair(feats, "e", "ref", "tgt", max_dim=50)["ref_train"] is feats["e", "ref", "train"]


def test_shuffled_target_keeps_features_and_label_counts(feats):
    p = study.pair(feats, "e", "ref", "tgt")
    c = study.shuffled_target(p, seed=1)
    for key in ("target_train", "target_test"):
        assert c[key][0] is p[key][0]
        assert np.array_equal(np.bincount(c[key][1]), np.bincount(p[key][1]))
        assert not np.array_equal(c[key][1], p[key][1])
    assert c["ref_train"] is p["ref_train"]


def test_example_plan_is_a_coupling_that_keeps_classes(feats):
    p = study.pair(feats, "e", "ref", "tgt")
    res = relatedness.task_relatedness(**p, mode="fixed_all", seed=0,
                                       reference_classifier_options=dict(iterations=50, batch_size=50))
    out = study.example_plan(res, p, n_per_side=8, seed=0)
    plan = out["plan"]
    assert plan.shape == (8, 8)
    np.testing.assert_allclose(plan.sum(1), 1 / 8)
    np.testing.assert_allclose(plan.sum(0), 1 / 8)
    # B is a permutation here: all mass stays on (reference class j, target class perm[j]) blocks
    mapped = res.B.argmax(0)[out["reference_labels"]]
    assert plan[mapped[:, None] != out["target_labels"][None, :]].sum() < 1e-9
