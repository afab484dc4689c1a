"""Notebook 01 in JupyterLab, driven by headless Chromium: "Run All" on the smoke profile, then an explorer.

A local ``jupyter lab`` (free port, random token, Jupyter config, data, runtime and settings folders
of its own under ``tmp_path``) serves a copy of ``notebooks/01_encoder_features.ipynb`` whose
parameters are those of the smoke profile, set the way papermill sets them
(``notebooks/params/smoke.yaml``, the run directory moved under ``tmp_path``). Chromium opens it,
runs every cell from the Run menu and saves it; the test asserts that every code cell ran without an
error output, then changes the projection explorer's encoder and asserts that its picture changes.

The lab's kernel is a real frontend's kernel: ``TASKREL_HEADLESS`` (which makes the explorers draw a
picture instead of widgets, for papermill runs) is removed from its environment.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` package of
``requirements-browser.txt``, which ``make test-browser`` installs (no browser download: it drives
the system's Chromium). Without them it skips.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from taskrel_utils.kit import pipeline

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "notebooks" / "01_encoder_features.ipynb"
CHROMIUM = os.environ.get("TASKREL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]  # containers often have a small /dev/shm
#: JupyterLab user settings: every cell in the DOM (no windowing), no news or update checks
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}
#: seconds: the server to answer, the notebook to run (smoke profile, cold cache), one redraw
SERVER_TIMEOUT, RUN_TIMEOUT, REDRAW_TIMEOUT = 60, 150, 30


def _need_browser():
    """Skip (one line, how to get it) when Chromium or playwright is missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set TASKREL_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed: make test-browser installs it (requirements-browser.txt; it uses the system Chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernel_name(data_dir: Path) -> str:
    """The kit's kernel ("taskrel", installed into the venv by ``make setup``) as the isolated lab
    sees it, else the venv's ``python3`` (like ``pipeline.run_notebooks``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager(data_dir=str(data_dir)).find_kernel_specs()
    return pipeline.KERNEL_NAME if pipeline.KERNEL_NAME in specs else "python3"


def _smoke_copy(root: Path, run_dir: Path, kernel: str) -> Path:
    """Notebook 01 with the smoke profile's parameters that it declares injected after its
    parameters cell (papermill's way: an ``injected-parameters`` cell), no outputs, and ``kernel``
    as its kernel."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    params = {**pipeline.profile_parameters("smoke"), "run_dir": str(run_dir)}
    params = pipeline.parameters_for(pipeline.notebook_parameters(NOTEBOOK), params)
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOK)), params, kernel_name=kernel)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("papermill", None)
    path = root / NOTEBOOK.name
    nbformat.write(nb, path)
    return path


def _lab_environment(base: Path) -> dict:
    """The environment of the lab and its kernels: Jupyter folders under ``base``, the kit of this
    checkout first on the path, an interactive matplotlib backend, and no headless switch."""
    env = dict(os.environ)
    for name in ("TASKREL_HEADLESS", "MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env.pop(name, None)
    folders = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
               "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
               "IPYTHONDIR": "ipython"}
    for name, sub in folders.items():
        env[name] = str(base / sub)
        (base / sub).mkdir(parents=True, exist_ok=True)
    for rel, values in LAB_SETTINGS.items():
        path = base / "settings" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return env


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer within {SERVER_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def _descendants(pid: int) -> list:
    import psutil

    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).children(recursive=True)
    return []


def _stop(proc: subprocess.Popen, url: str) -> None:
    """Shut the server down with its kernels (the kernels run in sessions of their own), then kill
    whatever of this server's process tree is left."""
    import psutil

    children = _descendants(proc.pid)  # before the server exits and they lose their parent
    with contextlib.suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=5).close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    children += _descendants(proc.pid)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(children, timeout=10)


@dataclass(frozen=True)
class Lab:
    """A running lab: its address, its token and the notebook it serves."""

    base: str
    token: str
    notebook: Path

    @property
    def url(self) -> str:
        """The notebook in JupyterLab."""
        return f"{self.base}/lab/tree/{self.notebook.name}?token={self.token}"

    def api(self, path: str) -> str:
        """A URL of the server's REST API (``status``, ``kernels``, ``shutdown``)."""
        return f"{self.base}/api/{path}?token={self.token}"


