"""The glue between profiles and the analysis: pairs, the unrelated control, the example plan."""
import json

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


def test_reference_classes_match_the_target_class_count():
    assert np.array_equal(study.reference_classes(10, 10), np.arange(10))
    assert np.array_equal(study.reference_classes(10, 37), np.arange(10))  # K_R < K_T: all of them
    four = study.reference_classes(10, 4, seed=0)
    assert len(four) == 4 and np.array_equal(four, np.sort(np.unique(four))) and four.max() < 10
    assert np.array_equal(four, study.reference_classes(10, 4, seed=0))  # recorded by the seed
    assert any(not np.array_equal(four, study.reference_classes(10, 4, seed=s)) for s in range(1, 5))


def test_pair_keeps_as_many_reference_classes_as_the_target_has(feats):
    two = dict(feats)
    for split in ("train", "test"):
        Z, y = feats["e", "tgt", split]
        two["e", "tgt", split] = (Z[y < 2], y[y < 2])
    p = study.pair(two, "e", "ref", "tgt", seed=3)
    classes = study.reference_classes(4, 2, seed=3)
    for key in ("ref_train", "ref_test"):
        Z, y = p[key]
        Zf, yf = feats["e", "ref", key.split("_")[1]]
        keep = np.isin(yf, classes)
        assert np.array_equal(np.unique(y), [0, 1]) and np.array_equal(Z, Zf[keep])
        assert np.array_equal(classes[y], yf[keep])  # relabelled in the order of the drawn classes


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


def test_cached_relatedness_hits_and_keys(feats, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    p = study.pair(feats, "e", "ref", "tgt")
    opts = dict(steps=5, batch_size=60, reference_classifier_options=dict(iterations=50))
    row = study.cached_relatedness(p, seed=0, **opts)
    assert len(list((tmp_path / "relatedness").glob("*.json"))) == 1
    assert len(list((tmp_path / "reference_classifiers").glob("*.npz"))) == 1
    res = relatedness.task_relatedness(**p, seed=0, **opts)  # trains its own h_R: the cached one is the same
    assert row["value"] == pytest.approx(res.value, rel=1e-12)
    assert row["reference_accuracy"] == res.terms["reference_test_accuracy"]
    again = study.cached_relatedness(p, seed=0, **opts)
    assert again == row
    other = study.cached_relatedness(p, seed=1, **opts)
    changed = dict(p, target_train=(p["target_train"][0] + 1e-3, p["target_train"][1]))
    study.cached_relatedness(changed, seed=0, **opts)
    assert len(list((tmp_path / "relatedness").glob("*.json"))) == 3 and other["value"] != row["value"]
    # h_R depends on the reference side only: a new target reuses it, a new seed trains another
    assert len(list((tmp_path / "reference_classifiers").glob("*.npz"))) == 2


def test_reference_model_is_the_fits_h_R_and_is_cached(feats, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    p = {k: (Z.astype(np.float32), y) for k, (Z, y) in study.pair(feats, "e", "ref", "tgt").items()}  # as extracted
    rc = dict(iterations=40, tau0=0.5)
    res = relatedness.task_relatedness(**p, seed=3, steps=2, batch_size=60, reference_classifier_options=rc)
    s_R, h_R = study.reference_model(p, seed=3, reference_classifier_options=rc)
    np.testing.assert_array_equal(h_R.W, res.reference_classifier.W)
    np.testing.assert_array_equal(s_R.transform(p["ref_test"][0]), res.reference_scaler.transform(p["ref_test"][0]))
    _, cached = study.reference_model(p, seed=3, reference_classifier_options=rc)
    np.testing.assert_array_equal(cached.W, h_R.W)
    np.testing.assert_array_equal(cached.c, h_R.c)
    assert cached.tau0 == h_R.tau0 and cached.history == json.loads(json.dumps(h_R.history))
    assert not np.array_equal(study.reference_model(p, seed=4, reference_classifier_options=rc)[1].W, h_R.W)
    files = sorted((tmp_path / "reference_classifiers").glob("*.npz"))
    assert len(files) == 2
    files[0].write_bytes(b"not an npz")  # a corrupted file is retrained, with a warning
    with pytest.warns(RuntimeWarning, match="training it again"):
        for seed in (3, 4):
            study.reference_model(p, seed=seed, reference_classifier_options=rc)


def test_otce_leave_one_target_out_never_sees_the_held_out_accuracies():
    import pandas as pd

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"target": np.repeat(["a", "b", "c"], 5), "otce_wasserstein": rng.normal(size=15),
                          "otce_conditional_entropy": rng.normal(size=15)})
    table["accuracy"] = 0.5 * table.otce_wasserstein - 2 * table.otce_conditional_entropy + 1
    exact = study.otce_leave_one_target_out(table)
    np.testing.assert_allclose(exact, table.accuracy, atol=1e-10)  # a linear truth is recovered
    poisoned = table.copy()
    poisoned.loc[poisoned.target == "a", "accuracy"] = 99.0
    s = study.otce_leave_one_target_out(poisoned)
    np.testing.assert_allclose(s[table.target == "a"], table.accuracy[table.target == "a"], atol=1e-10)
    assert not np.allclose(s[table.target == "b"], table.accuracy[table.target == "b"])


