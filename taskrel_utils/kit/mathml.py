r"""TeX maths to MathML on the server, so that the HTML reports show equations with no script at all.

The markdown of a cell is parsed by nbconvert's own parser (the one Jupyter's HTML export uses:
``$...$``, ``$$...$$``, ``\(...\)``, ``\[...\]`` and ``\begin{env}...\end{env}`` are maths; code
spans and escaped dollars ``\$`` are not), and each formula is converted by ``latex2mathml``.
Before the conversion a few standard commands it does not know are rewritten into ones it does
(``\arg``, ``\Vert``, ``\operatorname*``, the ``aligned`` and ``gathered`` environments),
``\underbrace`` and ``\overbrace`` become a bracket drawn by CSS (a stretched brace glyph needs a
math font whose glyph assembly works, which many systems lack), and ``\tag{n}`` becomes an
equation number set at the right of a displayed equation. After it, letters
in a ``mathvariant`` other than normal (``\mathbb R``, ``\mathcal L``, ``\mathbf x``) become the
Unicode mathematical letters (ℝ, ℒ, 𝐱): Chromium renders MathML Core, which ignores ``mathvariant``.
"""
from __future__ import annotations

import html
import re

from ..core.errors import TaskrelError


class MathConversionError(TaskrelError):
    """A formula holds TeX that cannot be turned into MathML; the message names the command."""


#: standard TeX that latex2mathml does not know -> an equivalent it does (applied in order)
_REWRITES = (
    (re.compile(r"\\arg(?![A-Za-z])"), r"\\operatorname{arg}"),
    (re.compile(r"\\Vert(?![A-Za-z])"), r"\\|"),
    (re.compile(r"\\(begin|end)\{aligned\}"), r"\\\1{split}"),
    (re.compile(r"\\begin\{gathered\}"), r"\\begin{array}{c}"),
    (re.compile(r"\\end\{gathered\}"), r"\\end{array}"),
    (re.compile(r"\\(nonumber|notag)(?![A-Za-z])|\\label\{[^{}]*\}"), ""),
)
#: \operatorname{arg\,min}: latex2mathml takes only letters there; spaces become a thin space, and
#: the starred form (limits under the name) becomes \operatorname{...}\limits
_OPERATOR_NAME = re.compile(r"\\operatorname(\*?)\{([^{}]*)\}")
_OPERATOR_SPACE = re.compile(r"\\[,;:>! ]|~")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TAG = re.compile(r"\\tag\*?\{([^{}]*)\}")
#: a command left as text by latex2mathml (``<mi>\foo</mi>``), or an alignment ``&`` it did not place
_UNCONVERTED = re.compile(r">\s*(\\[A-Za-z]+|\\[^\sA-Za-z<]|&)\s*<")
#: delimiters after \big, \Big, \bigl...: latex2mathml leaves their TeX name in the <mo>
_DELIMITERS = {**dict.fromkeys(("\\|", "\\Vert", "\\lVert", "\\rVert"), "&#x02016;"),
               **dict.fromkeys(("\\vert", "\\lvert", "\\rvert", "\\mid"), "|"),
               "\\{": "{", "\\lbrace": "{", "\\}": "}", "\\rbrace": "}", "\\langle": "&#x027E8;",
               "\\rangle": "&#x027E9;", "\\lfloor": "&#x0230A;", "\\rfloor": "&#x0230B;", "\\lceil": "&#x02308;",
               "\\rceil": "&#x02309;", "\\backslash": "&#x0005C;"}
_SIZED_DELIMITER = re.compile(r"(<mo [^>]*maxsize[^>]*>)(\\[A-Za-z]+|\\[|{}])</mo>")

# Mathematical Alphanumeric Symbols (U+1D400...): first capital of each style; lower case follows
# 26 code points later. Letters that live in the Letterlike Symbols block instead are the holes.
_ALPHABET_START = {"bold": 0x1D400, "italic": 0x1D434, "bold-italic": 0x1D468, "script": 0x1D49C,
                   "bold-script": 0x1D4D0, "fraktur": 0x1D504, "double-struck": 0x1D538,
                   "bold-fraktur": 0x1D56C, "sans-serif": 0x1D5A0, "bold-sans-serif": 0x1D5D4,
                   "sans-serif-italic": 0x1D608, "monospace": 0x1D670}
_DIGIT_START = {"bold": 0x1D7CE, "double-struck": 0x1D7D8, "sans-serif": 0x1D7E2,
                "bold-sans-serif": 0x1D7EC, "monospace": 0x1D7F6}
_HOLES = {("italic", "h"): "ℎ",
          **{("script", c): u for c, u in zip("BEFHILMRego", "ℬℰℱℋℐℒℳℛℯℊℴ")},
          **{("fraktur", c): u for c, u in zip("CHIRZ", "ℭℌℑℜℨ")},
          **{("double-struck", c): u for c, u in zip("CHNPQRZ", "ℂℍℕℙℚℝℤ")}}
