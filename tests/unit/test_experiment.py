"""A profile turned into objects: pairs (projected, K_R = K_T), the zoo's pairs, pre-training."""
import numpy as np
import pytest

from taskrel_utils.inputs import feature_space
from taskrel_utils.study import experiment


def test_pair_and_projection(feats):
    p = experiment.pair(feats, "e", "ref", "tgt")
    assert p["target_test"] is feats["e", "tgt", "test"]
    q = experiment.pair(feats, "e", "ref", "tgt", max_dim=5)
    assert all(Z.shape[1] == 5 for Z, _ in q.values())
    P = feature_space.principal_axes(feats["e", "ref", "train"][0], 5)
    np.testing.assert_allclose(P.T @ P, np.eye(5), atol=1e-10)  # one orthonormal map for both domains
    Zt = feats["e", "tgt", "train"][0]
    np.testing.assert_allclose(q["target_train"][0], (Zt - feats["e", "ref", "train"][0].mean(0)) @ P)
    assert experiment.pair(feats, "e", "ref", "tgt", max_dim=50)["ref_train"] is feats["e", "ref", "train"]


def test_projection_is_memoised_by_content_and_capped(monkeypatch):
    monkeypatch.setattr(experiment, "_PROJECTIONS", {})
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(30, 6))
    first = experiment._projection(Z, 3)
    assert experiment._projection(Z.copy(), 3) is first  # the same content: the same map, not recomputed
    assert experiment._projection(Z, 2) is not first
    for i in range(experiment.PROJECTION_MEMO_ENTRIES + 3):
        experiment._projection(rng.normal(size=(10, 4)), 2)
    assert len(experiment._PROJECTIONS) == experiment.PROJECTION_MEMO_ENTRIES
    again = experiment._projection(Z, 3)  # dropped (oldest first) and computed again: the same numbers
    assert again is not first
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])


def test_reference_classes_match_the_target_class_count():
    assert np.array_equal(experiment.reference_classes(10, 10), np.arange(10))
    assert np.array_equal(experiment.reference_classes(10, 37), np.arange(10))  # K_R < K_T: all of them
    four = experiment.reference_classes(10, 4, seed=0)
    assert len(four) == 4 and np.array_equal(four, np.sort(np.unique(four))) and four.max() < 10
    assert np.array_equal(four, experiment.reference_classes(10, 4, seed=0))  # recorded by the seed
    assert any(not np.array_equal(four, experiment.reference_classes(10, 4, seed=s)) for s in range(1, 5))


def test_pair_keeps_as_many_reference_classes_as_the_target_has(feats):
    two = dict(feats)
    for split in ("train", "test"):
        Z, y = feats["e", "tgt", split]
        two["e", "tgt", split] = (Z[y < 2], y[y < 2])
    p = experiment.pair(two, "e", "ref", "tgt", seed=3)
    classes = experiment.reference_classes(4, 2, seed=3)
    for key in ("ref_train", "ref_test"):
        Z, y = p[key]
        Zf, yf = feats["e", "ref", key.split("_")[1]]
        keep = np.isin(yf, classes)
        assert np.array_equal(np.unique(y), [0, 1]) and np.array_equal(Z, Zf[keep])
        assert np.array_equal(classes[y], yf[keep])  # relabelled in the order of the drawn classes