def test_target_fraction_is_stratified_and_used_for_the_whole_target_side(feats):
    p = study.pair(feats, "e", "ref", "tgt")
    y = p["target_train"][1]
    small = study.target_fraction(p, 0.1, seed=0)
    Zs, ys = small["target_train"]
    assert small["target_test"] is small["target_train"] and small["ref_train"] is p["ref_train"]
    np.testing.assert_array_equal(np.bincount(ys), np.round(0.1 * np.bincount(y)).astype(int))
    tiny = study.target_fraction(p, 1e-4, seed=0)
    np.testing.assert_array_equal(np.bincount(tiny["target_train"][1]), np.ones(4, int))  # >= 1 per class
    rows = {tuple(r) for r in p["target_train"][0]}
    assert all(tuple(r) in rows for r in Zs)  # a subset of the real target data
    again = study.target_fraction(p, 0.1, seed=0)["target_train"][0]
    other = study.target_fraction(p, 0.1, seed=1)["target_train"][0]
    assert np.array_equal(again, Zs) and not np.array_equal(other, Zs)
    full = study.target_fraction(p, 1.0)
    assert np.array_equal(full["target_train"][0], p["target_train"][0])
    for bad in (0, 1.5, -0.1, True, "half"):
        with pytest.raises(ValueError, match="fraction"):
            study.target_fraction(p, bad)


def test_score_table_sources(feats):
    import torch

    from taskrel_utils import config

    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e",),
                         relatedness=dict(reference_classifier_options=dict(iterations=50)))
    table = study.score_table(cfg, feats, progress=False)
    assert len(table) == 1 and {"logme", "leep", "nce", "sfda", "h_score", "ot_nce", "otce_wasserstein",
                                "pactran_gaussian"} <= set(table.columns)
    assert table.leep.item() <= 0 and table.ot_nce.item() == -table.otce_conditional_entropy.item()

    class Enc:  # an encoder whose "ImageNet head" is a fixed 12 -> 5 linear layer
        head = torch.nn.Linear(12, 5)
        device = "cpu"

    heads = study.score_table(cfg, feats, source="imagenet_head", encs={"e": Enc()}, progress=False)
    probs = study._head_probabilities(Enc.head, feats["e", "tgt", "train"][0])
    np.testing.assert_allclose(probs.sum(1), 1.0)
    from taskrel_utils import scores
    assert heads.leep.item() == pytest.approx(scores.leep(probs, feats["e", "tgt", "train"][1]))
    assert "logme" not in heads.columns  # only the probability-based scores change with the source
    Enc.head = None
    assert study.score_table(cfg, feats, source="imagenet_head", encs={"e": Enc()}, progress=False).empty
    with pytest.raises(ValueError, match="encs"):
        study.score_table(cfg, feats, source="imagenet_head")


