import errno
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from taskrel_utils.core import io
from taskrel_utils.study import config
from taskrel_utils.kit import runs
from taskrel_utils.core.errors import MissingDataError, TaskrelError


def test_open_run_creates_layout_and_records_profile(tmp_path):
    run = runs.open_run(tmp_path / "r", config.load_profile("smoke"))
    for sub in runs.SUBDIRS:
        assert (run.root / sub).is_dir()
    assert run.load_params()["name"] == "smoke"


def test_metrics_tables_figures_roundtrip(tmp_path):
    run = runs.Run(tmp_path / "r")
    run.save_metrics("01_x", {"a": 1.5, "n": [1, 2]})
    assert run.load_metrics("01_x") == {"a": 1.5, "n": [1, 2]}
    run.save_table("t", pd.DataFrame({"x": [1, 2]}))
    assert pd.read_csv(run.path("tables", "t.csv")).x.tolist() == [1, 2]
    fig = plt.figure()
    assert run.save_figure("f", fig).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in run.root.rglob("*") if ".tmp" in p.name], "no temporary files left"


def test_missing_metrics_names_the_producing_notebook(tmp_path):
    run = runs.Run(tmp_path / "r")
    with pytest.raises(MissingDataError, match="run notebook 01_encoder_features first"):
        run.load_metrics("01_encoder_features", produced_by="01_encoder_features")


def test_failed_write_leaves_nothing_behind(tmp_path):
    class Unserialisable:
        def tolist(self):
            raise RuntimeError("cannot serialise")

    run = runs.Run(tmp_path / "r")
    with pytest.raises(RuntimeError):
        run.save_metrics("bad", {"x": Unserialisable()})
    assert not list((run.root / "metrics").iterdir()), "neither the file nor a temporary is left"


def _half_then_full(path, text, *args, **kwargs):
    """``Path.write_text`` on a full disk: part of the text lands, then ENOSPC."""
    with open(path, "w") as f:
        f.write(text[:len(text) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_names_the_file_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    run = runs.Run(tmp_path / "r")
    monkeypatch.setattr(Path, "write_text", _half_then_full)
    with pytest.raises(TaskrelError, match=f"cannot write {run.path('metrics', 'm.json')}: No space left on device; "
                                           r"free space on that disk, or write elsewhere: .*--run-dir DIR"):
        run.save_metrics("m", {"x": 1})
    assert not list((run.root / "metrics").iterdir()), "neither the file nor a temporary is left"


@pytest.mark.parametrize("code, hint", [(errno.EROFS, "make that folder writable"),
                                        (errno.EACCES, "make that folder writable")])
def test_a_read_only_run_directory_is_named(tmp_path, monkeypatch, code, hint):
    def refuse(self, *args, **kwargs):
        raise OSError(code, "Read-only file system" if code == errno.EROFS else "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(TaskrelError, match=f"cannot write {tmp_path / 'r'}: .*; {hint}, or write elsewhere"):
        runs.Run(tmp_path / "r")


def test_other_os_errors_pass_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError):
        with io.atomic_path(tmp_path / "x.txt"):
            open(tmp_path / "missing" / "y")


def test_relative_run_dir_resolves_under_the_kit_root(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "KIT_ROOT", tmp_path)
    run = runs.Run("runs/x")
    assert run.root == tmp_path / "runs" / "x" and run.root.is_dir()


def test_written_files_have_ordinary_permissions(tmp_path):
    import os
    import stat

    run = runs.Run(tmp_path / "r")
    path = run.save_metrics("m", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux shows the umask in /proc")
def test_reading_the_umask_leaves_it_alone(monkeypatch):
    """Setting the umask, even back at once, races with the files and processes of other threads
    (the report renders beside the next notebook's kernel start)."""
    import os

    mask = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda _: pytest.fail("io._umask set the umask"))
        assert io._umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(mask)


WRITER = """
import sys
import pandas as pd
from taskrel_utils.kit import runs
run = runs.Run(sys.argv[1])
frame = pd.DataFrame({"x": range(200_000)})
i = 0
while True:  # killed by the test
    run.save_metrics("m", {"i": i, "values": list(range(100_000))})
    run.save_table("t", frame.assign(i=i))
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_whole_files_and_temporaries_the_next_run_removes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from taskrel_utils.core.paths import KIT_ROOT

    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "r")], cwd=KIT_ROOT)
    deadline = time.monotonic() + 60
    while not (tmp_path / "r" / "tables" / "t.csv").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = runs.Run(tmp_path / "r")
    m = run.load_metrics("m")  # whole files only: the last complete write
    assert m["values"] == list(range(100_000))
    assert len(pd.read_csv(run.path("tables", "t.csv"))) == 200_000
    run.remove_temporaries()
    assert not [p for p in run.root.rglob("*") if ".tmp" in p.name]