#: Y'' comes as a superscript prime; a math font's prime is already raised, so set it beside the letter
_PRIMED = re.compile(r"<msup>(<(mi|mn)[^>]*>[^<]*</\2>)<mi>(&#x0203[234];)</mi></msup>")
#: \log, \exp... come as bare <mi>log</mi>: a thin space after them, as TeX sets it ("0 log 0")
_FUNCTION = re.compile(r"<mi>(log|ln|exp|det|dim|ker|sin|cos|tan|tanh|sinh|cosh|deg|gcd|Pr|lg)</mi>")
_NAMESPACE_DECLARATION = re.compile(r'\s+xmlns:ns\d+="[^"]*"')
_PREFIXED = re.compile(r"<(/?)ns\d+:")
_VARIANT = re.compile(r'<(mi|mn|mo|mtext) mathvariant="([a-z-]+)">([^<]*)</\1>')


#: \underbrace / \overbrace as a bracket drawn by CSS under (over) the term: a stretched
#: brace glyph needs a math font with a working glyph assembly, which many systems lack
_TICK = "linear-gradient(currentColor, currentColor)"
_BRACE_STYLE = {"under": f"background: {_TICK} bottom / 100% 0.08em no-repeat, {_TICK} left bottom / 0.08em 0.4em "
                         f"no-repeat, {_TICK} right bottom / 0.08em 0.4em no-repeat; padding: 0 0.12em 0.22em",
                "over": f"background: {_TICK} top / 100% 0.08em no-repeat, {_TICK} left top / 0.08em 0.4em "
                        f"no-repeat, {_TICK} right top / 0.08em 0.4em no-repeat; padding: 0.22em 0.12em 0"}
_BRACE = re.compile(r"\\(under|over)brace\s*\{")


def _group_end(tex: str, start: int) -> int:
    """The index just after the ``}`` that closes the group whose ``{`` is at ``start``."""
    depth = 0
    for i in range(start, len(tex)):
        if tex[i] == "\\":
            continue
        if tex[i] == "{" and tex[i - 1] != "\\":
            depth += 1
        elif tex[i] == "}" and tex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return i + 1
    raise MathConversionError(f"unbalanced braces in the formula {tex!r}: close every {{ with a }}")


def _script_end(tex: str, start: int) -> int:
    """The index just after the sub/superscript argument that begins at ``start`` (a group or one token)."""
    if tex[start] == "{":
        return _group_end(tex, start)
    m = re.compile(r"\\[A-Za-z]+|\S").match(tex, start)
    return m.end()


def _drawn_braces(tex: str) -> str:
    r"""``\underbrace{X}_{Y}`` -> ``\underset{Y}{\style{<bracket>}{X}}`` (and \overbrace ... ^ as \overset)."""
    while (m := _BRACE.search(tex)) is not None:
        kind, open_at = m.group(1), m.end() - 1
        close = _group_end(tex, open_at)
        base = tex[open_at + 1:close - 1]
        rest = re.compile(r"\s*([_^])\s*").match(tex, close)
        label, end = "", close
        if rest and rest.group(1) == ("_" if kind == "under" else "^"):
            end = _script_end(tex, rest.end())
            label = tex[rest.end():end]
        styled = "\\style{" + _BRACE_STYLE[kind] + "}{" + base + "}"
        tex = tex[:m.start()] + f"\\{kind}set{{{label}}}{{{styled}}}" + tex[end:]
    return tex


def _math_letter(char: str, variant: str) -> str:
    """``char`` in the Unicode mathematical style ``variant`` (unchanged where Unicode has none)."""
    if (variant, char) in _HOLES:
        return _HOLES[(variant, char)]
    if "A" <= char <= "Z" and variant in _ALPHABET_START:
        return chr(_ALPHABET_START[variant] + ord(char) - ord("A"))
    if "a" <= char <= "z" and variant in _ALPHABET_START:
        return chr(_ALPHABET_START[variant] + 26 + ord(char) - ord("a"))
    if "0" <= char <= "9" and variant in _DIGIT_START:
        return chr(_DIGIT_START[variant] + ord(char) - ord("0"))
    return char


def _unicode_variants(mathml: str) -> str:
    """Replace ``<mi mathvariant="double-struck">R</mi>`` by ``<mi>ℝ</mi>`` (normal stays as it is)."""
    def styled(m):
        tag, variant, text = m.groups()
        if variant == "normal":
            return m.group(0)
        letters = "".join(_math_letter(c, variant) for c in html.unescape(text))
        # a single letter in an <mi> is set in italic unless told otherwise
        normal = ' mathvariant="normal"' if tag == "mi" and len(letters) == 1 else ""
        return f"<{tag}{normal}>{html.escape(letters, quote=False)}</{tag}>"
    return _VARIANT.sub(styled, mathml)


