"""The kit refers only to what a user has, and its markdown renders.

* No tracked text file (notebooks' markdown and code, ``*.md``, ``*.py``, ``*.yaml``) cites a
  document of the authors' workspace that users never see: numbered sections of a method
  specification, the design or method notes, a sibling ``shared`` folder.
* Every relative link in a markdown file or a notebook's markdown points to a file that exists,
  and a link with a heading anchor to a heading of that markdown file (GitHub's anchors). A
  written "docs/method.md §N" names a section that exists.
* No markdown (files and notebook cells) and no string literal of the notebooks' code or of the
  package (which write prose that is displayed as Markdown) holds a control character other than
  newline and tab: e.g. ``"$\\arg\\max$"`` in a non-raw string is a BEL character and "rg\\max".

Each scanner is a function of text, and a self-check plants a bad case it must catch.
"""
from __future__ import annotations

import ast
import re
import subprocess
import warnings
from pathlib import Path

import nbformat
import pytest


#: the root of the checkout these tests belong to
REPO_ROOT = Path(__file__).resolve().parents[2]
#: the kit's method page, the target of most references
METHOD_PAGE = "docs/method.md"
#: suffixes of the text files scanned for references
TEXT_SUFFIXES = (".ipynb", ".md", ".py", ".yaml", ".yml")
#: references to documents users do not have (written so that this file does not match itself)
_NOTES = {name: name.upper() for name in ("method", "design", "style")}  # spelled out only at run time
FORBIDDEN = {
    "a numbered section of a method specification": re.compile(rf"\b{_NOTES['method']}[ \t]*§?[ \t]*A?\d"),
    "the method notes": re.compile(rf"\b{_NOTES['method']}\.md\b"),
    "the design notes": re.compile(rf"\b{_NOTES['design']}(\.md\b|[ \t]+(section|§)|[ \t]*§)"),
    "the style notes": re.compile(rf"\b{_NOTES['style']}\.md\b"),
    "a sibling shared folder": re.compile(r"\.\./shared\b"),
}
#: a markdown link or image ``[text](target "title")``; the target is group 1
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: a written reference to a section of the method page, e.g. "docs/method.md §4.6"
SECTION_REF = re.compile(r"method\.md\s*§\s*(\d+(?:\.\d+)?)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
ALLOWED_CONTROLS = {"\n", "\t"}


# ----------------------------------------------------------------------------------- the files
def tracked_files(suffixes=TEXT_SUFFIXES) -> list[Path]:
    """The repository's tracked files with these suffixes (git ls-files; without git: a walk
    that skips the virtual environment, caches and run directories)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        paths = [REPO_ROOT / line for line in out.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".git", "runs", "cache", "__pycache__", ".ipynb_checkpoints"}
        paths = [p for p in REPO_ROOT.rglob("*") if not skip & set(p.relative_to(REPO_ROOT).parts)]
    return sorted(p for p in paths if p.suffix in suffixes and p.is_file())


def text_parts(path: Path) -> list[tuple[str, str, str]]:
    """``(where, kind, text)`` of a file: one part per notebook cell (kind "markdown" or "code"),
    else the whole file (kind "markdown" for ``*.md``, "python" for ``*.py``, "text" otherwise)."""
    rel = path.relative_to(REPO_ROOT).as_posix()
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        return [(f"{rel} cell {i}", c.cell_type, c.source) for i, c in enumerate(nb.cells)]
    kind = {".md": "markdown", ".py": "python"}.get(path.suffix, "text")
    return [(rel, kind, path.read_text(encoding="utf-8"))]


# ----------------------------------------------------------------------------------- scanners
def forbidden_references(text: str) -> list[str]:
    """The references to documents users do not have in ``text``, as ``'what: matched text'``."""
    return [f"{what}: {m.group(0)!r}" for what, pattern in FORBIDDEN.items() for m in pattern.finditer(text)]


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading's text: lower case, punctuation dropped (letters, digits,
    spaces, hyphens and underscores kept), each space a hyphen."""
    text = re.sub(r"`|\*\*|\*|~~", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def heading_anchors(markdown: str) -> set[str]:
    """The anchors of the ``#`` headings of a markdown text (repeats get ``-1``, ``-2``, ... as on GitHub)."""
    anchors, seen = set(), {}
    for line in strip_code(markdown).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = github_anchor(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def section_numbers(markdown: str) -> set[str]:
    """The numbers of the numbered headings (``## 4. ...`` -> "4", ``### 4.6 ...`` -> "4.6")."""
    return {m.group(1) for m in re.finditer(r"^#{1,6}\s+(\d+(?:\.\d+)?)\.?\s", strip_code(markdown), re.M)}


def strip_code(markdown: str) -> str:
    """Markdown without fenced code blocks and inline code (their brackets are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def broken_links(markdown: str, base_dir: Path, self_path: Path | None = None) -> list[str]:
    """Relative links of ``markdown`` (a file in ``base_dir``) to a missing file, or to a heading
    anchor that the linked markdown file (or this one, for ``#anchor``) does not have."""
    problems = []
    text = strip_code(markdown)
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, attachment:, ...
            continue
        file_part, _, anchor = target.partition("#")
        path = (base_dir / file_part).resolve() if file_part else self_path
        if file_part and not path.exists():
            problems.append(f"missing file: {target}")
            continue
        if anchor and path is not None and path.suffix == ".md" and anchor not in heading_anchors(
                path.read_text(encoding="utf-8")):
            problems.append(f"missing heading anchor: {target}")
    return problems


def missing_sections(text: str, method_page: str) -> list[str]:
    """Written references "method.md §N" in ``text`` to a section number that the method page's
    text ``method_page`` does not have."""
    numbers = section_numbers(method_page)
    return [f"no section {n} in {METHOD_PAGE}" for n in SECTION_REF.findall(text) if n not in numbers]


def control_characters(text: str) -> list[str]:
    """Control characters of ``text`` other than newline and tab, as ``'U+0007 at 12'``."""
    return [f"U+{ord(ch):04X} at {i}" for i, ch in enumerate(text) if ord(ch) < 0x20 and ch not in ALLOWED_CONTROLS]


def code_string_controls(source: str) -> list[str]:
    """Control characters in the string literals of Python ``source`` (the literal's value, after
    escapes: ``"\\a"`` is a BEL), and invalid escape sequences (``"\\m"`` of ``"$\\max$"``: LaTeX
    in a non-raw string, which Python warns about). IPython magics and shell lines are skipped."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError as err:
            return [f"does not parse: {err}"]
    problems = [f"line {w.lineno}: {w.message}" for w in caught if "escape sequence" in str(w.message)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found = control_characters(node.value)
            if found:
                problems.append(f"line {node.lineno}: {node.value[:40]!r} has {', '.join(found[:3])}")
    return problems


# ----------------------------------------------------------------------------------- the checks
FILES = tracked_files()
PARTS = [part for path in FILES for part in text_parts(path)]
MARKDOWN_FILES = [p for p in FILES if p.suffix in (".md", ".ipynb")]


def test_the_method_page_exists_with_its_sections():
    text = (REPO_ROOT / METHOD_PAGE).read_text(encoding="utf-8")
    assert {str(n) for n in range(1, 9)} <= section_numbers(text), "docs/method.md lost a numbered section"
    for anchor in ("1-the-setting", "3-the-bound-and-why-it-holds", "4-the-objective-and-the-alternating-fit",
                   "8-glossary"):
        assert anchor in heading_anchors(text)


def test_no_reference_to_documents_users_do_not_have():
    problems = [f"{where}: {p}" for where, _, text in PARTS for p in forbidden_references(text)]
    assert not problems, ("cite docs/method.md sections or the paper instead of:\n  " + "\n  ".join(problems))


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve(path):
    problems = [f"{where}: {p}" for where, kind, text in text_parts(path) if kind == "markdown"
                for p in broken_links(text, path.parent, path)]
    assert not problems, "\n".join(problems)


def test_written_section_references_exist():
    page = (REPO_ROOT / METHOD_PAGE).read_text(encoding="utf-8")
    problems = [f"{where}: {p}" for where, _, text in PARTS for p in missing_sections(text, page)]
    assert not problems, "\n".join(problems)


def test_no_control_characters_in_markdown():
    problems = [f"{where}: {p}" for where, kind, text in PARTS if kind == "markdown" for p in control_characters(text)]
    assert not problems, "\n".join(problems)


def test_no_control_characters_in_displayed_strings():
    """The notebooks' code and the package's prose writers: a string literal with a control
    character is almost always a backslash escape meant as LaTeX (write it as a raw string)."""
    sources = [(where, text) for where, kind, text in PARTS if kind == "code"]
    sources += [(where, text) for where, kind, text in PARTS if kind == "python" and where.startswith("taskrel_utils/")]
    assert sources
    problems = [f"{where}: {p}" for where, text in sources for p in code_string_controls(text)]
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------- self-checks
def test_scanners_catch_planted_references():
    meth, design = "METHOD", "DESIGN"
    for bad in (f"see {meth} 3.1-3.2", f"({meth} A16)", f"{meth} §2.4", f"{meth}.md", f"{design}.md §5",
                f"{design} section 4", "../" + "shared/x.md", "STYLE" + ".md"):
        assert forbidden_references(bad), bad
    for fine in ("METHOD_OPTIONS", "correlation.METHODS", "PAPER_METHODS", "the method (paper §3)", "design choice"):
        assert not forbidden_references(fine), fine


def test_scanners_catch_planted_broken_links(tmp_path):
    assert github_anchor("1. The setting") == "1-the-setting"
    assert github_anchor("4.6 The start and the update, original and kit") == "46-the-start-and-the-update-original-and-kit"
    assert github_anchor("The `value` column") == "the-value-column"
    (tmp_path / "page.md").write_text("# Title\n\n## 1. The setting\n\n```\n## not a heading\n```\n## 1. The setting\n")
    assert heading_anchors((tmp_path / "page.md").read_text()) == {"title", "1-the-setting", "1-the-setting-1"}
    good = "[a](page.md) [b](page.md#1-the-setting) [c](https://example.org/x#y) `[d](nowhere.md)`"
    assert broken_links(good, tmp_path) == []
    bad = broken_links("[a](missing.md) [b](page.md#2-gone) [c](#nope)", tmp_path, tmp_path / "page.md")
    assert bad == ["missing file: missing.md", "missing heading anchor: page.md#2-gone", "missing heading anchor: #nope"]
    page, ref = "## 4. The objective\n\n### 4.6 The start\n", "method" + ".md §"  # split: this file is scanned too
    assert missing_sections(f"see docs/{ref}99 and {ref}4.7", page) == [
        f"no section 99 in {METHOD_PAGE}", f"no section 4.7 in {METHOD_PAGE}"]
    assert missing_sections("see docs/method.md §4 and [docs/method.md §4.6](x)", page) == []


def test_scanners_catch_planted_control_characters():
    bad_cell = 'display(Markdown(f"the label is $\\arg\\max_i$ of {k}"))'  # "\a" in a non-raw f-string: BEL
    assert any("U+0007" in p for p in code_string_controls(bad_cell))
    assert any("invalid escape sequence" in p for p in code_string_controls('x = "$\\max_i$"'))
    assert not code_string_controls('display(Markdown(rf"the label is $\\arg\\max_i$ of {k}"))')
    assert not code_string_controls('%time x = "a\\tb\\n"\nprint(x)')
    assert control_characters("fine\n\ttext") == []
    assert control_characters("bell \a here") == ["U+0007 at 5"]
