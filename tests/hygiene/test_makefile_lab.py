"""``make lab`` starts JupyterLab as root too (Docker, cloud notebooks): ``--allow-root`` when, and
only when, ``id -u`` is 0; ``make lab STUDENT=1`` opens fresh student copies."""
import os
import shutil
import subprocess

import pytest

from taskrel_utils.core.paths import KIT_ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("uid, allow_root", [("0", True), ("1000", False)])
def test_make_lab_passes_allow_root_only_as_root(tmp_path, uid, allow_root):
    fake_id = tmp_path / "id"  # what `id -u` answers, first on the PATH
    fake_id.write_text(f"#!/bin/sh\necho {uid}\n")
    fake_id.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    plan = subprocess.run(["make", "-n", "lab"], cwd=KIT_ROOT, env=env, capture_output=True, text=True, check=True)
    (lab,) = [line for line in plan.stdout.splitlines() if "jupyter lab" in line]
    assert (lab.split()[-1] == "--allow-root") if allow_root else ("--allow-root" not in lab)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("variables, folder", [([], "notebooks/"), (["STUDENT=1"], "student/"), (["STUDENT=0"], "notebooks/")])
def test_make_lab_student_opens_fresh_student_copies(variables, folder):
    """``make lab STUDENT=1``: the teacher's view of what learners get, the copies rebuilt first (a stale
    student/ would show last week's exercises); plain ``make lab`` builds none."""
    plan = subprocess.run(["make", "-n", "-B", "lab", *variables], cwd=KIT_ROOT, capture_output=True, text=True,
                          check=True).stdout.splitlines()
    (lab,) = [i for i, line in enumerate(plan) if "jupyter lab" in line]
    assert plan[lab].split()[4] == folder
    builds = [i for i, line in enumerate(plan) if "taskrel_utils student" in line]
    if folder == "student/":
        assert builds == [lab - 1] and plan[lab - 1].split()[-2:] == ["--out", "student"]
    else:
        assert builds == []
