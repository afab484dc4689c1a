"""benchmarks/gpu_check.py on the CPU: the schedules step at the tiny size writes both schedules'
times and their ratio; a CUDA device that is not there is refused; a failed step is recorded and
the next one still runs. (Its dry-run step: tests/paper_dryrun/test_gpu_check_dryrun.py.)"""
import json

import pytest
import torch

from benchmarks import gpu_check


def _read(out):
    return json.loads((out / gpu_check.JSON_NAME).read_text()), (out / gpu_check.MARKDOWN_NAME).read_text()


def test_schedules_step_on_the_cpu_writes_both_schedules_and_the_ratio(tmp_path):
    out = tmp_path / "out"
    rc = gpu_check.main(["--device", "cpu", "--steps", "schedules", "--size", "tiny", "--original-cap", "150",
                         "--out", str(out)])
    record, md = _read(out)
    assert rc == 0 and list(record["steps"]) == ["schedules"]  # the dry run was not asked for
    step = record["steps"]["schedules"]
    assert step["status"] == "ok" and step["wall_seconds"] > 0
    r = step["result"]
    assert (r["size"], r["d"], r["K"], r["original_cap"]) == ("tiny", 16, 3, 150)
    orig, fast = r["original"], r["fast"]
    assert orig["device"] == "cpu" and fast["device"] == "cpu"
    assert orig["steps"] == 150 and orig["capped"] and r["original_full_steps"] == 1001  # the original's fixed count, capped
    assert orig["seconds"] > 0 and fast["seconds"] > 0 and not fast["capped"]
    assert orig["seconds_per_step"] == pytest.approx(orig["seconds"] / orig["steps"])
    for s in (orig, fast):  # the same held-out quantity at checkpoints of both, settled within 1 % of its own end
        rows = s["checkpoints"]
        assert rows[0]["step"] == 0 and rows[-1]["step"] == s["steps"] and s["final"]["value"] == rows[-1]["value"]
        settled = [row for row in rows if row["step"] >= s["within_1pct_step"]]
        assert all(abs(row["value"] - s["value"]) <= 0.01 * abs(s["value"]) for row in settled)
        assert 0 <= s["within_1pct_seconds"] <= s["seconds"]
    assert r["ratio_within_1pct"] == pytest.approx(orig["within_1pct_seconds"] / fast["within_1pct_seconds"])
    assert r["ratio_total"] == pytest.approx(orig["seconds"] / fast["seconds"])
    assert r["meets_goal"] == (r["ratio_within_1pct"] >= gpu_check.GOAL_RATIO) and r["warm_up_seconds"] is None
    assert record["device_info"]["device"] == "cpu" and "gpu" not in record["device_info"]
    assert "| original (reference schedule) | cpu | 150 (capped, of 1001) |" in md
    assert f"{r['ratio_within_1pct']:.1f}x" in md


def test_cuda_asked_without_a_gpu_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    assert gpu_check.main(["--device", "cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA device" in err and "--device cpu" in err
    assert not out.exists()  # nothing ran, nothing written
    with pytest.raises(gpu_check.DeviceUnavailableError):
        gpu_check.device_info("cuda:0")


def test_a_failed_step_is_recorded_and_the_next_runs(tmp_path):
    def broken():
        raise RuntimeError("planted failure")

    so_far = dict(profile="paper-dryrun-full", size="full", data=dict(seconds=1.5, written=True), cache_was_warm=False,
                  devices=dict(encoders="cpu", fast_fits="cuda"), notebooks={"02_x": dict(status="failed",
                                                                                         wall_seconds=2.0)})
    partial = gpu_check.StepError("notebooks not completed: 02_x", so_far)

    def half():
        raise partial

    record = dict(device="cpu", device_info={}, steps={})
    ok = gpu_check.run_steps({"schedules": broken, "dryrun": half, "third": lambda: {"n": float("nan")}},
                             record, tmp_path)
    saved, md = _read(tmp_path)
    assert not ok and list(saved["steps"]) == ["schedules", "dryrun", "third"]
    s, d, t = (saved["steps"][k] for k in ("schedules", "dryrun", "third"))
    assert s["status"] == "failed" and s["error"] == "RuntimeError: planted failure" and "broken" in s["traceback"]
    assert d["status"] == "failed" and d["result"] == so_far and d["error"].endswith("not completed: 02_x")
    assert t == {"status": "ok", "result": {"n": None}, "wall_seconds": t["wall_seconds"]}  # NaN: null in JSON
    assert "Schedules: **failed**: RuntimeError: planted failure" in md and "| 02_x | 2.0 | failed |" in md


def test_the_notebooks_see_the_stand_ins_and_only_the_asked_device(tmp_path):
    env = gpu_check.notebook_environment("cpu", tmp_path / "data", tmp_path / "cache")
    assert env["IMAGENET_ROOT"] == str(tmp_path / "data" / "imagenet") and env["TASKREL_DATA_ROOT"] == str(
        tmp_path / "data")
    assert env["TASKREL_CACHE"] == str(tmp_path / "cache") and env["HF_HUB_OFFLINE"] == "1"
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["PYTHONPATH"].split(":")[0] == str(gpu_check.ROOT)
    assert gpu_check.notebook_environment("cuda:1", tmp_path, tmp_path)["CUDA_VISIBLE_DEVICES"] == "1"
