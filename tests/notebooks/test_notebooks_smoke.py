"""Every notebook, run headlessly by papermill on the smoke profile, asserted from its metrics."""
import json

import pytest

from taskrel_utils import config, pipeline

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    return pipeline.run_notebooks("smoke", run_dir=run_dir, progress=False)


def test_every_notebook_executed_and_reported(smoke_run):
    for nb in pipeline.list_notebooks():
        assert smoke_run.path("executed", nb.name).exists()
        html = smoke_run.path("report", f"{nb.stem}.html").read_text()
        assert "SMOKE RUN" in html and "<details" in html
    timings = json.loads(smoke_run.path("params", "pipeline.json").read_text())["seconds"]
    assert set(timings) == {nb.stem for nb in pipeline.list_notebooks()}


def test_01_encoder_features(smoke_run):
    m = smoke_run.load_metrics("01_encoder_features")
    cfg = config.load_profile("smoke")
    assert m["profile"] == "smoke" and m["reference"] == cfg.reference
    assert set(m["tasks"]) == {cfg.reference, *cfg.targets}
    for name, sizes in m["tasks"].items():
        k = m["classes"][name]
        assert sizes["train"] <= 30 * k and sizes["test"] <= 10 * k and sizes["test"] >= k
    assert sizes["train"] > sizes["test"]
    assert set(m["encoders"]) == set(cfg.encoders) and all(d > 0 for d in m["encoders"].values())
    assert m["feature_sets"] == len(cfg.encoders) * len(m["tasks"]) * 2
    acc = m["nearest_mean_accuracy"]
    assert len(acc) == len(cfg.encoders) * len(m["tasks"]) and all(0 <= a <= 1 for a in acc.values())
    # a pre-trained CNN separates the reference digits far better than chance (0.1)
    assert acc[f"lenet-fashion-short/{cfg.reference}"] > 0.3
    assert m["photo_check"] and all(m["photo_check"].values()), m["photo_check"]
    assert smoke_run.path("tables", "01_extraction.csv").exists()
    assert smoke_run.path("figures", "01_projections.png").exists()
