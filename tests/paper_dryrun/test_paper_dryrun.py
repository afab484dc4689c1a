"""Every notebook on the paper-dryrun profile: the paper's code path (ImageNet folder with K_R = K_T
drawn classes and reference pools, torchvision's Pets / DTD / Aircraft readers, random-weight
open_clip and timm encoders, the per-family OT batch) on synthetic stand-ins, offline."""
import math

import pandas as pd
import pytest

from taskrel_utils.inputs import dryrun
from taskrel_utils.study import config
from taskrel_utils.kit import pipeline

pytestmark = [pytest.mark.notebooks, pytest.mark.dryrun]


@pytest.fixture(scope="module")
def dryrun_run(tmp_path_factory):
    root = dryrun.make_dryrun(tmp_path_factory.mktemp("paper-dryrun") / "data")
    with pytest.MonkeyPatch.context() as mp:  # the notebook kernels inherit the environment
        mp.setenv("IMAGENET_ROOT", str(root / "imagenet"))
        mp.setenv("TASKREL_DATA_ROOT", str(root))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return pipeline.run_notebooks("paper-dryrun", run_dir=root.parent / "run", progress=False, render=False)


def test_paper_dryrun_runs_every_notebook(dryrun_run):
    cfg = config.load_profile("paper-dryrun")
    for nb in pipeline.list_notebooks():
        assert dryrun_run.path("executed", nb.name).exists()
    m = dryrun_run.load_metrics("01_encoder_features")
    assert m["reference"] == "imagenet" and set(m["tasks"]) == {"imagenet", "pets", "dtd", "aircraft"}
    assert m["tasks"]["imagenet"] == {"train": 36, "test": 24} and m["classes"]["imagenet"] == 6
    assert {t: len(c) for t, c in m["reference_classes"].items()} == {"pets": 6, "dtd": 5, "aircraft": 4}
    drawn = pd.read_csv(dryrun_run.path("tables", "01_reference_classes.csv")).set_index("target")
    wnids = {w for w, _ in dryrun.IMAGENET_CLASSES}
    assert all(set(ids.split(", ")) <= wnids for ids in drawn.reference_ids)  # the drawn classes, recorded
    assert drawn.reference_train.to_dict() == {"pets": 24, "dtd": 24, "aircraft": 24}  # the reference pool
    assert drawn.reference_test.to_dict() == {"pets": 24, "dtd": 20, "aircraft": 16}  # every validation image
    fits = dryrun_run.load_metrics("03_bound_decomposition")["pairs"]
    assert len(fits) == len(cfg.encoders) * len(cfg.targets)
    assert all(math.isfinite(r["value"]) for r in fits)
    m4 = dryrun_run.load_metrics("04_finetune_correlation")
    assert m4["ground_truth"]["path"].endswith("paper-dryrun.csv") and len(m4["finetune"]) == len(fits)
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in m4["finetune"])
    assert dryrun_run.load_metrics("05_pseudo_labels")["pseudo_label_accuracy"]