def test_parallel_relatedness_equals_sequential(feats):
    from taskrel_utils import config

    two = {**feats, **{("f",) + k[1:]: (Z * 2.0 + 1.0, y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f"),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    serial = study.relatedness_table(cfg, two, cache=False, n_jobs=1, progress=False)
    parallel = study.relatedness_table(cfg, two, cache=False, n_jobs=2, progress=False)
    assert list(parallel.encoder) == ["e", "f"]  # the profile's order, whatever order the jobs ran in
    cols = [c for c in serial.columns if c != "seconds"]
    assert serial[cols].equals(parallel[cols])
    assert study.n_jobs_default(1) == 1 and study.n_jobs_default(100) >= 1


def test_pretrain_zoo_in_parallel_gives_the_sequential_weights(tmp_path, monkeypatch):
    from taskrel_utils import cnn_zoo

    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    entries = [("lenet", dict(epochs=1, n_train=64)), ("mlp", dict(epochs=1, n_train=64))]
    assert not any(cnn_zoo.is_cached(name, **o) for name, o in entries)
    study.pretrain_zoo(entries, n_jobs=2, progress=False)
    assert all(cnn_zoo.is_cached(name, **o) for name, o in entries) and cnn_zoo.is_cached("lenet-random")
    for name, o in entries:
        _, spec, weights_id, _ = cnn_zoo.load_zoo_encoder(name, progress=False, **o)
        images, labels, names = cnn_zoo.load_corpus(spec["corpus"])
        here, _, _ = cnn_zoo.pretrain(spec, images, labels, len(names), progress=False)  # this process, serial
        assert cnn_zoo.state_hash(here.state_dict()) == weights_id


def test_result_row_flags_a_value_whose_wasserstein_failed():
    from types import SimpleNamespace

    terms = dict(reweighted_reference_loss=1.0, label_mismatch=0.5, distribution_mismatch=1e9, wasserstein=1e10, tau_input_space=0.2,
                 wasserstein_failed=True, tau=0.1, reference_test_accuracy=0.9, value_wasserstein="code")
    res = SimpleNamespace(value=1e9, terms=terms, target_accuracy=0.5, target_cross_entropy=1.0,
                          reference_classifier=SimpleNamespace(fit_info={}))
    assert study.result_row(res)["value_failed"] is True
    terms.update(value_wasserstein="theorem", wasserstein_theorem=2.0)  # the pseudo-label default: W_d
    assert study.result_row(res)["value_failed"] is False
    terms.update(wasserstein_failed=False, value_wasserstein="code")
    assert study.result_row(res)["value_failed"] is False


def test_zoo_pairs_order_and_missing_features(feats):
    from taskrel_utils import config
    from taskrel_utils.errors import TaskrelError

    wide = {**feats, **{("w",) + k[1:]: (np.hstack([Z, Z]), y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "w"))
    pairs = study.zoo_pairs(cfg, wide)
    assert [(e, t) for e, t, _ in pairs] == [("w", "tgt"), ("e", "tgt")]  # the widest encoder first
    assert pairs[1][2]["target_train"] is feats["e", "tgt", "train"]
    with pytest.raises(TaskrelError, match="no features"):
        study.zoo_pairs(cfg, feats)  # encoder "w" has none


def test_choose_tau0_takes_the_best_separation_among_affordable_thresholds():
    import pandas as pd

    sweep = pd.DataFrame({"tau0": [0.1, 0.1, 0.5, 0.5, 1.0, 1.0], "separation": [0.1, 0.2, 0.3, 0.3, 0.9, 0.7],
                          "penalty_price": [0.0, 0.01, 0.01, 0.01, 0.05, 0.03],
                          "reference_accuracy": [0.9] * 6, "penalty_active": [0.1] * 6})
    choice = study.choose_tau0(sweep, max_price=0.02)
    assert choice["tau0"] == 0.5 and choice["price_rule_met"]  # 1.0 separates best but costs 4 points
    assert study.choose_tau0(sweep, max_price=0.05)["tau0"] == 1.0
    fallback = study.choose_tau0(sweep.assign(penalty_price=0.5), max_price=0.02)
    assert fallback["tau0"] == 1.0 and not fallback["price_rule_met"]


def test_reading_sentences_follow_the_numbers():
    import pandas as pd

    from taskrel_utils import reading

    pearson = pd.DataFrame({"Ours (TR)": [-0.8, 0.2], "LogME": [0.5, -0.1]}, index=["a", "b"])
    pearson.loc["Average"] = pearson.mean()
    text = reading.correlation_reading(pearson)
    assert "`a` -0.80, `b` +0.20" in text and "average -0.30" in text and "1 of 2 targets" in text
    assert "ranks 1 of 2" in text  # sign-corrected: TR +0.30 beats LogME +0.20
    assert "ranks 2 of 2" in reading.correlation_reading(pearson, score="LogME")
