"""``study`` is kept for old notebooks: it re-exports every name they call from the new modules."""
import re

from taskrel_utils import study
from taskrel_utils.paths import NOTEBOOKS_DIR


def _notebook_names():
    return {m for path in NOTEBOOKS_DIR.glob("*.ipynb") for m in re.findall(r"study\.([A-Za-z_]\w*)", path.read_text())}


def test_the_facade_reexports_every_name_the_notebooks_use():
    names = _notebook_names()
    assert names, "no study.X call found in the notebooks"
    missing = sorted(n for n in names if not hasattr(study, n))
    assert not missing, f"study no longer provides {missing}; re-export them from their new modules"


def test_the_facade_only_reexports():
    for name in study.__all__:
        obj = getattr(study, name)
        if callable(obj):
            assert obj.__module__ != study.__name__, f"study.{name} is defined in the facade"
    defined = [n for n, v in vars(study).items()
               if callable(v) and getattr(v, "__module__", None) == study.__name__ and not n.startswith("_")]
    assert defined == []
