"""The smoke run's HTML reports, loaded in headless Chromium: the maths is MathML, no TeX is left
in the text a reader sees, and the notebooks printed nothing to stderr (no warning in a report)."""
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest

from taskrel_utils.kit import mathml, pipeline, report

pytestmark = pytest.mark.notebooks  # the smoke_run fixture: tests/notebooks/conftest.py

_DOLLARS = re.compile(r"\$\$.*?\$\$|(?<![\\\w])\$(?=\S)([^$\n]{1,200}?)\$", re.S)
_TEX_INSIDE = re.compile(r"\\[A-Za-z]+|[_^{}]|^[A-Za-z]$")
_HIDDEN = re.compile(r"<(style|script|math|pre|code|details)\b[^>]*>.*?</\1>", re.S)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system's Chromium; skips (before the smoke run is made) where there is none."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("headless Chromium not found: apt-get install chromium (Debian/Ubuntu) to run the report browser test")
    return found


def _dom(browser: str, page, profile_dir) -> str:
    """The DOM of ``page`` after Chromium has loaded it (no network: the file must need none)."""
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile_dir}",
                           "--dump-dom", page.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


def raw_tex(text: str):
    """The first TeX formula left in ``text`` (``$$...$$``, or ``$...$`` holding a command, a
    sub/superscript or a single letter), or None: "$5 and $10" is not one."""
    for m in _DOLLARS.finditer(text):
        if m.group(1) is None or _TEX_INSIDE.search(m.group(1)):
            return m.group(0)
    return None


def _visible_text(dom: str) -> str:
    """The text a reader sees, less maths, code and the (collapsed) code cells."""
    return re.sub(r"<[^>]+>", " ", _HIDDEN.sub(" ", dom))


def _formulas(executed) -> int:
    """How many formulas the markdown cells of an executed notebook hold."""
    cells = nbformat.read(executed, as_version=4).cells
    return sum(len(mathml.markdown_maths(c.source)) for c in cells if c.cell_type == "markdown")


def test_raw_tex_pattern_finds_tex_and_spares_prices():
    assert raw_tex("the bound $\\tau W$ holds") == "$\\tau W$" and raw_tex("class $B_{ij}$") and raw_tex("map $B$.")
    assert raw_tex("$$x + y$$") == "$$x + y$$"
    assert raw_tex("costs $5 and $10 per run") is None and raw_tex("a $ sign") is None


def test_reports_show_mathml_and_no_raw_tex_in_chromium(chromium, smoke_run, tmp_path):
    browser = chromium
    pages = [smoke_run.path("report", f"{nb.stem}.html") for nb in pipeline.list_notebooks()]
    pages.append(smoke_run.path("report", "index.html"))
    with ThreadPoolExecutor(3) as pool:  # a browser start is mostly waiting: three at a time
        doms = dict(zip(pages, pool.map(lambda p: _dom(browser, p, tmp_path / p.stem), pages)))
    index = doms.pop(pages.pop())
    with_maths = 0
    for page, dom in doms.items():
        expected = _formulas(smoke_run.path("executed", f"{page.stem}.ipynb"))
        assert dom.count("<math") >= expected, f"{page.name}: {dom.count('<math')} MathML elements for {expected} formulas"
        assert 'class="taskrel-tex-error"' not in dom, f"{page.name}: a formula could not be converted"
        left = raw_tex(_visible_text(dom))
        assert left is None, f"{page.name}: raw TeX left in the text: {left!r}"
        with_maths += expected > 0
    assert with_maths >= 3  # notebooks 02, 03 and 05 at least write maths
    for page in pages:
        assert f'href="{page.name}"' in index
    assert "<img" in index


def test_no_stderr_in_the_executed_smoke_notebooks(smoke_run):
    """Warnings printed by a notebook end up in its report: a clean run prints none."""
    found = {nb.name: report.stderr_outputs(smoke_run.path("executed", nb.name)) for nb in pipeline.list_notebooks()}
    found = {name: [f"cell {i}: {text.strip()[:300]}" for i, text in outputs] for name, outputs in found.items() if outputs}
    assert not found, found
