"""The JupyterLab settings that ``make setup`` installs (``python -m taskrel_utils lab-settings``) stop
the "Would you like to get notified about official Jupyter news?" question in a real JupyterLab,
drawn by headless Chromium; without them the question shows, even with ``--LabApp.news_url=None``
(the self-check that the page was read far enough to show it). Needs only Chromium, not playwright."""
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from taskrel_utils.kit import workflow

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TASKREL_CHROMIUM", "/usr/bin/chromium")
QUESTION = "notified about official Jupyter news"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_text(tmp_path, name, app_settings_dir=None, budget_ms: int = 30000) -> str:
    """The DOM of /lab after ``budget_ms`` of the page's (virtual) time, served with ``app_settings_dir``."""
    base = tmp_path / name
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"), JUPYTERLAB_SETTINGS_DIR=str(base / "user"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), JUPYTER_RUNTIME_DIR=str(base / "runtime"))
    (base / "root").mkdir(parents=True)
    port, token = _free_port(), secrets.token_hex(8)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.root_dir={base / 'root'}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", "--LabApp.news_url=None",
           *([f"--LabApp.app_settings_dir={app_settings_dir}"] if app_settings_dir else [])]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(base / "lab.log", "wb") as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer: {(base / 'lab.log').read_text()[-2000:]}")
                time.sleep(1)
        dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                              "--no-first-run", f"--virtual-time-budget={budget_ms}", "--dump-dom",
                              f"http://127.0.0.1:{port}/lab?token={token}"],
                             capture_output=True, text=True, timeout=180)
        return dom.stdout
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def test_the_kits_lab_settings_stop_the_news_question(tmp_path):
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set TASKREL_CHROMIUM)")
    pytest.importorskip("jupyterlab")
    settings = workflow.write_lab_settings(tmp_path / "env").parent.parent  # <prefix>/share/jupyter/lab/settings
    empty = tmp_path / "no-settings"  # not the environment's own folder: `make setup` put the kit's settings there
    empty.mkdir()
    without = _page_text(tmp_path, "without", empty)
    if QUESTION not in without:  # on a loaded machine the question can come after the page is read
        without = _page_text(tmp_path, "without-again", empty, budget_ms=90000)
    assert "jp-LabShell" in without, "the page did not load far enough to judge"
    if QUESTION not in without:
        pytest.skip("JupyterLab did not ask without the settings either (a loaded machine, or a JupyterLab that "
                    "no longer asks): this run cannot tell whether the settings work")
    with_settings = _page_text(tmp_path, "with", settings)
    assert "jp-LabShell" in with_settings
    assert QUESTION not in with_settings
