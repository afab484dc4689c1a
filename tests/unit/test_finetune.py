"""End-to-end fine-tuning: determinism, the cache, learning on an easy task, recipes and bad input."""

import numpy as np
import pytest
import torch

from taskrel_utils.inputs import data, encoders
from taskrel_utils.study import finetune
from taskrel_utils.core.errors import TaskrelError, UnknownNameError

FAST = dict(epochs=2, batch_size=16, max_train_per_class=None, max_test_per_class=None)


def squares_task(split, n_per_class=12, n_classes=3, seed=0):
    """Class c = a bright 8x8 square in corner c of a noisy 28x28 image (easy to learn)."""
    rng = np.random.default_rng(seed + (split == "test"))
    y = np.repeat(np.arange(n_classes), n_per_class)
    images = rng.integers(0, 40, size=(len(y), 28, 28)).astype(np.uint8)
    corners = [(2, 2), (2, 18), (18, 2), (18, 18)]
    for i, c in enumerate(y):
        r, col = corners[c]
        images[i, r:r + 8, col:col + 8] = 220
    return data.Task("squares", split, y, [f"corner{c}" for c in range(n_classes)], images=images)


@pytest.fixture(scope="module")
def enc():
    return encoders.load_encoder("lenet-random", progress=False)


@pytest.fixture(scope="module")
def tasks():
    return squares_task("train"), squares_task("test", n_per_class=8)


def test_same_seed_same_numbers_and_encoder_untouched(enc, tasks, tmp_path):
    before = {k: v.clone() for k, v in enc.model.state_dict().items()}
    a = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **FAST)
    b = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **FAST)
    assert a.history == b.history and a.accuracy == b.accuracy
    c = finetune.finetune(enc, *tasks, "smoke", seed=1, cache=False, progress=False, **FAST)
    assert c.history != a.history
    after = enc.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in enc.model.parameters())
    assert [h["epoch"] for h in a.history] == [1, 2] and all("test_accuracy" in h for h in a.history)


def test_a_negative_seed_is_refused_before_training(enc, tasks):
    with pytest.raises(TaskrelError, match=r"seed must be an integer >= 0 .*got -1"):
        finetune.finetune(enc, *tasks, "smoke", seed=-1, cache=False, progress=False, **FAST)


def test_evaluating_less_often_changes_nothing_but_the_history(enc, tasks):
    every = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **dict(FAST, epochs=3))
    last = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **dict(FAST, epochs=3, eval_every=3))
    assert last.accuracy == every.accuracy and last.cross_entropy == every.cross_entropy
    assert [h["train_loss"] for h in last.history] == [h["train_loss"] for h in every.history]
    assert ["test_accuracy" in h for h in last.history] == [False, False, True]


def test_learns_an_easy_task(enc, tasks):
    res = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False,
                            **dict(FAST, epochs=6, lr=0.02, head_lr=0.1, augmentation="none"))
    assert res.accuracy >= 0.9, res.history
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.n_train == 36 and res.n_test == 24


def test_cache_hit_and_keys(enc, tasks, tmp_path):
    first = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **FAST)
    assert not first.cache_hit and len(list(tmp_path.glob("*.json"))) == 1
    again = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **FAST)
    assert again.cache_hit and again.accuracy == first.accuracy and again.history == first.history
    other = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **dict(FAST, epochs=1))
    assert not other.cache_hit and len(list(tmp_path.glob("*.json"))) == 2
    assert not finetune.finetune(enc, *tasks, "smoke", seed=3, cache_root=tmp_path, progress=False,
                                 **FAST).cache_hit


def test_corrupted_cache_is_recomputed(enc, tasks, tmp_path):
    first = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **FAST)
    path, = tmp_path.glob("*.json")
    d = finetune.RESULTS.load(path)
    finetune.RESULTS.save(path, dict(d, key="tampered"))  # a whole entry holding another result
    with pytest.warns(RuntimeWarning, match="corrupted"):
        again = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **FAST)
    assert not again.cache_hit and again.accuracy == first.accuracy
    path.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="corrupted"):
        finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **FAST)
    assert finetune.RESULTS.load(path)["key"] == first.key


