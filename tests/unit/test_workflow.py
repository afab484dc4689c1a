"""``python -m taskrel_utils setup|reproduce|test|lab``: the Makefile's targets without make (Windows).
The commands themselves are compared with the Makefile in tests/hygiene/test_makefile_commands.py."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from taskrel_utils.core.paths import KIT_ROOT
from taskrel_utils.kit import workflow
from taskrel_utils.kit.cli import main


@pytest.mark.parametrize("os_name, python", [("posix", ".venv/bin/python"), ("nt", ".venv/Scripts/python.exe")])
def test_the_venv_python_of_each_system(os_name, python):
    assert workflow.venv_python(".venv", os_name) == Path(python)
    assert workflow.scripts_dir(Path("/x/env"), os_name) == Path("/x/env") / Path(python).parent.name


def test_the_venv_python_is_the_one_venv_creates(tmp_path):
    """What sysconfig's scheme names is where ``python -m venv`` puts its Python on this system."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "env")], check=True)
    assert workflow.venv_python(tmp_path / "env").exists()


def _checkout(tmp_path, venv_python=True):
    for name in ("requirements.txt", "requirements-cpu.txt", "pyproject.toml"):
        (tmp_path / name).write_text("")
    if venv_python:
        py = tmp_path / workflow.venv_python(".venv")
        py.parent.mkdir(parents=True)
        py.write_text("")
    return tmp_path


def test_installed_as_make_decides(tmp_path):
    root = _checkout(tmp_path)
    assert not workflow.installed(".venv", root=root)  # no stamp
    stamp = root / ".venv" / workflow.STAMP
    stamp.touch()
    os.utime(stamp, (2_000, 2_000))
    for name in ("requirements.txt", "requirements-cpu.txt", "pyproject.toml"):
        os.utime(root / name, (1_000, 1_000))
    assert workflow.installed(".venv", root=root)
    os.utime(root / "requirements-cpu.txt", (3_000, 3_000))  # only counts when it is the one installed
    assert workflow.installed(".venv", root=root)
    assert not workflow.installed(".venv", "requirements-cpu.txt", root=root)
    os.utime(root / "pyproject.toml", (3_000, 3_000))
    assert not workflow.installed(".venv", root=root)


