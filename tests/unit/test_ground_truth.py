"""The ground truth: the train split's fine-tuning / validation split, protocol selection on the
validation set only, seeds, reliability, the probe flag, the written CSV + provenance, validation
against the profile, and bit-identical recomputation of single runs."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from taskrel_utils.kit import cli
from taskrel_utils.inputs import data, encoders
from taskrel_utils.study import correlation, finetune, ground_truth
from taskrel_utils.study.config import Profile
from taskrel_utils.core.errors import TaskrelError, UnknownNameError

#: a tiny grid: a random head at two learning rates, LP-FT with the encoder in train and in eval mode;
#: 2-epoch schedules, 3 seeds; seconds with three random LeNets
TINY = dict(seeds=3, protocols=[{"head_init": "random", "lrs": [0.003, 0.03]}, {"head_init": "probe", "lrs": [0.03]},
                                {"head_init": "probe", "encoder_mode": "eval", "lrs": [0.03]}],
            epochs=2, validation_per_class=6, probe_cs=(0.1, 1.0), lp_cs=(0.1, 1.0))
N_PROTOCOLS = 4


def squares_task(split, n_per_class=14, n_classes=3, seed=0, labels=None):
    """Class c = a bright square in corner c of a noisy 28x28 image (learnable from a few images)."""
    rng = np.random.default_rng(seed + 10 * (split == "test"))
    y = np.repeat(np.arange(n_classes), n_per_class)
    images = rng.integers(0, 60, size=(len(y), 28, 28)).astype(np.uint8)
    corners = [(2, 2), (2, 18), (18, 2), (18, 18)]
    for i, c in enumerate(y):
        r, col = corners[c]
        images[i, r:r + 8, col:col + 8] = rng.integers(40, 90)   # faint: seeds and protocols must matter
    return data.Task("squares", split, y if labels is None else labels, [f"corner{c}" for c in range(n_classes)],
                     images=images)


def make_profile(encoder_names=("a", "b", "c"), seed=0, **finetune_fields):
    recipe = {"recipe": "smoke", "max_train_per_class": 4, "batch_size": 6, **finetune_fields}
    return Profile(name="gt-test", description="", reference="squares", targets=("squares",),
                   encoders=tuple(encoder_names), finetune=recipe, seed=seed)


@pytest.fixture(scope="module")
def encs():
    """Three differently initialised random LeNets (no pre-training needed)."""
    return {name: encoders.load_encoder("lenet-random", seed=i, progress=False) for i, name in enumerate("abc")}


@pytest.fixture(scope="module")
def tasks():
    return {"squares": {"train": squares_task("train"), "test": squares_task("test", n_per_class=10)}}


@pytest.fixture(scope="module")
def built(encs, tasks, tmp_path_factory):
    path = tmp_path_factory.mktemp("gt") / "gt-test.csv"
    gt = ground_truth.build(make_profile(), out=path, encs=encs, tasks=tasks, cache=False, n_jobs=1,
                            progress=False, **TINY)
    return gt, path


# ---------------------------------------------------------------------------- splits, grid, settings
def test_split_train_is_stratified_disjoint_and_seeded():
    task = squares_task("train")
    ft, val = ground_truth.split_train(task, 4, 6, seed=0)
    assert np.bincount(ft.labels).tolist() == [4, 4, 4] and np.bincount(val.labels).tolist() == [6, 6, 6]
    assert (ft.split, val.split) == ("finetune", "validation")
    rows = {tuple(img.ravel()) for img in task.images}
    ft_rows, val_rows = ({tuple(img.ravel()) for img in t.images} for t in (ft, val))
    assert ft_rows <= rows and val_rows <= rows and not ft_rows & val_rows
    again, _ = ground_truth.split_train(task, 4, 6, seed=0)
    other, _ = ground_truth.split_train(task, 4, 6, seed=1)
    assert again.content_id == ft.content_id != other.content_id
    _, all_rest = ground_truth.split_train(task, 4, 50, seed=0)      # "up to": the 10 others of each class
    assert np.bincount(all_rest.labels).tolist() == [10, 10, 10]
    with pytest.raises(TaskrelError, match=r"too few images for 14 fine-tuning"):
        ground_truth.split_train(task, 14, 6)
    with pytest.raises(TaskrelError, match="finetune_per_class must be a positive integer"):
        ground_truth.split_train(task, 0, 6)


def test_protocol_grid_crosses_each_familys_augmentations_and_rates_evaluating_every_epoch():
    base = finetune.get_recipe("mini")  # lr 0.01, head_lr 0.1
    families = [{"head_init": "random", "augmentations": ["none", "shift"], "lrs": [0.03, 0.003]},
                {"head_init": "probe", "encoder_mode": "eval", "lrs": [0.003]}]
    grid = ground_truth.protocol_grid(base, families, 8)
    assert [(r.head_init, r.encoder_mode, r.augmentation, r.lr) for r in grid] == [
        ("random", "train", a, lr) for a in ("none", "shift") for lr in (0.003, 0.03)] + [("probe", "eval", "none", 0.003)]
    assert all(r.head_lr == pytest.approx(10 * r.lr if r.head_init == "random" else r.lr) for r in grid)
    assert all(r.epochs == 8 and r.eval_every == 1 and r.stop_epoch is None and r.max_test_per_class is None
               for r in grid)
    assert all(r.max_train_per_class == base.max_train_per_class and r.batch_size == base.batch_size for r in grid)
    with pytest.raises(TaskrelError, match="max_train_per_class None"):
        ground_truth.protocol_grid("paper", families, 4)
    # a chosen protocol's recorded fields give it back (LP-FT's C included; a random head records no C)
    chosen = dataclasses.replace(grid[4], stop_epoch=3, probe_C=10.0)
    fields = ground_truth._protocol_fields(chosen)
    again = ground_truth.recipe_of(base, fields)
    assert (again.lr, again.head_lr, again.head_init, again.encoder_mode, again.augmentation, again.probe_C,
            again.epochs, again.stop_epoch) == (chosen.lr, chosen.head_lr, "probe", "eval", "none", 10.0, 8, 3)
    assert again.eval_every == 3
    assert ground_truth._protocol_fields(grid[0])["lp_C"] is None
    assert ground_truth.recipe_of(base, dict(ground_truth._protocol_fields(grid[0]), stop_epoch=2)).probe_C == base.probe_C


def test_settings_defaults_overrides_and_bad_values():
    s = ground_truth.settings(make_profile())
    assert s["seeds"] == 6 and s["contrast_seeds"] == 6 and s["epochs"] == 16 and s["lp_cs"][-1] == 100.0
    assert [(f["head_init"], f["encoder_mode"], f["augmentations"], f["lrs"]) for f in s["protocols"]] == [
        ("random", "train", ("none", "shift"), (0.0003, 0.003)), ("probe", "train", ("none",), (0.0003, 0.003)),
        ("probe", "eval", ("none",), (0.0003, 0.003))]
    s = ground_truth.settings(make_profile(), seeds=5, contrast_seeds=3, epochs=8, lp_cs=None,
                              protocols=[{"head_init": "probe", "lrs": 0.01}])
    assert (s["seeds"], s["contrast_seeds"], s["epochs"], s["lp_cs"]) == (5, 3, 8, ground_truth.DEFAULTS["lp_cs"])
    assert s["protocols"] == ({"head_init": "probe", "encoder_mode": "train", "augmentations": ("none",),
                               "lrs": (0.01,)},)
    random = {"head_init": "random", "lrs": [0.01]}
    for bad, msg in [(dict(seeds=1), "seeds must be an integer >= 2"), (dict(seeds=2.5), "seeds must be"),
                     (dict(contrast_seeds=1), "contrast_seeds must be"), (dict(selection_seeds=7), "exceeds seeds"),
                     (dict(protocols=[dict(random, lrs=[0.01, -1])]), r"protocols\[0\].lrs must be"),
                     (dict(epochs=2.5), "epochs must be an integer"),
                     (dict(epochs=[8, 16]), "epochs must be an integer"),
                     (dict(protocols=[dict(random, lrs=[0.01, 0.01])]), "distinct"),
                     (dict(probe_cs=[]), "probe_cs"), (dict(lp_cs=[0]), "lp_cs"),
                     (dict(protocols=[dict(random, augmentations=["mixup"])]), "augmentations must be"),
                     (dict(protocols=[]), "protocols must be a list"), (dict(protocols=random), "protocols must be a list"),
                     (dict(protocols=[{"lrs": [0.01]}]), "head_init must be one of"),
                     (dict(protocols=[dict(random, encoder_mode="frozen")]), "encoder_mode must be one of"),
                     (dict(protocols=[random, random]), "repeat"), (dict(protocols=[0.01]), "must be a mapping")]:
        with pytest.raises(TaskrelError, match=msg):
            ground_truth.settings(make_profile(), **bad)
    with pytest.raises(UnknownNameError, match="seeds"):
        ground_truth.settings(make_profile(), n_seeds=3)
    with pytest.raises(UnknownNameError, match="head_lr"):
        ground_truth.settings(make_profile(), protocols=[dict(random, head_lr=0.1)])


def test_a_diverging_protocol_scores_zero_and_is_never_chosen(encs, tasks):
    base = finetune.get_recipe(make_profile().finetune)
    grid = ground_truth.protocol_grid(base, [{"head_init": "random", "lrs": [1e30, 0.01]}], 2)
    splits = {"squares": ground_truth.split_train(tasks["squares"]["train"], 4, 6)}
    chosen, table = ground_truth.select_protocols({"a": encs["a"]}, splits, grid, cache=False, n_jobs=1, progress=False)
    blown = table[table.lr == 1e30]
    assert blown.diverged.all() and (blown.best_validation_accuracy == 0).all() and not table[table.lr == 0.01].diverged.any()
    assert chosen["a", "squares"].lr == 0.01


def test_encoder_groups():
    assert ground_truth.encoder_groups(make_profile(), contrasts=["c"]) == {"a": "main", "b": "main", "c": "contrast"}
    assert set(ground_truth.encoder_groups(make_profile(), contrasts=[]).values()) == {"main"}


# ---------------------------------------------------------------------------- the build
def test_build_table_is_consistent_with_its_seeds_and_probe(built, tasks):
    gt, path = built
    t = gt.table
    assert list(t.encoder) == ["a", "b", "c"] and set(t.target) == {"squares"} and set(t.group) == {"main"}
    seeds = [f"accuracy_seed{s}" for s in (0, 1, 2)]
    np.testing.assert_allclose(t.accuracy, t[seeds].mean(axis=1), atol=1e-15)
    np.testing.assert_allclose(t.accuracy_std, t[seeds].std(axis=1, ddof=1), atol=1e-15)
    assert (t.below_probe == (t.accuracy < t.probe_accuracy)).all()
    assert set(t.probe_C) <= {0.1, 1.0} and t.probe_accuracy.between(0, 1).all()
    assert (t.n_finetune == 12).all() and (t.n_validation == 18).all() and (t.n_test == len(tasks["squares"]["test"])).all()
    assert (t.n_seeds == 3).all() and t[seeds].nunique(axis=1).max() > 1   # seeds do differ
    chosen = gt.provenance["chosen_protocols"]["squares"]
    for row in t.itertuples():
        mine = chosen[row.encoder]
        assert (row.lr, row.head_init, row.encoder_mode, row.augmentation, row.stop_epoch) == (
            mine["lr"], mine["head_init"], mine["encoder_mode"], mine["augmentation"], mine["stop_epoch"])
        # LP-FT's probe strength is the pair's choice from lp_cs; a random head has none
        assert row.lp_C in TINY["lp_cs"] if row.head_init == "probe" else np.isnan(row.lp_C)
        # the pair's own best (protocol, epoch) on its validation curves, the first on ties
        g = gt.grid[gt.grid.encoder == row.encoder]
        curves = np.array([[float(a) for a in c.split()] for c in g.curve])
        k, epoch = np.unravel_index(np.argmax(curves), curves.shape)
        assert (g.iloc[k].lr, g.iloc[k].head_init, epoch + 1) == (row.lr, row.head_init, row.stop_epoch)
    assert len(gt.grid) == N_PROTOCOLS * 3 * 1          # protocols x encoders x 1 selection seed
    assert (t.below_probe_by_1pt == (t.accuracy < t.probe_accuracy - 0.01)).all()
    rel = gt.reliability.iloc[0]
    assert rel.split_half_kendall == pytest.approx(correlation.split_half_kendall(t[seeds].to_numpy()))
    prov = json.loads(path.with_suffix(".json").read_text())
    for key in ("command", "date", "kit_commit", "versions", "threads_per_job", "seconds", "grid", "grid_summary",
                "reliability", "encoders", "targets", "settings", "base_recipe", "csv_sha256"):
        assert key in prov, key
    assert prov["threads_per_job"] == 1 and prov["versions"]["torch"]
    assert prov["encoders"]["a"]["weights_id"] and prov["targets"]["squares"]["test"] == tasks["squares"]["test"].content_id
    assert sum(r["n_pairs_chose_it"] for r in prov["grid_summary"]) == 3


def test_load_reads_back_the_build_exactly(built, encs, tasks):
    gt, path = built
    loaded = ground_truth.load(make_profile(), path, encs=encs, tasks=tasks)
    pd.testing.assert_frame_equal(loaded.table, gt.table, check_exact=True)
    assert loaded.provenance["chosen_protocols"] == gt.provenance["chosen_protocols"]
    sub = ground_truth.load(make_profile(("c", "a")), path, encs=encs, tasks=tasks)   # a subset of the zoo
    assert list(sub.table.encoder) == ["c", "a"]


def test_a_recomputed_run_is_bit_identical(built, encs, tasks):
    gt, path = built
    check = ground_truth.recompute_runs(make_profile(), gt, [("b", "squares", 2), ("a", "squares", 0)],
                                        encs=encs, tasks=tasks)
    assert check.match.all(), check
    assert (check.stored == check.recomputed).all()


def test_parallel_workers_give_the_same_csv(built, encs, tasks, tmp_path):
    gt, path = built
    out = tmp_path / "gt-test.csv"
    ground_truth.build(make_profile(), out=out, encs=encs, tasks=tasks, cache=False, n_jobs=2, progress=False, **TINY)
    assert out.read_bytes() == path.read_bytes()


def test_selection_never_reads_the_test_split(built, encs, tasks, tmp_path, monkeypatch):
    gt, _ = built
    test = tasks["squares"]["test"]
    garbage = squares_task("test", n_per_class=10, labels=np.random.default_rng(5).integers(0, 3, len(test)))
    calls = []
    real = finetune.finetune

    def spy(enc, train_task, eval_task, recipe, **kw):
        calls.append((eval_task.content_id, recipe.stop_epoch, recipe.lr, recipe.head_init))
        return real(enc, train_task, eval_task, recipe, **kw)

    monkeypatch.setattr(finetune, "finetune", spy)
    other = ground_truth.build(make_profile(), out=False, encs=encs, tasks={"squares": {"train": tasks["squares"]["train"],
                                                                                     "test": garbage}},
                               cache=False, n_jobs=1, progress=False, **TINY)
    assert other.provenance["chosen_protocols"] == gt.provenance["chosen_protocols"]
    pd.testing.assert_frame_equal(other.grid, gt.grid, check_exact=True)
    assert not np.array_equal(other.table.accuracy, gt.table.accuracy)  # the test accuracies did change
    validation = other.provenance["targets"]["squares"]["validation"]
    n_selection = N_PROTOCOLS * 3                                          # protocols x encoders
    assert [c[0] for c in calls[:n_selection]] == [validation] * n_selection
    assert {c[0] for c in calls[n_selection:]} == {garbage.content_id}
    chosen = other.provenance["chosen_protocols"]["squares"]
    assert {c[1:] for c in calls[n_selection:]} == {(p["stop_epoch"], p["lr"], p["head_init"]) for p in chosen.values()}


def test_contrasts_get_their_own_seeds_and_protocols(encs, tasks):
    gt = ground_truth.build(make_profile(), out=False, encs=encs, tasks=tasks, contrasts=["c"], cache=False,
                            n_jobs=1, progress=False, **dict(TINY, contrast_seeds=2))
    assert set(gt.grid.encoder) == {"a", "b", "c"} and set(gt.provenance["chosen_protocols"]["squares"]) == set("abc")
    c = gt.table.set_index("encoder").loc["c"]
    assert c.group == "contrast" and c.n_seeds == 2 and np.isnan(c.accuracy_seed2)
    assert gt.seeds("c") == [0, 1] and gt.seeds("a") == [0, 1, 2]
    assert gt.reliability.iloc[0].n_encoders == 2 and np.isnan(gt.reliability.iloc[0].split_half_kendall)


# ---------------------------------------------------------------------------- staleness and bad input
def test_missing_edited_and_stale_files_say_how_to_rebuild(built, encs, tasks, tmp_path):
    gt, path = built
    with pytest.raises(TaskrelError, match="no ground truth .*ground-truth build --profile gt-test"):
        ground_truth.load(make_profile(), tmp_path / "none.csv", encs=encs, tasks=tasks)
    csv, prov = tmp_path / "gt.csv", tmp_path / "gt.json"
    csv.write_bytes(path.read_bytes())
    prov.write_bytes(path.with_suffix(".json").read_bytes())
    csv.write_text(csv.read_text() + "\n")
    with pytest.raises(TaskrelError, match="does not match its provenance"):
        ground_truth.load(make_profile(), csv, encs=encs, tasks=tasks)
    csv.write_bytes(path.read_bytes())
    other_weights = dict(encs, b=encoders.load_encoder("lenet-random", seed=7, progress=False))
    with pytest.raises(TaskrelError, match=r"stale.*encoder 'b' has other weights.*ground-truth build"):
        ground_truth.load(make_profile(), csv, encs=other_weights, tasks=tasks)
    other_test = {"squares": {"train": tasks["squares"]["train"], "test": squares_task("test", n_per_class=9)}}
    with pytest.raises(TaskrelError, match="the test split changed"):
        ground_truth.load(make_profile(), csv, encs=encs, tasks=other_test)
    with pytest.raises(TaskrelError, match=r"encoders \['d'\] are not in it"):
        ground_truth.load(make_profile(("a", "d")), csv, encs=dict(encs, d=encs["a"]), tasks=tasks)
    with pytest.raises(TaskrelError, match="recipe changed"):
        ground_truth.load(make_profile(epochs=5), csv, encs=encs, tasks=tasks)
    with pytest.raises(TaskrelError, match="split seed changed"):
        ground_truth.load(make_profile(seed=1), csv, encs=encs, tasks=tasks)
    d = json.loads(prov.read_text())
    prov.write_text(json.dumps(dict(d, format=d["format"] + 1)))
    with pytest.raises(TaskrelError, match="another version of the procedure"):
        ground_truth.load(make_profile(), csv, encs=encs, tasks=tasks)


def test_an_encoder_with_other_weights_makes_it_stale(built, encs, tasks):
    import copy

    _, path = built
    other = copy.copy(encs["b"])
    other.weights_id = "0" * 64
    with pytest.raises(TaskrelError, match="encoder 'b' has other weights"):
        ground_truth.load(make_profile(), path, encs=dict(encs, b=other), tasks=tasks)


def test_bad_input(built, encs, tasks):
    gt, _ = built
    with pytest.raises(TaskrelError, match=r"no \('z', 'squares'\) row"):
        ground_truth.recompute_runs(make_profile(), gt, [("z", "squares", 0)], encs=encs, tasks=tasks)
    with pytest.raises(TaskrelError, match=r"seed 9 was not run.*\[0, 1, 2\]"):
        ground_truth.recompute_runs(make_profile(), gt, [("a", "squares", 9)], encs=encs, tasks=tasks)
    with pytest.raises(TaskrelError, match="seeds must be an integer >= 2"):
        ground_truth.build(make_profile(), out=False, encs=encs, tasks=tasks, progress=False, **dict(TINY, seeds=1))
    with pytest.raises(TaskrelError, match=r"no encoder object for \['c'\]"):
        ground_truth.build(make_profile(), out=False, encs={k: encs[k] for k in "ab"}, tasks=tasks, progress=False,
                           **TINY)
    with pytest.raises(TaskrelError, match=r"no train/test tasks for targets \['squares'\]"):
        ground_truth.build(make_profile(), out=False, encs=encs, tasks={}, progress=False, **TINY)
    with pytest.raises(TaskrelError, match="too few images"):
        ground_truth.build(make_profile(max_train_per_class=14), out=False, encs=encs, tasks=tasks, progress=False,
                           **TINY)


def test_cli_check_of_a_missing_file_fails_with_the_build_command(tmp_path, capsys):
    rc = cli.main(["ground-truth", "check", "--profile", "smoke", "--out", str(tmp_path / "x.csv")])
    assert rc == 2
    assert "python -m taskrel_utils ground-truth build --profile smoke" in capsys.readouterr().err


def test_the_shipped_mini_ground_truth_loads_and_one_of_its_runs_recomputes_exactly():
    """The shipped CSV matches the mini profile (weights, splits, settings) and its numbers are
    reproducible: one cheap (encoder, target, seed) fine-tuned again gives the stored accuracy."""
    from taskrel_utils.inputs import encoders as registry
    from taskrel_utils.study import config, experiment

    profile = config.load_profile("mini", encoders=["mlp-short"], targets=["uci-digits"])
    encs = {"mlp-short": registry.load_encoder("mlp-short", progress=False)}
    tasks = experiment.profile_tasks(profile)
    gt = ground_truth.load(profile, encs=encs, tasks=tasks, progress=False)
    assert list(gt.table.encoder) == ["mlp-short"] and gt.reliability.split_half_kendall.notna().all()
    check = ground_truth.recompute_runs(profile, gt, [("mlp-short", "uci-digits", 0)], encs=encs, tasks=tasks)
    assert check.match.all(), check
