"""One disk cache for every computed artefact: features, encoder weights, h_R, fits, fine-tunings.

A :class:`Namespace` is a folder of the cache (``cache_dir(name)``) with the code its values depend
on, declared once::

    FITS = Namespace("relatedness", code=("relatedness",), kind="json")    # + the modules it imports
    key = FITS.key(pair=pair_arrays, options=options, seed=seed)     # content address (hex)
    row, hit = FITS.get_or_compute(key, lambda: fit(...))

* **Content-addressed.** :func:`digest` hashes the inputs by content: arrays by dtype, shape and
  bytes; mappings with sorted keys; numbers, strings, lists, ``None``. The key also folds in
  :func:`code_digest` of the declared modules and of every module of the package they import
  (:func:`modules_of`; the plumbing in :data:`NOT_NUMERICAL` aside), the digest of their syntax
  trees without docstrings and comments: editing the computation changes every key of the
  namespace, so a stale result can never be reused, while editing documentation keeps the cache.
* **Checksummed.** Each entry is one file: a JSON header line (namespace, key, payload kind, byte
  count, sha256 of the payload) then the payload. :meth:`Namespace.load` verifies both; a corrupted
  or truncated entry is reported in one warning naming the file, deleted, and recomputed.
* **Safe to share.** Entries are written to a temporary file in the same folder and renamed into
  place (``io.atomic_path``), so a reader sees a whole entry or none; a per-entry lock (``flock``,
  where the platform has it) lets the second of two processes wanting the same entry wait and read
  it instead of computing it again.

Payload kinds: ``"arrays"`` (a dict; numpy arrays go into an ``.npz``, other values must be JSON and
travel beside them), ``"json"`` (any JSON value) and ``"torch"`` (a dict of tensors and plain
values, ``torch.save``; read back with ``weights_only=True``).

Written by hand rather than on a kept library: ``joblib.Memory`` folds only the decorated
function's own source into its key, not the modules it calls, and neither it nor ``diskcache``
records a checksum of what it stores (both keep pickles), so a flipped byte in an array would go
unnoticed.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import io
import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import CorruptedFileError, TaskrelError
from .imports import imported
from .io import atomic_path, jsonable, writing
from .paths import cache_dir

__all__ = ["Namespace", "digest", "code_digest", "modules_of", "check_entry", "MISSING"]

#: first bytes of every entry (the header line follows them)
MAGIC = b"taskrel-cache 1 "
KINDS = {"arrays": ".npz", "json": ".json", "torch": ".pt"}
PACKAGE = __name__.split(".")[0]
#: the package's folder: its modules' imports are followed (:func:`modules_of`)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: modules of the package that move files, read imports and report errors but compute nothing a value
#: depends on
NOT_NUMERICAL = frozenset({"core.cache", "core.errors", "core.imports", "core.io", "core.paths"})


class _Missing:
    def __repr__(self):
        return "MISSING"


#: what :meth:`Namespace.load` returns when there is no valid entry
MISSING = _Missing()


# ---------------------------------------------------------------------------- content keys
def digest(obj) -> str:
    """Hex sha256 of ``obj`` by content: equal inputs give equal digests, any change another."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    """Add ``obj`` to hash ``h``, each value tagged with its type and length (no ambiguity)."""
    if hasattr(obj, "detach") and hasattr(obj, "numpy"):  # a torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        if a.dtype == object:
            raise TaskrelError("cannot key an object array; pass numbers or strings")
        h.update(f"A{a.dtype.str}{a.shape}:".encode())
        h.update(a.tobytes())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif obj is None or isinstance(obj, (bool, int, float)):
        h.update(f"S{type(obj).__name__}{obj!r};".encode())
    elif isinstance(obj, str):
        data = obj.encode()
        h.update(b"U%d:" % len(data) + data)
    elif isinstance(obj, bytes):
        h.update(b"B%d:" % len(obj) + obj)
    elif isinstance(obj, dict):
        h.update(b"D%d:" % len(obj))
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(b"L%d:" % len(obj))
        for item in obj:
            _feed(h, item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        _feed(h, {"__dataclass__": type(obj).__name__, **dataclasses.asdict(obj)})
    else:
        raise TaskrelError(f"cannot key a {type(obj).__name__}; pass arrays, numbers, strings, lists or dicts")


# ---------------------------------------------------------------------------- code versions
_MODULES: dict = {}  # path -> ((mtime, size), (digest, imports))


def code_digest(*modules: str) -> str:
    """Digest of the code of ``modules`` (names of the package's modules, or importable names):
    their syntax trees without docstrings, so comments and documentation do not count."""
    return digest([[name, _source_digest(_module_file(name))] for name in modules])


def modules_of(*names: str) -> tuple:
    """``names`` and every module of the package they import, at any depth (imports inside
    functions included; relative and absolute, across the package's subpackages), except
    :data:`NOT_NUMERICAL`; sorted. A module of the package is named by its dotted path inside it
    (``"transport"``, or ``"method.transport"`` in a subpackage). Other modules count only themselves."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_package_imports(name) - seen)
    return tuple(sorted(seen - (NOT_NUMERICAL - set(names))))


def _package_imports(name: str) -> set:
    path = _module_file(name)
    return _module_info(path)[1] if _in_package(path) else set()


def _in_package(path: Path) -> bool:
    return PACKAGE_DIR == path.parent or PACKAGE_DIR in path.parents


def _package_file(dotted: str):
    """The source file of the package's module ``dotted`` (relative to the package: ``"a.b"``),
    ``None`` when the package has no such module or subpackage."""
    if not dotted:
        return None
    base = PACKAGE_DIR.joinpath(*dotted.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_module(dotted: str) -> bool:
    return _package_file(dotted) is not None


def _module_name(path: Path) -> str:
    """The dotted name inside the package of the module at ``path`` (``""`` for the package itself)."""
    parts = path.relative_to(PACKAGE_DIR).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_file(name: str) -> Path:
    path = _package_file(name)
    if path is not None:
        return path
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise TaskrelError(f"cache: no Python source for module {name!r} (a namespace's code= names modules "
                           f"of {PACKAGE} by their path inside it, e.g. 'relatedness')")
    return Path(spec.origin)


def _source_digest(path: Path) -> str:
    return _module_info(path)[0]


def _module_info(path: Path):
    """``(digest of the code without docstrings, names of the package modules it imports)``,
    recomputed when the file changes."""
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    if _MODULES.get(path, (None,))[0] != stamp:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports = set()
        current = _module_name(path) if _in_package(path) else None
        for node in ast.walk(tree):
            if current is not None and isinstance(node, (ast.Import, ast.ImportFrom)):
                imports.update(m for m, _ in imported(node, current, path.name == "__init__.py", PACKAGE, _is_module)
                               if _is_module(m))
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        _MODULES[path] = (stamp, (digest(ast.dump(tree)), imports))
    return _MODULES[path][1]


# ---------------------------------------------------------------------------- payloads
def _encode(kind: str, value) -> bytes:
    buf = io.BytesIO()
    if kind == "json":
        return json.dumps(value, sort_keys=True, default=jsonable).encode()
    if kind == "arrays":
        if not isinstance(value, dict):
            raise TaskrelError(f"an 'arrays' cache entry is a dict, got {type(value).__name__}")
        arrays = {k: v for k, v in value.items() if isinstance(v, np.ndarray)}
        rest = json.dumps({k: v for k, v in value.items() if k not in arrays}, sort_keys=True, default=jsonable)
        np.savez(buf, __json__=np.frombuffer(rest.encode(), dtype=np.uint8), **arrays)
    else:
        import torch

        torch.save(value, buf)
    return buf.getvalue()


def _decode(kind: str, payload: bytes):
    if kind == "json":
        return json.loads(payload.decode())
    if kind == "arrays":
        with np.load(io.BytesIO(payload), allow_pickle=False) as f:
            value = {k: f[k] for k in f.files if k != "__json__"}
            value.update(json.loads(f["__json__"].tobytes().decode()))
        return value
    import torch

    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def check_entry(path) -> dict:
    """The header of the cache entry at ``path``; :class:`CorruptedFileError` unless the entry is whole
    (its byte count and sha256 match the header)."""
    return _split(Path(path).read_bytes())[0]


def _split(raw: bytes):
    """``(header, payload)`` of an entry's bytes, verified (:class:`CorruptedFileError` if not; the
    caller names the file, deletes it and computes the value again)."""
    if not raw.startswith(MAGIC) or b"\n" not in raw:
        raise CorruptedFileError("not a taskrel cache entry")
    head, payload = raw[len(MAGIC):].split(b"\n", 1)
    header = json.loads(head)
    if header.get("bytes") != len(payload):
        raise CorruptedFileError(f"{len(payload)} payload bytes, the header says {header.get('bytes')} (truncated?)")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CorruptedFileError("sha256 of the payload differs from the header's")
    return header, payload


# ---------------------------------------------------------------------------- namespaces
class Namespace:
    """A folder of cache entries of one kind whose values depend on the code of ``code`` (modules).

    ``root`` overrides the folder (default ``paths.cache_dir(name)``, under ``TASKREL_CACHE``).
    """

    def __init__(self, name: str, *, code: tuple, kind: str = "json", root=None):
        if kind not in KINDS:
            raise TaskrelError(f"cache kind must be one of {sorted(KINDS)}, got {kind!r}")
        self.name, self.code, self.kind, self.root = name, tuple(code), kind, root

    def __repr__(self):
        return f"Namespace({self.name!r}, code={self.code}, kind={self.kind!r})"

    def modules(self) -> tuple:
        """The modules whose code the values depend on: ``code`` and what they import."""
        return modules_of(*self.code)

    def code_version(self) -> str:
        """Digest of :meth:`modules` (changes whenever one of them is edited)."""
        return code_digest(*self.modules())

    def key(self, **inputs) -> str:
        """The content address of the value computed from ``inputs`` by the current code."""
        return digest({"namespace": self.name, "code": self.code_version(), "inputs": inputs})[:32]

    def path(self, key: str, label: str = "", root=None) -> Path:
        """The entry's file: ``<folder>/<label>__<key><ext>`` (the label only helps a reader)."""
        folder = Path(root) if root is not None else (Path(self.root) if self.root is not None
                                                      else cache_dir(self.name))
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
        return folder / f"{safe + '__' if safe else ''}{key}{KINDS[self.kind]}"

    def save(self, path: Path, value) -> Path:
        """Write ``value`` as a checksummed entry at ``path``, atomically."""
        payload = _encode(self.kind, value)
        header = {"namespace": self.name, "key": path.stem.rpartition("__")[2], "kind": self.kind,
                  "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
                f.write(payload)
        return path

    def load(self, path: Path, validate=None):
        """The value at ``path``, or :data:`MISSING` if there is none or it fails a check (then the
        file is reported in one warning and deleted). ``validate(value)`` may raise
        :class:`~taskrel_utils.core.errors.CorruptedFileError` for a whole entry whose content is wrong
        all the same."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return MISSING
        try:
            value = self._verified(raw)
            if validate is not None:
                validate(value)
            return value
        except Exception as exc:  # truncated, flipped, garbage: json, zip and torch raise many types
            warnings.warn(f"cache entry {path} is corrupted ({type(exc).__name__}: {exc}); deleted, "
                          f"computing it again", RuntimeWarning, stacklevel=3)
            path.unlink(missing_ok=True)
            return MISSING

    def _verified(self, raw: bytes):
        header, payload = _split(raw)
        if header.get("kind") != self.kind:
            raise CorruptedFileError(f"an entry of kind {header.get('kind')!r}, not {self.kind!r}")
        return _decode(self.kind, payload)

    def get_or_compute(self, key: str, compute, *, label: str = "", root=None, enabled: bool = True,
                       validate=None):
        """``(value, hit)``: the cached value of ``key``, else ``compute()`` stored under it.

        ``enabled=False`` computes without reading or writing. While one process computes an entry,
        another asking for it waits, then reads it.
        """
        if not enabled:
            return compute(), False
        path = self.path(key, label, root)
        value = self.load(path, validate)
        if value is not MISSING:
            return value, True
        with _locked(path):
            value = self.load(path, validate)  # written by another process while we waited
            if value is not MISSING:
                return value, True
            value = compute()
            self.save(path, value)
        return value, False


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path``'s entry (``.<name>.lock`` beside it, removed on release)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): atomic writes still keep every entry whole
        yield
        return
    lock = path.with_name(f".{path.name}.lock")
    with writing(lock):  # a read-only cache: say where, not a raw PermissionError
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_ino == os.stat(lock).st_ino:
                    break  # still the lock file (not one a previous holder removed)
            except FileNotFoundError:
                pass
            os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