def test_setup_on_a_fresh_clone_creates_installs_and_registers(tmp_path, capsys):
    root = _checkout(tmp_path, venv_python=False)
    workflow.setup(requirements="requirements-cpu.txt", python="python3", root=root, dry_run=True)
    py = str(workflow.venv_python(".venv"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "python3 -m venv .venv"
    assert lines[1] == f"{py} -m pip install -r requirements-cpu.txt"
    assert lines[-2].startswith(f"{py} -m ipykernel install --sys-prefix --name taskrel")
    assert lines[-1] == f"{py} -m taskrel_utils lab-settings"
    assert not (root / ".venv" / workflow.STAMP).exists()  # a dry run writes nothing


def test_setup_when_installed_only_refreshes_the_lab_settings(tmp_path, capsys):
    root = _checkout(tmp_path)
    stamp = root / ".venv" / workflow.STAMP
    stamp.touch()
    workflow.setup(root=root, dry_run=True)
    out = capsys.readouterr().out.splitlines()
    assert out == [".venv is up to date with requirements.txt", f"{workflow.venv_python('.venv')} -m taskrel_utils lab-settings"]


def test_setup_refuses_an_old_python_before_creating_anything(tmp_path, monkeypatch):
    root = _checkout(tmp_path, venv_python=False)
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    with pytest.raises(SystemExit, match="need Python 3.11 or newer.*numpy 2.4.6"):
        workflow.setup(root=root)
    assert not (root / ".venv").exists()


def test_the_runner_stops_at_the_first_failure_with_its_status(tmp_path, capsys):
    run = workflow._Runner(tmp_path)
    run([sys.executable, "-c", "import os; open('ran', 'w').write(os.environ['X'])"], env={"X": "1"})
    assert (tmp_path / "ran").read_text() == "1"
    with pytest.raises(SystemExit) as failed:
        run([sys.executable, "-c", "raise SystemExit(3)"])
    assert failed.value.code == 3
    assert capsys.readouterr().out.splitlines()[0].startswith("X=1 ")


def test_the_runner_finds_the_venv_python_in_the_kit_not_in_the_callers_folder(tmp_path, monkeypatch):
    """``python -m taskrel_utils test`` from another folder still runs the kit's .venv."""
    script = tmp_path / "kit" / "bin" / "tool"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\npwd > where\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    if os.name == "nt":
        pytest.skip("a shell script")
    workflow._Runner(tmp_path / "kit")(["bin/tool"])
    assert (tmp_path / "kit" / "where").read_text().strip() == str(tmp_path / "kit")


@pytest.mark.parametrize("argv, expected", [
    (["test", "-n"], [["HF_HUB_OFFLINE=1", "-m", "pytest", "-n", "auto", "-m", "not browser and not dryrun"]]),
    (["reproduce", "-n", "--profile", "smoke"], [["-m", "taskrel_utils", "run", "--profile", "smoke"]]),
    (["lab", "-n", "--student"], [["-m", "taskrel_utils", "student", "--out", "student"], ["-m", "jupyter", "lab", "student/"]]),
])
def test_each_command_runs_setup_then_its_own(tmp_path, capsys, argv, expected, monkeypatch):
    root = _checkout(tmp_path)
    (root / ".venv" / workflow.STAMP).touch()
    monkeypatch.setattr(workflow, "_kit_root", lambda: root)
    monkeypatch.setattr(workflow, "is_root", lambda: False)
    assert main([*argv, "--venv", ".venv"]) == 0
    py = str(workflow.venv_python(".venv"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [".venv is up to date with requirements.txt", f"{py} -m taskrel_utils lab-settings"]
    got = [shlex.split(line) for line in lines[2:]]
    assert [[w for w in words if w != py] for words in got] == expected


@pytest.mark.parametrize("command", ["setup", "reproduce", "test", "lab", "lab-settings"])
def test_help_of_each_command_in_a_python_without_the_kits_packages(command, tmp_path):
    """A real ``python -m taskrel_utils <command> --help`` under a Python with nothing installed (a
    learner's, before setup): the command line imports only the standard library on that path."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    done = subprocess.run([str(workflow.venv_python(bare)), "-m", "taskrel_utils", command, "--help"], cwd=KIT_ROOT,
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(KIT_ROOT)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m taskrel_utils {command}")
    if command != "lab-settings":
        dry = subprocess.run([str(workflow.venv_python(bare)), "-m", "taskrel_utils", command, "-n",
                              "--venv", str(tmp_path / "new")], cwd=KIT_ROOT, capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(KIT_ROOT)))
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.splitlines()[0].endswith(f"-m venv {tmp_path / 'new'}")


def test_lab_settings_turn_the_news_question_off_in_jupyterlab(tmp_path, capsys):
    """The settings file is where JupyterLab's server reads overrides, and it changes the defaults the
    frontend gets: fetchNews "false" (no "get notified about news?" question), no update check."""
    pytest.importorskip("jupyterlab")
    from jupyterlab.commands import get_app_dir
    from jupyterlab_server.settings_utils import get_settings

    assert main(["lab-settings", "--prefix", str(tmp_path)]) == 0
    path = Path(capsys.readouterr().out.split("wrote ", 1)[1].strip())
    assert path == tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.d" / "taskrel-kit.json"
    assert json.loads(path.read_text()) == workflow.LAB_OVERRIDES
    schemas = str(Path(get_app_dir()) / "schemas")
    plugin = "@jupyterlab/apputils-extension:notification"

    def defaults(app_settings_dir):
        found, _ = get_settings(str(app_settings_dir), schemas, str(tmp_path / "user"), plugin)
        return {k: found["schema"]["properties"][k]["default"] for k in ("fetchNews", "checkForUpdates")}

    assert defaults(tmp_path / "elsewhere") == {"fetchNews": "none", "checkForUpdates": True}  # JupyterLab asks
    assert defaults(path.parent.parent) == {"fetchNews": "false", "checkForUpdates": False}


def test_lab_settings_default_to_this_pythons_jupyterlab(monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "app"))
    pytest.importorskip("jupyterlab")
    assert workflow.lab_settings_path() == tmp_path / "app" / "settings" / workflow.LAB_OVERRIDES_FILE
