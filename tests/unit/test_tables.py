"""Tables over a profile's zoo: the score table's two sources, parallel equals serial."""
import numpy as np
import pandas as pd
import pytest

from taskrel_utils.study import config, scores, tables


def test_score_table_sources(feats):
    import torch

    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e",),
                         relatedness=dict(reference_classifier_options=dict(iterations=50)))
    table = tables.score_table(cfg, feats, progress=False)
    assert len(table) == 1 and {"logme", "leep", "nce", "sfda", "h_score", "ot_nce", "otce_wasserstein",
                                "pactran_gaussian"} <= set(table.columns)
    assert table.leep.item() <= 0 and table.ot_nce.item() == -table.otce_conditional_entropy.item()

    class Enc:  # an encoder whose "ImageNet head" is a fixed 12 -> 5 linear layer
        head = torch.nn.Linear(12, 5)
        device = "cpu"

    heads = tables.score_table(cfg, feats, source="imagenet_head", encs={"e": Enc()}, progress=False)
    probs = tables._head_probabilities(Enc.head, feats["e", "tgt", "train"][0])
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert heads.leep.item() == pytest.approx(scores.leep(probs, feats["e", "tgt", "train"][1]))
    assert "logme" not in heads.columns  # only the probability-based scores change with the source
    Enc.head = None
    assert tables.score_table(cfg, feats, source="imagenet_head", encs={"e": Enc()}, progress=False).empty
    with pytest.raises(ValueError, match="encs"):
        tables.score_table(cfg, feats, source="imagenet_head")
    with pytest.raises(ValueError, match="source"):
        tables.score_table(cfg, feats, source="imagenet")


