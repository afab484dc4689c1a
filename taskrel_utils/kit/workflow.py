"""The Makefile's main targets without make: ``python -m taskrel_utils setup|reproduce|test|lab``.

Windows has no ``make``, and a virtual environment keeps its programs in ``Scripts\\`` there and in
``bin/`` elsewhere (:func:`venv_python` asks :mod:`sysconfig`). The commands are the Makefile's:
``tests/hygiene/test_makefile_commands.py`` compares these lists with what ``make -n`` prints, so
the two cannot drift apart.

Standard library only: ``setup`` runs before the environment exists, under whatever Python the
learner has. It refuses a Python older than :data:`MIN_PYTHON` with a message (the pinned numpy,
scipy, pandas and four more have no 3.10 release).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

VENV = ".venv"
REQUIREMENTS = "requirements.txt"
PROFILE = "mini"
#: the oldest Python the pins install on (numpy 2.4.6, scipy 1.17.1, pandas 3.1.1 and four more have no 3.10 release)
MIN_PYTHON = (3, 11)
#: the Makefile's ``$(STAMP)``: written after a complete install, older than its inputs means reinstall
STAMP = ".taskrel-installed"
#: what a change of reinstalls, besides the chosen requirements file (the Makefile's prerequisites of the stamp)
INSTALL_INPUTS = ("requirements.txt", "pyproject.toml")
KERNEL = ("--name", "taskrel", "--display-name", "Python (taskrel kit)")
#: ``make test``: everything but the browser test and the paper dry run, on as many pytest workers as CPUs
TEST_ARGS = ("-n", "auto", "-m", "not browser and not dryrun")
TEST_ENV = {"HF_HUB_OFFLINE": "1"}
#: JupyterLab settings the kit installs into the environment (``lab-settings``): no "get notified
#: about news?" pop-up and no update check. ``--LabApp.news_url=None`` does not stop the question:
#: the frontend asks for consent before it fetches anything, until ``fetchNews`` is set.
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
#: the file it goes to, under the JupyterLab application's settings folder (``overrides.d`` is read
#: before ``overrides.json``, which stays the user's)
LAB_OVERRIDES_FILE = Path("overrides.d") / "taskrel-kit.json"


def scripts_dir(venv, os_name: str | None = None) -> Path:
    """The folder of a virtual environment's programs: ``Scripts`` on Windows (``os_name`` "nt"), ``bin``
    elsewhere, as :mod:`sysconfig`'s venv schemes (Python 3.11+) name it."""
    nt = (os_name or os.name) == "nt"
    scheme = "nt_venv" if nt else "posix_venv"
    if scheme in sysconfig.get_scheme_names():
        return Path(sysconfig.get_path("scripts", scheme, vars={"base": str(venv), "platbase": str(venv)}))
    return Path(venv) / ("Scripts" if nt else "bin")  # Python 3.10, which setup refuses anyway


def venv_python(venv=VENV, os_name: str | None = None) -> Path:
    """The Python of the virtual environment ``venv`` (the Makefile's ``$(PY)``)."""
    nt = (os_name or os.name) == "nt"
    return scripts_dir(venv, os_name) / ("python.exe" if nt else "python")


