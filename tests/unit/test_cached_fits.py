"""One pair's fit: h_R and the fit cached on disk, the fit's row, its example transport plan."""
import json

import numpy as np
import pytest

from taskrel_utils.method import relatedness
from taskrel_utils.study import cached_fits, experiment


def test_example_plan_is_a_coupling_that_keeps_classes(feats):
    p = experiment.pair(feats, "e", "ref", "tgt")
    res = relatedness.task_relatedness(**p, mode="fixed_all", seed=0,
                                       reference_classifier_options=dict(iterations=50, batch_size=50))
    out = cached_fits.example_plan(res, p, n_per_side=8, seed=0)
    plan = out["plan"]
    assert plan.shape == (8, 8)
    np.testing.assert_allclose(plan.sum(1), 1 / 8)
    np.testing.assert_allclose(plan.sum(0), 1 / 8)
    # B is a permutation here: all mass stays on (reference class j, target class perm[j]) blocks
    mapped = res.B.argmax(0)[out["reference_labels"]]
    assert plan[mapped[:, None] != out["target_labels"][None, :]].sum() < 1e-9


def test_cached_relatedness_hits_and_keys(feats, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    p = experiment.pair(feats, "e", "ref", "tgt")
    opts = dict(steps=5, batch_size=60, reference_classifier_options=dict(iterations=50))
    row = cached_fits.cached_relatedness(p, seed=0, **opts)
    assert len(list((tmp_path / "relatedness").glob("*.json"))) == 1
    assert len(list((tmp_path / "reference_classifiers").glob("*.npz"))) == 1
    res = relatedness.task_relatedness(**p, seed=0, **opts)  # trains its own h_R: the cached one is the same
    assert row["value"] == pytest.approx(res.value, rel=1e-12)
    assert row["reference_accuracy"] == res.terms["reference_test_accuracy"]
    again = cached_fits.cached_relatedness(p, seed=0, **opts)
    assert again == row
    other = cached_fits.cached_relatedness(p, seed=1, **opts)
    changed = dict(p, target_train=(p["target_train"][0] + 1e-3, p["target_train"][1]))
    cached_fits.cached_relatedness(changed, seed=0, **opts)
    assert len(list((tmp_path / "relatedness").glob("*.json"))) == 3 and other["value"] != row["value"]
    # h_R depends on the reference side only: a new target reuses it, a new seed trains another
    assert len(list((tmp_path / "reference_classifiers").glob("*.npz"))) == 2


def test_a_pair_that_differs_only_in_its_target_test_split_is_evaluated_not_fitted(feats, tmp_path, monkeypatch):
    """The whole-data fraction (target test := target train) reuses the fit of the pair: its row
    equals a fresh fit's (cache off), and no fit runs for it; another train set fits again."""
    from taskrel_utils.study import controls

    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    p = experiment.pair(feats, "e", "ref", "tgt")
    whole = controls.target_fraction(p, 1.0)
    opts = dict(steps=30, min_steps=10, window=5, batch_size=60, reference_classifier_options=dict(iterations=50))
    fresh = cached_fits.cached_relatedness(whole, seed=0, cache=False, **opts)
    cached_fits.cached_relatedness(p, seed=0, **opts)
    assert len(list((tmp_path / "transformations").glob("*.npz"))) == 1

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(relatedness, "fit_transformations", no_fit)
    reused = cached_fits.cached_relatedness(whole, seed=0, **opts)
    assert {k: v for k, v in reused.items() if k != "seconds"} == {k: v for k, v in fresh.items() if k != "seconds"}
    assert reused["value"] != cached_fits.cached_relatedness(p, seed=0, **opts)["value"]  # evaluated on other data
    with pytest.raises(AssertionError, match="fitted again"):  # a smaller train set is another fit
        cached_fits.cached_relatedness(controls.target_fraction(p, 0.5), seed=0, **opts)
    with pytest.raises(relatedness.TaskrelError, match="target labels"):
        relatedness.task_relatedness(**dict(p, target_train=(p["target_train"][0], None),
                                            target_test=(p["target_test"][0], None)), n_target_classes=4,
                                     transformations={}, **opts)


def test_reference_model_is_the_fits_h_R_and_is_cached(feats, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    p = {k: (Z.astype(np.float32), y) for k, (Z, y) in experiment.pair(feats, "e", "ref", "tgt").items()}  # as extracted
    rc = dict(iterations=40, tau0=0.5)
    res = relatedness.task_relatedness(**p, seed=3, steps=2, batch_size=60, reference_classifier_options=rc)
    s_R, h_R = cached_fits.reference_model(p, seed=3, reference_classifier_options=rc)
    np.testing.assert_array_equal(h_R.W, res.reference_classifier.W)
    np.testing.assert_array_equal(s_R.transform(p["ref_test"][0]), res.reference_scaler.transform(p["ref_test"][0]))
    _, cached = cached_fits.reference_model(p, seed=3, reference_classifier_options=rc)
    np.testing.assert_array_equal(cached.W, h_R.W)
    np.testing.assert_array_equal(cached.c, h_R.c)
    assert cached.tau0 == h_R.tau0 and cached.history == json.loads(json.dumps(h_R.history))
    assert not np.array_equal(cached_fits.reference_model(p, seed=4, reference_classifier_options=rc)[1].W, h_R.W)
    files = sorted((tmp_path / "reference_classifiers").glob("*.npz"))
    assert len(files) == 2
    files[0].write_bytes(b"not an npz")  # a corrupted file is retrained, with a warning
    with pytest.warns(RuntimeWarning, match="corrupted.*computing it again"):
        for seed in (3, 4):
            cached_fits.reference_model(p, seed=seed, reference_classifier_options=rc)


def test_result_row_flags_a_value_whose_wasserstein_failed():
    from types import SimpleNamespace

    terms = dict(reweighted_reference_loss=1.0, label_mismatch=0.5, distribution_mismatch=1e9, wasserstein=1e10,
                 tau_input_space=0.2, wasserstein_failed=True, tau=0.1, reference_test_accuracy=0.9,
                 value_wasserstein="code")
    res = SimpleNamespace(value=1e9, terms=terms, target_accuracy=0.5, target_cross_entropy=1.0,
                          reference_classifier=SimpleNamespace(fit_info={}))
    assert cached_fits.result_row(res)["value_failed"] is True
    terms.update(value_wasserstein="theorem", wasserstein_theorem=2.0)  # the pseudo-label default: W_d
    assert cached_fits.result_row(res)["value_failed"] is False
    terms.update(wasserstein_failed=False, value_wasserstein="code")
    assert cached_fits.result_row(res)["value_failed"] is False
