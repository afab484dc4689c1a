"""benchmarks/gpu_check.py's dry-run step on the CPU: notebook 01 of paper-dryrun on the smoke
stand-ins, in its own process, its seconds and the drawn reference classes in the JSON."""
import json

import pytest

from benchmarks import gpu_check

pytestmark = [pytest.mark.notebooks, pytest.mark.dryrun]


def test_dryrun_step_runs_a_notebook_on_the_smoke_stand_ins(tmp_path):
    out = tmp_path / "out"
    rc = gpu_check.main(["--device", "cpu", "--steps", "dryrun", "--dryrun-profile", "paper-dryrun",
                         "--dryrun-size", "smoke", "--notebooks", "01", "--work", str(tmp_path / "work"),
                         "--out", str(out)])
    record = json.loads((out / gpu_check.JSON_NAME).read_text())
    md = (out / gpu_check.MARKDOWN_NAME).read_text()
    step = record["steps"]["dryrun"]
    assert rc == 0 and step["status"] == "ok", step.get("error")
    r = step["result"]
    assert r["data"]["written"] and list(r["notebooks"]) == ["01_encoder_features"]
    nb = r["notebooks"]["01_encoder_features"]
    assert nb["status"] == "ok" and 0 < nb["seconds"] <= nb["wall_seconds"]
    assert {row["target"] for row in r["reference_classes"]} == {"pets", "dtd", "aircraft"}
    assert r["devices"]["fast_fits"] == "cpu" and not r["cache_was_warm"]
    assert "| 01_encoder_features |" in md