def is_root() -> bool:
    """JupyterLab refuses to start as root without ``--allow-root`` (Docker, cloud notebooks); Windows has no root."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def create_venv_command(python, venv=VENV) -> list[str]:
    return [str(python), "-m", "venv", str(venv)]


def setup_commands(py, requirements=REQUIREMENTS) -> list[list[str]]:
    """``make setup`` once the environment exists: the pins, the kit (editable), the kernel, the lab settings."""
    py = str(py)
    return [[py, "-m", "pip", "install", "-r", str(requirements)],
            [py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", "."],
            [py, "-m", "ipykernel", "install", "--sys-prefix", *KERNEL],
            lab_settings_command(py)]


def lab_settings_command(py) -> list[str]:
    return [str(py), "-m", "taskrel_utils", "lab-settings"]


def reproduce_command(py, profile=PROFILE) -> list[str]:
    return [str(py), "-m", "taskrel_utils", "run", "--profile", str(profile)]


def test_command(py) -> list[str]:
    return [str(py), "-m", "pytest", *TEST_ARGS]


def student_command(py, out="student") -> list[str]:
    return [str(py), "-m", "taskrel_utils", "student", "--out", str(out)]


def lab_commands(py, student: bool = False, root: bool | None = None) -> list[list[str]]:
    """``make lab`` (``make lab STUDENT=1``: the student copies, rebuilt into ``student/`` first)."""
    root = is_root() if root is None else root
    commands = [student_command(py)] if student else []
    folder = "student/" if student else "notebooks/"
    commands.append([str(py), "-m", "jupyter", "lab", folder, *(["--allow-root"] if root else [])])
    return commands


def installed(venv, requirements=REQUIREMENTS, root=None) -> bool:
    """As make decides: the stamp exists and is newer than the requirements files and pyproject.toml."""
    root = Path(root) if root is not None else Path.cwd()
    stamp = root / venv / STAMP
    if not (venv_python(root / venv).exists() and stamp.exists()):
        return False
    inputs = [root / name for name in (*INSTALL_INPUTS, requirements)]
    return all(stamp.stat().st_mtime >= p.stat().st_mtime for p in inputs if p.exists())


def lab_settings_path(prefix=None) -> Path:
    """Where :data:`LAB_OVERRIDES` goes: ``<app dir>/settings/overrides.d/taskrel-kit.json`` of the
    JupyterLab of this Python (``sys.prefix/share/jupyter/lab``, or ``JUPYTERLAB_DIR``), or of ``prefix``."""
    if prefix is not None:
        app_dir = Path(prefix) / "share" / "jupyter" / "lab"
    else:
        try:
            from jupyterlab.commands import get_app_dir
            app_dir = Path(get_app_dir())
        except ImportError:
            app_dir = Path(sys.prefix) / "share" / "jupyter" / "lab"
    return app_dir / "settings" / LAB_OVERRIDES_FILE


def write_lab_settings(prefix=None) -> Path:
    path = lab_settings_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LAB_OVERRIDES, indent=2) + "\n", encoding="utf-8")
    return path


class _Runner:
    """Runs commands as make does: each one echoed first, the first failure ends the command with its exit status;
    ``dry_run`` only echoes (``make -n``)."""

    def __init__(self, cwd, dry_run: bool = False):
        self.cwd, self.dry_run = Path(cwd), dry_run

    def __call__(self, command, env: dict | None = None) -> None:
        words = [f"{k}={v}" for k, v in (env or {}).items()] + [str(a) for a in command]
        print(subprocess.list2cmdline(words) if os.name == "nt" else shlex.join(words), flush=True)
        if self.dry_run:
            return
        program = Path(command[0])
        if not program.is_absolute() and len(program.parts) > 1:  # .venv/bin/python: of the kit, not of the caller's cwd
            program = self.cwd / program
        rc = subprocess.call([str(program), *map(str, command[1:])], cwd=self.cwd, env=dict(os.environ, **(env or {})))
        if rc:
            raise SystemExit(rc)


def setup(venv=VENV, requirements=REQUIREMENTS, python=None, root=None, dry_run: bool = False) -> Path:
    """``make setup``: create ``venv`` when it has no Python, install when the stamp is missing or older
    than its inputs (as make decides), then the lab settings (cheap, every time: older environments get
    them too). Returns the environment's Python, relative to the kit's folder."""
    root = Path(root) if root is not None else _kit_root()
    run = _Runner(root, dry_run)
    if not (root / requirements).exists():
        raise SystemExit(f"error: no {requirements} in {root}")
    py = venv_python(venv)
    if not (root / py).exists():
        if python is None and sys.version_info[:2] < MIN_PYTHON:
            raise SystemExit(f"error: the kit's pinned packages need Python {'.'.join(map(str, MIN_PYTHON))} or "
                             f"newer (numpy 2.4.6, scipy 1.17.1, pandas 3.1.1, ...); this is {sys.version.split()[0]}. "
                             f"Run the command with a newer Python (Windows: py -3.11 -m taskrel_utils setup)")
        run(create_venv_command(python or sys.executable, venv))
    if installed(venv, requirements, root):
        print(f"{venv} is up to date with {requirements}")
    else:
        for command in setup_commands(py, requirements)[:-1]:
            run(command)
        if not dry_run:
            (root / venv / STAMP).touch()
    run(lab_settings_command(py))
    return py


def reproduce(profile=PROFILE, **setup_options) -> None:
    """``make reproduce``: every notebook on ``profile`` into runs/<profile>, with the HTML reports."""
    py = setup(**setup_options)
    _runner(setup_options)(reproduce_command(py, profile))


def test(**setup_options) -> None:
    """``make test``: offline, every test but the browser test and the paper dry run."""
    py = setup(**setup_options)
    _runner(setup_options)(test_command(py), env=TEST_ENV)


def lab(student: bool = False, **setup_options) -> None:
    """``make lab`` (``student``: ``make lab STUDENT=1``)."""
    py = setup(**setup_options)
    run = _runner(setup_options)
    for command in lab_commands(py, student):
        run(command)


def _runner(options) -> _Runner:
    root = options.get("root")
    return _Runner(Path(root) if root is not None else _kit_root(), options.get("dry_run", False))


def _kit_root() -> Path:
    from ..core.paths import KIT_ROOT
    return KIT_ROOT
