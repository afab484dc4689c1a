"""Where the kit keeps things: the shipped bundle, the cache and the runs.

``TASKREL_CACHE`` overrides the cache folder (default ``data/cache`` of the kit checkout).
"""
import os
from pathlib import Path

from .io import writing

KIT_ROOT = Path(__file__).resolve().parents[2]
MINI_DIR = KIT_ROOT / "data" / "mini"
ZOO_DIR = KIT_ROOT / "data" / "zoo"
PUBLISHED_DIR = KIT_ROOT / "data" / "published"
NOTEBOOKS_DIR = KIT_ROOT / "notebooks"
TEMPLATES_DIR = KIT_ROOT / "nbconvert_templates"


def cache_dir(sub: str = "") -> Path:
    """The cache folder (created on demand), optionally a named sub-folder of it."""
    root = Path(os.environ.get("TASKREL_CACHE", KIT_ROOT / "data" / "cache"))
    path = root / sub if sub else root
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path