def test_zoo_pairs_order_and_missing_features(feats):
    from taskrel_utils.study import config
    from taskrel_utils.core.errors import TaskrelError

    wide = {**feats, **{("w",) + k[1:]: (np.hstack([Z, Z]), y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "w"))
    pairs = experiment.zoo_pairs(cfg, wide)
    assert [(e, t) for e, t, _ in pairs] == [("w", "tgt"), ("e", "tgt")]  # the widest encoder first
    assert pairs[1][2]["target_train"] is feats["e", "tgt", "train"]
    with pytest.raises(TaskrelError, match="no features"):
        experiment.zoo_pairs(cfg, feats)  # encoder "w" has none


def test_pretrain_zoo_in_parallel_gives_the_sequential_weights(tmp_path, monkeypatch):
    from taskrel_utils.inputs import cnn_zoo

    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    entries = [("lenet", dict(epochs=1, n_train=64)), ("mlp", dict(epochs=1, n_train=64))]
    assert not any(cnn_zoo.is_cached(name, **o) for name, o in entries)
    experiment.pretrain_zoo(entries, n_jobs=2, progress=False)
    assert all(cnn_zoo.is_cached(name, **o) for name, o in entries) and cnn_zoo.is_cached("lenet-random")
    for name, o in entries:
        _, spec, weights_id, _ = cnn_zoo.load_zoo_encoder(name, progress=False, **o)
        images, labels, names = cnn_zoo.load_corpus(spec["corpus"])
        here, _, _ = cnn_zoo.pretrain(spec, images, labels, len(names), progress=False)  # this process, serial
        assert cnn_zoo.state_hash(here.state_dict()) == weights_id


def test_pair_cuts_the_reference_train_split_to_an_even_pool(feats):
    two = dict(feats)
    for split in ("train", "test"):
        Z, y = feats["e", "tgt", split]
        two["e", "tgt", split] = (Z[y < 2], y[y < 2])
    full = experiment.pair(two, "e", "ref", "tgt", seed=3)
    p = experiment.pair(two, "e", "ref", "tgt", seed=3, pool=40)
    Z, y = p["ref_train"]
    assert np.array_equal(np.bincount(y), [20, 20])  # K_T = 2 classes, 40 images evenly
    rows = {r.tobytes() for r in full["ref_train"][0]}
    assert all(r.tobytes() in rows for r in Z)  # a subset of the pair's classes
    assert p["ref_test"][0] is full["ref_test"][0] or np.array_equal(p["ref_test"][0], full["ref_test"][0])
    assert np.array_equal(Z, experiment.pair(two, "e", "ref", "tgt", seed=3, pool=40)["ref_train"][0])
    big = experiment.pair(two, "e", "ref", "tgt", seed=3, pool=10_000)  # larger than the split: all of it
    assert np.array_equal(big["ref_train"][0], full["ref_train"][0])


def test_relatedness_options_set_the_ot_batch_per_encoder_family(feats):
    from taskrel_utils.study import config

    wide = {**feats, ("open_clip:RN50", "ref", "train"): feats["e", "ref", "train"]}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e",),
                         relatedness={"scale": "large", "steps": 10})
    assert experiment.relatedness_options(cfg, wide, "open_clip:RN50") == {"scale": "large", "steps": 10,
                                                                           "batch_size": 1500}
    assert experiment.relatedness_options(cfg, wide, "e") == {"scale": "large", "steps": 10}  # 12-d: the preset's


def test_reference_class_table_lists_the_drawn_wnids_and_pool_sizes(tmp_path, monkeypatch):
    """A fake ImageNet tree (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG): K_R = K_T drawn classes,
    a stratified train pool, the whole validation split."""
    import dataclasses

    from PIL import Image

    from taskrel_utils.inputs import data
    from taskrel_utils.study import config

    rng = np.random.default_rng(0)
    wnids = [f"n{i:08d}" for i in range(8)]
    for w in wnids:
        for split, n in (("train", 12), ("val", 5)):
            (tmp_path / split / w).mkdir(parents=True)
            for j in range(n):
                Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(tmp_path / split / w / f"{j}.JPEG")
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"{w} thing {i}, other name\n" for i, w in enumerate(wnids)))
    monkeypatch.setenv("IMAGENET_ROOT", str(tmp_path))
    cfg = config.Profile(name="t", description="", reference="imagenet", targets=("imagenet",), encoders=("e",),
                         task_options={"imagenet": {"n_classes": 6, "max_images": 60, "seed": 1}}, reference_pool=30)
    tasks = experiment.profile_tasks(cfg)
    ref_train, ref_test = tasks["imagenet"]["train"], tasks["imagenet"]["test"]
    assert np.array_equal(np.bincount(ref_train.labels), [10] * 6) and np.array_equal(np.bincount(ref_test.labels), [5] * 6)
    assert set(ref_train.info["wnids"]) < set(wnids) and ref_train.class_names[0].startswith("thing ")
    three = {s: data.Task("three", s, np.arange(9) % 3, ("a", "b", "c"), images=np.zeros((9, 2, 2), np.uint8))
             for s in ("train", "test")}
    tasks3 = {**tasks, "three": three}
    cfg3 = dataclasses.replace(cfg, reference_pool=12, targets=("three",))  # a 3-class target
    row = experiment.reference_class_table(cfg3, tasks3).iloc[0]
    drawn = experiment.reference_classes(6, 3, cfg3.seed)
    assert row.K_T == row.K_R == 3 and row.reference_ids.split(", ") == [ref_train.info["wnids"][c] for c in drawn]
    assert row.reference_classes.split(", ") == [ref_train.class_names[c] for c in drawn]
    assert row.reference_train == 12 and row.reference_test == 15  # the pool; all validation images of the 3
