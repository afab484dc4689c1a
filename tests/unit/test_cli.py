"""The command line: valid names listed, bad input answered with a message and exit code 2."""
from taskrel_utils.__main__ import main


def test_list_profiles_and_tasks(capsys):
    assert main(["list", "profiles"]) == 0
    assert capsys.readouterr().out.split() == ["mini", "paper", "paper-dryrun", "paper-dryrun-full", "paper-published", "smoke"]
    assert main(["list", "tasks"]) == 0
    assert {"mnist5k", "uci-digits", "fashion", "pets", "imagenet", "folder"} <= set(capsys.readouterr().out.split())


def test_unknown_profile_exits_2_with_valid_names(capsys):
    assert main(["run", "--profile", "tiny"]) == 2
    assert "valid profiles are: mini, paper, paper-dryrun, paper-dryrun-full, paper-published, smoke" in capsys.readouterr().err


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