def test_caps_are_stratified(enc, tasks):
    res = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False,
                            **dict(FAST, epochs=1, max_train_per_class=5, max_test_per_class=2))
    assert res.n_train == 15 and res.n_test == 6


@pytest.mark.parametrize("kind", finetune.AUGMENTATIONS)
def test_augment_shapes_and_determinism(kind):
    x = torch.rand(6, 3, 16, 16)
    a = finetune.augment(x, kind, torch.Generator().manual_seed(0))
    b = finetune.augment(x, kind, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    if kind == "none":
        assert torch.equal(a, x)
    else:
        assert not torch.equal(a, x)


def test_shift_moves_content_without_rescaling():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 7, 7] = 1.0
    out = finetune.augment(x, "shift", torch.Generator().manual_seed(0))
    assert torch.allclose(out.sum(dim=(1, 2, 3)), torch.ones(64))  # the dot stays inside (shift <= 2)
    positions = {tuple(torch.nonzero(o[0])[0].tolist()) for o in out}
    assert len(positions) > 5 and all(abs(r - 7) <= 2 and abs(c - 7) <= 2 for r, c in positions)


def test_flip_mirrors_some_images():
    x = torch.zeros(64, 1, 16, 16)
    x[..., 0] = 1.0  # left column lit
    out = finetune.augment(x, "flip_shift", torch.Generator().manual_seed(0))
    lit_right = (out[..., 8:].sum(dim=(1, 2, 3)) > 0)
    assert 0 < int(lit_right.sum()) < 64


def test_recipes_and_bad_input(enc, tasks):
    assert finetune.get_recipe("mini").epochs == finetune.RECIPES["mini"].epochs
    assert finetune.get_recipe({"recipe": "mini", "epochs": 7}).epochs == 7
    assert finetune.get_recipe("paper").augmentation == "random_resized_crop_flip"
    with pytest.raises(UnknownNameError, match="mini"):
        finetune.get_recipe("fast")
    with pytest.raises(UnknownNameError, match="epochs"):
        finetune.get_recipe("mini", epoch=3)
    with pytest.raises(TaskrelError, match="epochs must be a positive integer"):
        finetune.get_recipe("mini", epochs=0)
    with pytest.raises(UnknownNameError, match="shift"):
        finetune.get_recipe("mini", augmentation="mixup")
    with pytest.raises(TaskrelError, match="lr must be a finite number"):
        finetune.get_recipe("mini", lr=float("nan"))
    train, test = tasks
    with pytest.raises(TaskrelError, match="classes"):
        finetune.finetune(enc, train, squares_task("test", n_classes=4), "smoke", cache=False, progress=False)
    no_class_2 = train.subset(np.flatnonzero(train.labels != 2))
    no_class_2 = data.Task("squares", "train", no_class_2.labels, train.class_names, images=no_class_2.images)
    with pytest.raises(TaskrelError, match=r"classes \[2\] have no training"):
        finetune.finetune(enc, no_class_2, test, "smoke", cache=False, progress=False)
    with pytest.raises(TaskrelError, match="diverged"):
        finetune.finetune(enc, train, test, "smoke", cache=False, progress=False,
                          **dict(FAST, lr=1e12, head_lr=1e12, augmentation="none"))


def test_fixed_threads_enter_the_key_and_are_restored(enc, tasks, tmp_path):
    before = torch.get_num_threads()
    a = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, threads=1, **FAST)
    assert torch.get_num_threads() == before
    b = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, threads=1, **FAST)
    assert a.history == b.history and a.accuracy == b.accuracy
    unpinned = finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, **FAST)
    assert not unpinned.cache_hit and unpinned.key != a.key            # another cache entry
    assert finetune.finetune(enc, *tasks, "smoke", cache_root=tmp_path, progress=False, threads=1, **FAST).cache_hit
    for bad in (0, 1.5, True):
        with pytest.raises(TaskrelError, match="threads must be a positive integer"):
            finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, threads=bad, **FAST)


