"""The Makefile and ``python -m taskrel_utils setup|reproduce|test|lab`` (for machines without make) run
the same commands: what ``make -n -B`` prints is compared with the lists :mod:`taskrel_utils.kit.workflow`
builds, so a change to one without the other fails here."""
import os
import shlex
import shutil
import subprocess

import pytest

from taskrel_utils.core.paths import KIT_ROOT
from taskrel_utils.kit import workflow

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

PY = ".venv/bin/python"  # the Makefile's $(PY) with its default VENV


def make_plan(target, *variables, uid="1000", tmp_path=None):
    """``make -n -B target`` (every recipe, as on a fresh clone) as ``(env, argv)`` pairs: shell comments
    dropped, ``test -x PY || CMD`` read as CMD, ``touch`` of the stamp left out (setup writes it itself)."""
    # run under `make test`, the outer make's variables would make this one a sub-make
    # ("make[1]: Entering directory" lines, the outer -j/-n flags)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    if tmp_path is not None:  # what `id -u` answers, first on the PATH
        fake_id = tmp_path / "id"
        fake_id.write_text(f"#!/bin/sh\necho {uid}\n")
        fake_id.chmod(0o755)
        env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    out = subprocess.run(["make", "--no-print-directory", "-n", "-B", target, "PYTHON=python3", *variables], cwd=KIT_ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    plan = []
    for line in out.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] == "touch":
            continue
        if "||" in words:
            i = words.index("||")
            assert words[:i] == ["test", "-x", PY], line
            words = words[i + 1:]
        assigned = {}
        while "=" in words[0] and not words[0].startswith("-"):
            key, value = words.pop(0).split("=", 1)
            assigned[key] = value
        plan.append((assigned, words))
    return plan


def python_plan(*commands, requirements=workflow.REQUIREMENTS, env=None):
    setup = [workflow.create_venv_command("python3", workflow.VENV), *workflow.setup_commands(PY, requirements)]
    return [({}, c) for c in setup] + [(env or {}, c) for c in commands]


def test_the_python_side_uses_the_makefiles_venv_python():
    assert str(workflow.venv_python(workflow.VENV, "posix")) == PY


@pytest.mark.parametrize("requirements", ["requirements.txt", "requirements-cpu.txt"])
def test_setup(requirements):
    assert make_plan("setup", f"REQUIREMENTS={requirements}") == python_plan(requirements=requirements)


@pytest.mark.parametrize("profile", ["mini", "smoke"])
def test_reproduce(profile):
    extra = [] if profile == workflow.PROFILE else [f"PROFILE={profile}"]
    assert make_plan("reproduce", *extra) == python_plan(workflow.reproduce_command(PY, profile))


def test_test():
    assert make_plan("test") == python_plan(workflow.test_command(PY), env=workflow.TEST_ENV)


@pytest.mark.parametrize("student", [False, True])
@pytest.mark.parametrize("uid, root", [("0", True), ("1000", False)])
def test_lab(tmp_path, student, uid, root):
    extra = ["STUDENT=1"] if student else []
    assert (make_plan("lab", *extra, uid=uid, tmp_path=tmp_path)
            == python_plan(*workflow.lab_commands(PY, student=student, root=root)))


def test_student_target_writes_the_copies_lab_opens():
    assert make_plan("student")[-1] == ({}, workflow.student_command(PY))


def test_lab_settings_are_part_of_setup_in_both():
    """An environment installed before the settings existed gets them at the next make setup/lab:
    the settings file is a target of its own, not a step behind the install stamp."""
    out = subprocess.run(["make", "-n", "-p", "setup"], cwd=KIT_ROOT, capture_output=True, text=True).stdout
    (rule,) = [line for line in out.splitlines() if line.startswith("setup:")]
    assert ".venv/share/jupyter/lab/settings/" + workflow.LAB_OVERRIDES_FILE.as_posix() in rule
    assert make_plan("setup")[-1] == ({}, workflow.lab_settings_command(PY))
