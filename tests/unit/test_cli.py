"""The command line: valid names listed, bad input answered with a message and exit code 2."""
import pytest

from taskrel_utils.kit import pipeline
from taskrel_utils.kit.cli import main


def test_list_profiles_and_tasks(capsys):
    assert main(["list", "profiles"]) == 0
    assert capsys.readouterr().out.split() == ["mini", "paper", "paper-dryrun", "paper-dryrun-full", "paper-original", "paper-published", "smoke"]
    assert main(["list", "tasks"]) == 0
    assert {"mnist5k", "uci-digits", "fashion", "pets", "imagenet", "folder"} <= set(capsys.readouterr().out.split())


def test_unknown_profile_exits_2_with_valid_names(capsys):
    assert main(["run", "--profile", "tiny"]) == 2
    assert "valid profiles are: mini, paper, paper-dryrun, paper-dryrun-full, paper-original, paper-published, smoke" in capsys.readouterr().err


def test_unknown_parameter_exits_2(capsys, tmp_path):
    assert main(["run", "--profile", "smoke", "--run-dir", str(tmp_path), "-p", "lerning_rate", "1"]) == 2
    assert "lerning_rate" in capsys.readouterr().err


def test_unknown_notebook_selection(capsys):
    assert main(["run", "--profile", "smoke", "--notebooks", "99"]) == 2
    assert "no notebook matches '99'" in capsys.readouterr().err


def test_build_mini_refuses_a_folder_without_the_raw_files(capsys, tmp_path):
    assert main(["data", "build-mini", "--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture
def no_notebook_runs(monkeypatch):
    def execute(path, *args):
        raise AssertionError(f"{path.name} started: a bad parameter must be refused before any notebook runs")
    monkeypatch.setattr(pipeline, "_execute", execute)


@pytest.mark.parametrize("name, value, message", [
    ("targets", "[uci-digits", r"-p targets '\[uci-digits': not a YAML value .*brackets closed"),
    ("targets", "3", "targets must be a non-empty list of names such as \\[a, b\\], got 3"),  # crashed notebook 01
    ("encoders", "[lenet, 3]", "encoders must be a non-empty list of names"),
    ("seed", "-1", "seed must be an integer >= 0, got -1"),
    ("hand_steps", "five", "hand_steps = 'five' does not fit 02_fit_transformations.ipynb, whose default is 5: pass "
                           "an integer"),
    ("fractions", "0.5", "fractions = 0.5 does not fit 05_pseudo_labels.ipynb.*pass a list"),
    ("recompute_ground_truth", "1", "pass true or false"),
])
def test_a_bad_parameter_value_exits_2_before_any_notebook_runs(capsys, tmp_path, no_notebook_runs, name, value,
                                                                message):
    assert main(["run", "--profile", "smoke", "--run-dir", str(tmp_path), "-p", name, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert __import__("re").search(message, err), err