def test_parallel_relatedness_equals_sequential(feats):
    two = {**feats, **{("f",) + k[1:]: (Z * 2.0 + 1.0, y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f"),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    serial = tables.relatedness_table(cfg, two, cache=False, n_jobs=1, progress=False)
    parallel = tables.relatedness_table(cfg, two, cache=False, n_jobs=2, progress=False)
    assert list(parallel.encoder) == ["e", "f"]  # the profile's order, whatever order the jobs ran in
    cols = [c for c in serial.columns if c != "seconds"]
    assert serial[cols].equals(parallel[cols])


def test_fraction_tables_one_row_per_fraction_seed_and_pair(feats, tmp_path, monkeypatch):
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    rng = np.random.default_rng(1)  # two noisier copies of encoder e: three different values per fit
    three = {**feats, **{(e,) + k[1:]: (Z + rng.normal(scale=s, size=Z.shape), y) for e, s in (("f", 1.0), ("g", 2.0))
                         for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f", "g"),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    accuracy = pd.DataFrame({"encoder": ["e", "f", "g"], "target": "tgt", "accuracy": [0.9, 0.5, 0.7]})
    values, pearson = tables.fraction_tables(cfg, three, accuracy, [0.5, 1.0], [0, 1], encoders=["e", "f", "g"],
                                             progress=False)
    # fraction 1 is the same subsample for every seed: it runs once
    assert sorted(set(zip(values.fraction, values.seed))) == [(0.5, 0), (0.5, 1), (1.0, 0)]
    assert len(values) == 3 * 3 and len(pearson) == 3
    half = values[(values.fraction == 0.5) & (values.seed == 1)]
    direct = tables.relatedness_table(cfg, three, encoders=["e", "f", "g"], fraction=0.5, fraction_seed=1,
                                      progress=False)
    np.testing.assert_array_equal(half.value.to_numpy(), direct.value.to_numpy())
    r = pearson.set_index(["fraction", "seed"]).loc[(0.5, 1), "pearson_r"]
    assert r == pytest.approx(np.corrcoef(half.value, half.accuracy)[0, 1])


def test_tau0_sweep_and_reference_fits_in_parallel_equal_serial(feats, tmp_path, monkeypatch):
    """Each run trains its own h_R and fits (an empty cache each): the encoders' jobs in two worker
    processes give the serial numbers exactly (h_R sums on one BLAS thread wherever it trains), in
    the encoders' order."""
    from taskrel_utils.study import tau0_study

    two = {**feats, **{("f",) + k[1:]: (Z * 2.0 + 1.0, y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f"),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    runs = {}
    for n_jobs in (2, 1):
        monkeypatch.setenv("TASKREL_CACHE", str(tmp_path / f"cache{n_jobs}"))
        runs[n_jobs] = (tau0_study.tau0_sweep(cfg, two, [0.1, 1.0], n_jobs=n_jobs, progress=False),
                        tau0_study.reference_fit_table(cfg, two, n_jobs=n_jobs, progress=False))
    (sweep, fits), (sweep1, fits1) = runs[2], runs[1]
    assert list(zip(sweep.encoder, sweep.tau0)) == [("e", 0.1), ("e", 1.0), ("f", 0.1), ("f", 1.0)]
    assert sweep.equals(sweep1) and fits.equals(fits1) and list(fits.encoder) == ["e", "f"]
    assert sweep.value_related.nunique() == 4  # four different fits, not one number repeated


def test_paper_profiles_take_the_imagenet_head_with_h_R_beside_it(feats):
    import dataclasses

    import torch

    two = {**feats, **{("f",) + k[1:]: (Z * 2.0 + 1.0, y) for k, (Z, y) in feats.items()}}
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e", "f"),
                         relatedness=dict(reference_classifier_options=dict(iterations=50)),
                         source_classifier="imagenet_head")

    class WithHead:  # a 1000-way "ImageNet head" on the 12-d features
        head = torch.nn.Linear(12, 1000)
        device = "cpu"

    class Without:  # e.g. CLIP: no ImageNet head
        head = None
        device = "cpu"

    encs = {"e": WithHead(), "f": Without()}
    table = tables.score_table(cfg, two, encs=encs, progress=False)
    plain = tables.score_table(dataclasses.replace(cfg, source_classifier="reference_classifier"), two,
                               progress=False)
    Z, y = feats["e", "tgt", "train"]
    probs = tables._head_probabilities(WithHead.head, Z)
    assert probs.shape == (len(Z), 1000) and np.allclose(probs.sum(1), 1.0)  # 1000-way, a distribution per image
    e, f = table.set_index("encoder").loc["e"], table.set_index("encoder").loc["f"]
    assert (table.source == "imagenet_head").all()
    assert e.leep == pytest.approx(scores.leep(probs, y)) and e.nce == pytest.approx(scores.nce(probs, y))
    assert e.pactran_dirichlet == pytest.approx(scores.pactran_dirichlet(probs, y))
    base = plain.set_index("encoder")
    for c in tables.SOURCE_PROBABILITY_SCORES:  # h_R's version beside the head's
        assert table.set_index("encoder")[f"{c}_reference_classifier"].tolist() == pytest.approx(base[c].tolist())
        assert np.isnan(f[c])  # no head, no head-based score
    assert e.leep != pytest.approx(base.loc["e", "leep"])
    for c in ("logme", "sfda", "pactran_gaussian", "ot_nce"):  # feature scores do not depend on the source
        assert table[c].tolist() == pytest.approx(plain[c].tolist())
    with pytest.raises(ValueError, match="source_classifier must be one of"):
        config.load_profile("paper-published", source_classifier="head")


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_profile_fit_gives_the_tables_terms_from_its_cached_maps(feats, tmp_path, monkeypatch, precision):
    """Notebook 03's exercise 1 takes one pair's fit with experiment.profile_fit: the table's maps,
    evaluated again (no new fit), so every term is the table's to the last bit."""
    from taskrel_utils.method import fit_steps, relatedness
    from taskrel_utils.study import experiment

    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e",),
                         relatedness=dict(steps=6, batch_size=60, precision=precision,
                                          reference_classifier_options=dict(iterations=30)))
    row = tables.relatedness_table(cfg, feats, n_jobs=1, progress=False).iloc[0]

    def no_fit(*a, **k):
        raise AssertionError("profile_fit fitted again instead of taking the table's maps")

    monkeypatch.setattr(relatedness, "fit_transformations", no_fit)
    pair, fit = experiment.profile_fit(cfg, feats, "e", "tgt")
    for key in ("value", "wasserstein", "wasserstein_theorem", "label_mismatch", "reweighted_reference_loss", "tau"):
        assert (fit.value if key == "value" else fit.terms[key]) == row[key], key
    assert set(pair) == {"ref_train", "ref_test", "target_train", "target_test"}
    assert fit.terms["steps_used"] == row.steps_used


def test_like_for_like_values_and_shuffled_test_labels(feats, tmp_path, monkeypatch):
    """Notebook 05 compares labelled and label-free task-relatedness with the same W, and evaluates
    the labelled fit again with shuffled test labels without fitting again."""
    monkeypatch.setenv("TASKREL_CACHE", str(tmp_path))
    cfg = config.Profile(name="t", description="", reference="ref", targets=("tgt",), encoders=("e",),
                         relatedness=dict(steps=4, batch_size=60, reference_classifier_options=dict(iterations=30)))
    true = tables.relatedness_table(cfg, feats, progress=False)
    pseudo = tables.relatedness_table(cfg, feats, target_labels=False, progress=False)
    assert true.value_wasserstein.item() == "code" and pseudo.value_wasserstein.item() == "theorem"
    same = tables.with_theorem_wasserstein(true)
    row = same.iloc[0]
    assert row.value_wasserstein == "theorem" and not row.value_failed
    assert row.distribution_mismatch == pytest.approx(row.tau * row.wasserstein_theorem)
    assert row.value == pytest.approx(row.reweighted_reference_loss + row.label_mismatch + row.distribution_mismatch)
    assert row.value != true.value.item()  # the code's W is rounded to 3 decimals: another number
    cols = ["value", "distribution_mismatch", "value_wasserstein", "value_failed"]
    assert tables.with_theorem_wasserstein(pseudo)[cols].equals(pseudo[cols])  # already the theorem's W
    assert tables.with_theorem_wasserstein(true.assign(wasserstein_theorem=None)).value_failed.all()
    with pytest.raises(ValueError, match="wasserstein_theorem"):
        tables.with_theorem_wasserstein(true.drop(columns="wasserstein_theorem"))
    shuffled = tables.relatedness_table(cfg, feats, shuffle_test_labels=0, progress=False)
    s = shuffled.iloc[0]
    # the same fit (B, D, h_R): the reference loss and the label mismatch do not read the target labels
    assert s.reweighted_reference_loss == true.reweighted_reference_loss.item()
    assert s.label_mismatch == true.label_mismatch.item()
    assert s.wasserstein_theorem != true.wasserstein_theorem.item()
    again = tables.relatedness_table(cfg, feats, shuffle_test_labels=0, progress=False)
    assert again[sorted(again.columns)].equals(shuffled[sorted(shuffled.columns)])  # the same seed, the same labels
