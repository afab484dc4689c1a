import pandas as pd
import pytest

from taskrel_utils.study import config, premise
from taskrel_utils.core.errors import TaskrelError


def _gt(probes):
    return pd.DataFrame([{"encoder": e, "target": t, "probe_accuracy": a} for (e, t), a in probes.items()])


def test_a_target_is_related_when_the_median_main_probe_beats_random_init_by_the_threshold():
    cfg = config.load_profile("smoke")   # main zoo: lenet-short, lenet-1k, mlp-short; random: lenet-random
    probes = {("lenet-short", "uci-digits"): 0.80, ("lenet-1k", "uci-digits"): 0.90, ("mlp-short", "uci-digits"): 0.70,
              ("lenet-random", "uci-digits"): 0.79,
              ("lenet-short", "fashion-coarse"): 0.90, ("lenet-1k", "fashion-coarse"): 0.91,
              ("mlp-short", "fashion-coarse"): 0.99, ("lenet-random", "fashion-coarse"): 0.85}
    table = premise.premise_table(_gt(probes), cfg).set_index("target")
    assert table.loc["uci-digits", "gain"] == pytest.approx(0.01) and not table.loc["uci-digits", "related"]
    assert table.loc["fashion-coarse", "gain"] == pytest.approx(0.06) and table.loc["fashion-coarse", "related"]
    assert table.loc["fashion-coarse", "main_min_probe"] == 0.90 and table.loc["fashion-coarse", "main_max_probe"] == 0.99
    assert premise.groups(table.reset_index()) == {"related": ["fashion-coarse"], "unrelated": ["uci-digits"]}
    # the threshold is the profile's: at 0.07 nothing passes
    strict = config.load_profile("smoke", premise={"threshold": 0.07})
    assert not premise.premise_table(_gt(probes), strict).related.any()


def test_premise_settings_are_checked():
    with pytest.raises(TaskrelError, match="random_encoder"):
        premise.check_premise_settings({"random_encoder": 3})
    with pytest.raises(TaskrelError, match="threshold"):
        premise.check_premise_settings({"threshold": 5})
    with pytest.raises(TaskrelError, match="unknown premise setting"):
        premise.check_premise_settings({"treshold": 0.1})
    with pytest.raises(TaskrelError, match="threshold"):
        config.load_profile("smoke", premise={"threshold": "high"})
    cfg = config.load_profile("smoke")
    with pytest.raises(TaskrelError, match="no probe accuracy"):
        premise.premise_table(_gt({("lenet-short", "uci-digits"): 0.8}), cfg)


def test_without_a_premise_or_its_random_encoder_every_target_is_related_and_unmeasured():
    cfg = config.load_profile("paper-dryrun")
    assert cfg.premise == {}
    gt = _gt({(e, t): 0.5 for e in cfg.encoders for t in cfg.targets})
    table = premise.premise_table(gt, cfg)
    assert table.related.all() and not table.measured.any() and table.gain.isna().all()
    subset = config.load_profile("smoke", encoders=["lenet-short", "lenet-1k", "mlp-short"])  # no lenet-random
    table = premise.premise_table(_gt({(e, t): 0.5 for e in subset.encoders for t in subset.targets}), subset)
    assert table.related.all() and not table.measured.any()