def tex_to_mathml(tex: str, display: bool = False) -> str:
    r"""One formula (without its ``$`` delimiters) as a ``<math>`` element.

    ``display=True`` gives a displayed equation (``display="block"``) wrapped in a
    ``<span class="taskrel-math-display">`` with its ``\tag`` number, if any, at the right.
    Raises :class:`MathConversionError` when a command stays unconverted.
    """
    from latex2mathml.converter import convert

    control = _CONTROL.search(tex)
    if control:
        raise MathConversionError(f"the formula {tex!r} holds the control character U+{ord(control.group()):04X} "
                                  f"(a backslash escape such as \\a or \\b in a Python string that is not raw?): "
                                  f"write the string as r'...' or double the backslash")
    tags = _TAG.findall(tex)
    body = _drawn_braces(_TAG.sub("", tex))
    body = _OPERATOR_NAME.sub(lambda m: "\\operatorname{" + _OPERATOR_SPACE.sub("\u2009", m.group(2)) + "}"
                              + ("\\limits" if m.group(1) else ""), body)
    for pattern, replacement in _REWRITES:
        body = pattern.sub(replacement, body)
    try:
        mathml = convert(body.strip(), display="block" if display else "inline")
    except Exception as exc:  # latex2mathml raises its own exception types, not one base class
        raise MathConversionError(f"cannot convert the formula {tex!r} to MathML ({type(exc).__name__}: "
                                  f"{exc}); fix its TeX (balanced braces, known commands)") from exc
    mathml = _SIZED_DELIMITER.sub(lambda m: m.group(1) + _DELIMITERS.get(m.group(2), m.group(2)) + "</mo>", mathml)
    left = _UNCONVERTED.search(mathml)
    if left:
        raise MathConversionError(f"the formula {tex!r} uses {left.group(1)!r}, which the MathML converter "
                                  f"does not know; write it with standard commands (e.g. \\operatorname{{...}})")
    mathml = _unicode_variants(mathml)
    mathml = _FUNCTION.sub(r'<mi>\1</mi><mspace width="0.1667em" />', mathml)
    mathml = _PRIMED.sub(r'<mrow>\1<mo lspace="0em" rspace="0em">\3</mo></mrow>', mathml)
    if not display:
        return mathml
    number = "".join(f'<span class="taskrel-eqno">({html.escape(t)})</span>' for t in tags)
    return f'<span class="taskrel-math-display">{mathml}{number}</span>'


def _renderer_class():
    """nbconvert's markdown renderer, with the maths turned into MathML (imported on first use)."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer

    class MathMLRenderer(IPythonRenderer):
        """Markdown to HTML as in nbconvert, maths as MathML; a formula that cannot be converted
        stays visible as TeX in a ``<code class="taskrel-tex-error">`` whose title says why."""

        def _convert(self, tex: str, display: bool) -> str:
            try:
                return tex_to_mathml(tex, display)
            except MathConversionError as exc:
                return (f'<code class="taskrel-tex-error" title="{html.escape(str(exc))}">'
                        f"{html.escape(tex, quote=False)}</code>")

        def heading(self, text: str, level: int, **attrs) -> str:
            # nbconvert adds the anchor link through ElementTree, which writes the MathML of a heading
            # as <ns0:math>: HTML knows no such element. Put the plain names back.
            return _PREFIXED.sub(r"<\1", _NAMESPACE_DECLARATION.sub("", super().heading(text, level, **attrs)))

        def block_math(self, body: str) -> str:
            return self._convert(body, True)

        def inline_math(self, body: str) -> str:
            return self._convert(body, False)

        def latex_environment(self, name: str, body: str) -> str:
            return self._convert(f"\\begin{{{name}}}{body}\\end{{{name}}}", True)

    return MathMLRenderer


def markdown_to_html(source: str, **renderer_options) -> str:
    """Markdown (a notebook cell's) to HTML with its maths as MathML.

    ``renderer_options`` go to nbconvert's ``IPythonRenderer`` (attachments, embed_images, path...).
    """
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    renderer = _renderer_class()(escape=False, **renderer_options)
    return MarkdownWithMath(renderer=renderer).render(source)


def markdown_maths(source: str) -> list[tuple[str, bool]]:
    """Every formula of a markdown text as ``(tex, display)``, found by the parser the reports use."""
    from nbconvert.filters.markdown_mistune import MarkdownWithMath

    found = []

    class Recorder(_renderer_class()):
        def _convert(self, tex, display):
            found.append((tex, display))
            return ""

    MarkdownWithMath(renderer=Recorder(escape=False)).render(source)
    return found