def blobs(n_per_class, seed, shift=3.0, d=5, k=3):
    """k Gaussian classes in d dimensions, class c centred at shift * e_c, plus a constant-scale feature."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    Z = rng.normal(size=(len(y), d))
    Z[np.arange(len(y)), y] += shift
    Z[:, -1] *= 100.0                                            # standardisation must not matter for the result
    return Z, y


def test_logistic_probe_separates_easy_classes_and_chooses_c_on_validation():
    train, val, test = blobs(20, 0, shift=6.0), blobs(20, 1, shift=6.0), blobs(30, 2, shift=6.0)
    res = finetune.logistic_probe(train, test, val)
    assert res.accuracy >= 0.97 and res.C in finetune.PROBE_CS
    assert set(res.validation_accuracy) == set(finetune.PROBE_CS)
    assert res.validation_accuracy[res.C] == max(res.validation_accuracy.values())
    # the chosen C is the first of the best: on ties the earliest C of the list wins
    best = max(res.validation_accuracy.values())
    assert res.C == next(c for c in finetune.PROBE_CS if res.validation_accuracy[c] == best)
    assert finetune.logistic_probe(train, test, val) == res                    # deterministic


def test_logistic_probe_matches_a_plain_sklearn_fit():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, test = blobs(15, 3, shift=1.0), blobs(40, 4, shift=1.0)
    s = StandardScaler().fit(train[0])
    expected = (LogisticRegression(C=0.1, max_iter=2000).fit(s.transform(train[0]), train[1])
                .predict(s.transform(test[0])) == test[1]).mean()
    res = finetune.logistic_probe(train, test, Cs=(0.1,))
    assert res.accuracy == pytest.approx(expected) and res.C == 0.1 and res.validation_accuracy == {}
    assert 0.4 < res.accuracy < 1.0                                     # a hard enough task to be informative


def test_logistic_probe_bad_input():
    train, test = blobs(5, 0), blobs(5, 1)
    with pytest.raises(TaskrelError, match="validation"):
        finetune.logistic_probe(train, test)
    with pytest.raises(TaskrelError, match="Cs must be positive"):
        finetune.logistic_probe(train, test, Cs=(0.0,))
    with pytest.raises(TaskrelError, match="different dimensions"):
        finetune.logistic_probe(train, (test[0][:, :3], test[1]), Cs=(1.0,))
    with pytest.raises(TaskrelError, match="NaN"):
        finetune.logistic_probe((np.full_like(train[0], np.nan), train[1]), test, Cs=(1.0,))
    with pytest.raises(TaskrelError, match="single class"):
        finetune.logistic_probe((train[0], np.zeros_like(train[1])), test, Cs=(1.0,))
    with pytest.raises(TaskrelError, match=r"must be \(Z"):
        finetune.logistic_probe((train[0], train[1][:-1]), test, Cs=(1.0,))


# ---------------------------------------------------------------------------- the ground truth's recipe fixes
def test_stopping_early_is_the_same_run_cut_at_that_epoch(enc, tasks):
    """stop_epoch keeps the epochs-long schedule and stops: its numbers equal the full run's at that epoch."""
    full = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **dict(FAST, epochs=4))
    cut = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **dict(FAST, epochs=4, stop_epoch=2))
    assert len(cut.history) == 2 and cut.history == full.history[:2]
    assert cut.accuracy == full.history[1]["test_accuracy"]
    with pytest.raises(TaskrelError, match="stop_epoch"):
        finetune.get_recipe("smoke", epochs=2, stop_epoch=3)