@pytest.fixture
def lab(tmp_path):
    """A running ``jupyter lab`` serving a smoke-profile copy of notebook 01 (a :class:`Lab`).
    The server, its kernels and everything they started are killed at the end, pass or fail."""
    _need_browser()
    root = tmp_path / "lab"
    root.mkdir()
    env = _lab_environment(tmp_path / "jupyter")
    notebook = _smoke_copy(root, tmp_path / "run", _kernel_name(tmp_path / "jupyter" / "data"))
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.root_dir={root}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    running = Lab(f"http://127.0.0.1:{port}", token, notebook)
    try:
        _wait_for_server(running.api("status"), proc, log)
        yield running
    finally:
        _stop(proc, running.api("shutdown"))


@pytest.fixture
def page(tmp_path):
    """A page of headless Chromium (the system's, driven by playwright) with an empty profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


#: JavaScript: true once Run All has started (the first cell has a count) and no cell waits or runs
#: ("[*]"); after an error, Lab clears the prompts of the cells it did not run
ALL_CELLS_DONE = """n => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
  return prompts.length === n && /\\[\\d+\\]/.test(prompts[0]) && !prompts.some(p => p.includes('*'));
}"""


#: JavaScript: the number of code cells shown and whether the status bar's kernel reads "Idle"
NOTEBOOK_SHOWN = """n => document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === n
  && /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent ?? '')"""


def _wait_until_ready(page, lab: "Lab", code_cells: int) -> None:
    """Wait for every code cell on the page and for the notebook's kernel to be started, connected
    to this page and idle (Run All before that would ask the user to select a kernel)."""
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        with urllib.request.urlopen(lab.api("kernels"), timeout=5) as response:
            kernels = json.load(response)
        if any(k["execution_state"] == "idle" and k["connections"] > 0 for k in kernels):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no kernel of the notebook became idle within {SERVER_TIMEOUT} s: {kernels}")
    page.wait_for_function(NOTEBOOK_SHOWN, arg=code_cells, timeout=SERVER_TIMEOUT * 1000)


def _menu(page, menu: str, command: str) -> None:
    """Click a command of a menu of JupyterLab's menu bar."""
    page.locator(".lm-MenuBar-item", has_text=menu).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()


def _save(page, notebook: Path):
    """Save the notebook from the File menu; the notebook as written to disk."""
    before = notebook.stat().st_mtime_ns
    _menu(page, "File", "docmanager:save")
    deadline = time.monotonic() + 10
    while notebook.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "JupyterLab did not save the notebook within 10 s"
        time.sleep(0.2)
    return nbformat.read(notebook, as_version=4)


#: JavaScript: the ``src`` of the picture in the explorer's output area (a PNG data URL), or null
EXPLORER_PICTURE = "() => document.querySelector('.widget-vbox .widget-output img')?.src ?? null"


def test_notebook_01_runs_in_jupyterlab_and_its_explorer_responds(lab, page, tmp_path):
    notebook = lab.notebook
    code_cells = sum(c.cell_type == "code" for c in nbformat.read(notebook, as_version=4).cells)
    started = time.monotonic()
    page.goto(lab.url)
    _wait_until_ready(page, lab, code_cells)
    _menu(page, "Run", "runmenu:run-all")
    page.wait_for_function(ALL_CELLS_DONE, arg=code_cells, timeout=RUN_TIMEOUT * 1000, polling=1000)
    saved = _save(page, notebook)
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(saved.cells)
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, "cells failed in JupyterLab:\n" + "\n".join(errors)
    counts = [c.execution_count for c in saved.cells if c.cell_type == "code"]
    assert all(counts) and counts == sorted(counts), f"not every cell ran, in order: {counts}"
    metrics = json.loads((tmp_path / "run" / "metrics" / "01_encoder_features.json").read_text())
    assert metrics["profile"] == "smoke"  # the injected parameters reached the kernel

    # the projection explorer: a dropdown per choice over a picture; a new encoder redraws the picture
    explorer = page.locator(".widget-vbox").filter(has=page.locator(".widget-dropdown")).first
    explorer.scroll_into_view_if_needed()
    encoder = explorer.locator(".widget-dropdown select").first
    before, options = page.evaluate(EXPLORER_PICTURE), encoder.locator("option").all_inner_texts()
    assert before and before.startswith("data:image/png"), "the explorer shows no picture"
    assert len(options) > 1, options
    encoder.select_option(label=next(o for o in options if o != encoder.input_value()))
    page.wait_for_function(f"old => ({EXPLORER_PICTURE})() !== old", arg=before, timeout=REDRAW_TIMEOUT * 1000)
    page.screenshot(path=str(tmp_path / "lab-explorer.png"))
    assert page.evaluate(EXPLORER_PICTURE).startswith("data:image/png")
    print(f"notebook 01 ran and its explorer redrew in {time.monotonic() - started:.0f} s in JupyterLab;"
          f" screenshot: {tmp_path / 'lab-explorer.png'}")
