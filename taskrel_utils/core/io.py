"""Atomic writes and checksums: an interrupted run never leaves a half-written file behind, and a
write that fails because of where it goes (a full disk, a read-only folder) says where and what to do."""
import errno
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import TaskrelError


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(*parts) -> str:
    """Hex sha256 of the concatenated bytes (str parts are UTF-8 encoded)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else bytes(p))
    return h.hexdigest()


#: how the temporary files of :func:`atomic_path` are named: ``.<name>.<random>.tmp<suffix>``
TEMPORARY_GLOB = ".*.tmp*"
#: the errors of a write that fail because of the place written to, and what to do about each
PLACE_ERRORS = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space within your quota",
                errno.EROFS: "make that folder writable", errno.EACCES: "make that folder writable",
                errno.EPERM: "make that folder writable"}


@contextmanager
def writing(path):
    """Let the enclosed code write to ``path``: an ``OSError`` of :data:`PLACE_ERRORS` (no space,
    read-only, no permission) becomes a :class:`TaskrelError` that names the path and what to do."""
    try:
        yield
    except OSError as e:
        if e.errno not in PLACE_ERRORS:
            raise
        other = f" ({e.filename})" if e.filename and str(e.filename) != str(path) else ""
        raise TaskrelError(f"cannot write {path}: {e.strerror}{other}; {PLACE_ERRORS[e.errno]}, or write elsewhere: "
                           "TASKREL_CACHE=DIR for the cache, --run-dir DIR (run_dir=) for a run") from e


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    A process killed meanwhile (SIGKILL) leaves the temporary file, never a partial ``path``;
    :func:`remove_temporaries` clears such leftovers. A full disk or a read-only folder raises
    :func:`writing`'s error.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file ordinary permissions
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def temporaries(folder) -> list[Path]:
    """The temporary files of :func:`atomic_path` under ``folder`` (at any depth)."""
    return sorted(p for p in Path(folder).rglob(TEMPORARY_GLOB) if p.is_file())


def remove_temporaries(folder) -> list[Path]:
    """Delete the temporary files a killed writer left under ``folder``; returns them. Only for a
    folder no other process is writing to (a run directory when its run starts)."""
    found = temporaries(folder)
    for p in found:
        p.unlink(missing_ok=True)
    return found


def _umask() -> int:
    """The process's umask, read without setting it where Linux shows it (``/proc/self/status``):
    setting it, even back at once, races with files and processes created by other threads."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=jsonable) + "\n")
    return Path(path)


def jsonable(x):
    """``default=`` for json.dumps: numpy arrays and scalars as lists and numbers, anything else as str."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    return str(x)
