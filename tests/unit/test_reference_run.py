import json

import pytest

from taskrel_utils.kit import cli
from taskrel_utils.study import reference_run
from taskrel_utils.core.errors import MissingDataError, TaskrelError


def _fake_run(root, value=1.0, r=-0.5):
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    pairs = [{"encoder": "e", "target": "t", "value": value, "reweighted_reference_loss": 0.5,
              "label_mismatch": 0.1, "distribution_mismatch": value - 0.6}]
    (root / "metrics" / "03_bound_decomposition.json").write_text(json.dumps({"pairs": pairs}))
    m4 = {"profile": "smoke", "headline": {"r": r}, "pearson": {"t": {"Ours (TR)": r, "LogME": None}}}
    (root / "metrics" / "04_finetune_correlation.json").write_text(json.dumps(m4))
    return root


def test_a_run_equals_its_own_record_and_drifts_within_the_tolerance(tmp_path):
    run = _fake_run(tmp_path / "run")
    ref = reference_run.record(run, tmp_path / "ref.json")
    table = reference_run.compare(run, ref)
    assert table.ok.all() and len(table) == 4 + 1 + 2
    tol = reference_run.TOLERANCE
    inside = tol["value"]["atol"] * 0.9
    assert reference_run.compare(_fake_run(tmp_path / "near", value=1.0 + inside), ref).ok.all()
    far = reference_run.compare(_fake_run(tmp_path / "far", value=1.5, r=-0.1), ref).set_index("metric")
    assert not far.loc["03 value e/t", "ok"] and not far.loc["04 headline r", "ok"]
    assert far.loc["03 label_mismatch e/t", "ok"]


def test_missing_metrics_and_references_are_named(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    ref = reference_run.record(run, tmp_path / "ref.json")
    data = json.loads(ref.read_text())
    data["metrics"]["03 value other/t"] = {"kind": "value", "number": 1.0}
    ref.write_text(json.dumps(data))
    table = reference_run.compare(run, ref).set_index("metric")
    assert not table.loc["03 value other/t", "ok"]
    assert cli.main(["check-run", str(run), "--reference", str(ref)]) == 1
    assert "outside it" in capsys.readouterr().out
    with pytest.raises(MissingDataError, match="--record"):
        reference_run.compare(run, tmp_path / "none.json")
    with pytest.raises(MissingDataError, match="run the notebooks first"):
        reference_run.key_metrics(tmp_path / "empty")
    data["profile"] = "mini"
    ref.write_text(json.dumps(data))
    with pytest.raises(TaskrelError, match="profile 'mini'"):
        reference_run.compare(run, ref)