def test_lp_ft_starts_from_the_logistic_probe_on_raw_features(enc, tasks):
    """head_init="probe": before any step the head predicts like a logistic regression (C=probe_C)
    fitted on the frozen encoder's features as they are."""
    from sklearn.linear_model import LogisticRegression

    train, _ = tasks
    x = finetune._preprocessed(enc, train)
    head = torch.nn.Linear(enc.feature_dim, 3)
    finetune._probe_head(head, enc.model, x, torch.as_tensor(train.labels), 3, 0.5, "cpu")
    with torch.no_grad():
        Z = enc.model.eval()(x)
        logits = head(Z).numpy()
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(Z.double().numpy(), train.labels)
    np.testing.assert_allclose(logits, clf.decision_function(Z.double().numpy()), atol=1e-4)
    # the recipe field reaches the loop and changes the run
    a = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **dict(FAST, head_init="probe"))
    b = finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **FAST)
    assert a.history != b.history
    with pytest.raises(UnknownNameError, match="head_init"):
        finetune.get_recipe("smoke", head_init="zeros")
    with pytest.raises(TaskrelError, match="probe_C"):
        finetune.get_recipe("smoke", probe_C=0)


def test_lp_ft_in_eval_mode_at_rate_zero_is_its_probe():
    """encoder_mode="eval" freezes dropout and BatchNorm statistics: with no step taken (lr 0), LP-FT's
    test accuracy is its logistic probe's on the raw features; in train mode BatchNorm's running
    statistics move with each batch, and the accuracy with them."""
    from sklearn.linear_model import LogisticRegression

    bn_enc = encoders.load_encoder("convnet", progress=False)
    train, test = squares_task("train"), squares_task("test", n_per_class=30)
    zero = dict(FAST, head_init="probe", probe_C=0.5, lr=0.0, head_lr=0.0, augmentation="none")
    frozen = finetune.finetune(bn_enc, train, test, "smoke", cache=False, progress=False, encoder_mode="eval", **zero)
    moving = finetune.finetune(bn_enc, train, test, "smoke", cache=False, progress=False, **zero)
    with torch.no_grad():
        Z, Z_te = (bn_enc.model.eval()(finetune._preprocessed(bn_enc, t)).double().numpy() for t in (train, test))
    probe = (LogisticRegression(C=0.5, max_iter=2000).fit(Z, train.labels).predict(Z_te) == test.labels).mean()
    assert frozen.accuracy == pytest.approx(probe, abs=1e-12)
    assert moving.history[-1]["test_cross_entropy"] != frozen.history[-1]["test_cross_entropy"]
    assert finetune.logistic_probe((Z, train.labels), (Z_te, test.labels), Cs=(0.5,), standardise=False).accuracy == (
        pytest.approx(probe, abs=1e-12))
    with pytest.raises(UnknownNameError, match="encoder_mode"):
        finetune.get_recipe("smoke", encoder_mode="frozen")


def test_a_diverging_run_raises_finetune_diverged(enc, tasks):
    with pytest.raises(finetune.FinetuneDiverged, match="diverged at epoch 1.*lower lr"):
        finetune.finetune(enc, *tasks, "smoke", cache=False, progress=False, **dict(FAST, lr=1e30, head_lr=1e30))


def test_weight_decay_spares_biases_and_normalisation_parameters():
    """Only weights of two or more dimensions decay: a batch-normalised convnet's BN scales and the
    biases are not pulled to zero."""
    model = encoders.load_encoder("convnet", progress=False).model
    (decay, heavy), (no_decay, light) = finetune._decay_split(model)
    assert decay and not no_decay
    assert all(p.ndim >= 2 for p in heavy) and all(p.ndim == 1 for p in light)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(any(p is q for q in light) for m in bn for p in (m.weight, m.bias))
    assert len(heavy) + len(light) == len(list(model.parameters()))
