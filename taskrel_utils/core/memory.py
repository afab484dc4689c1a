"""Memory: what this machine has available now, and the peak resident memory of the processes a
block of code starts (papermill's kernel and the kernel's worker processes).

:func:`available_bytes` sizes the default number of worker processes (:mod:`taskrel_utils.core.jobs`);
:class:`PeakMemory` records each notebook's peak in ``params/pipeline.json`` (:mod:`taskrel_utils.kit.pipeline`).
Both read psutil (installed with dask.distributed, which the kit pins) and, on Linux, ``/proc``.
"""
from __future__ import annotations

import threading
from pathlib import Path

import psutil

__all__ = ["available_bytes", "high_water_mark", "PeakMemory"]

MB = 2 ** 20


def available_bytes() -> int | None:
    """The memory new processes can take now without swapping (Linux: ``MemAvailable`` of
    ``/proc/meminfo``); None when the system does not say."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError):
        return None


def high_water_mark(pid: int) -> int | None:
    """The peak resident memory of process ``pid`` so far, in bytes (``VmHWM`` of
    ``/proc/<pid>/status``); None where there is no such file (not Linux, or the process has ended)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


class PeakMemory:
    """While the block runs, a thread samples every ``interval`` seconds the processes this process
    starts in it, at any depth. :meth:`megabytes` then gives ``kernel``: the largest peak resident
    memory of one process started directly (papermill's kernel; its ``VmHWM`` where Linux has it,
    else its largest sampled RSS), and ``all_processes``: the largest sum of the resident memory of
    all of them (the kernel and its worker processes) at one sample. Both in MiB, None when no
    process was started. Growth in the last ``interval`` before a process ends can be missed."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.kernel = self.all_processes = 0
        self._stop = threading.Event()
        self._me = psutil.Process()
        self._before = set()
        self._thread = threading.Thread(target=self._run, name="taskrel-memory", daemon=True)

    def __enter__(self):
        self._before = {p.pid for p in self._me.children(recursive=True)}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # what is left after the block

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Read the resident memory of the processes started in the block once."""
        direct = {p.pid for p in self._me.children()}
        total = 0
        for p in self._me.children(recursive=True):
            if p.pid in self._before:
                continue
            try:
                rss = p.memory_info().rss
            except psutil.Error:  # ended meanwhile
                continue
            total += rss
            if p.pid in direct:
                self.kernel = max(self.kernel, high_water_mark(p.pid) or rss)
        self.all_processes = max(self.all_processes, total)

    def megabytes(self) -> dict:
        """``{"kernel": MiB, "all_processes": MiB}`` (None for none started), rounded to 1 MiB."""
        return {name: round(value / MB) if value else None
                for name, value in (("kernel", self.kernel), ("all_processes", self.all_processes))}
