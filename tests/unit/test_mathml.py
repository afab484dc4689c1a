"""mathml: TeX to MathML on the server; every formula of the notebooks and of docs/method.md converts."""
import re

import nbformat
import pytest

from taskrel_utils.kit import mathml
from taskrel_utils.core.errors import TaskrelError
from taskrel_utils.core.paths import KIT_ROOT, NOTEBOOKS_DIR


def _notebook_maths():
    """``(where, tex, display)`` of every formula in the markdown cells of the notebooks."""
    found = []
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "markdown":
                found += [(f"{path.name} cell {index}", tex, display) for tex, display in mathml.markdown_maths(cell.source)]
    return found


def _method_maths():
    path = KIT_ROOT / "docs" / "method.md"
    return [("docs/method.md", tex, d) for tex, d in mathml.markdown_maths(path.read_text())] if path.exists() else []


def test_every_formula_of_the_notebooks_and_the_method_page_converts():
    formulas = _notebook_maths() + _method_maths()
    assert len(formulas) > 50  # the notebooks and the method page are full of maths
    failures, seen = [], set()
    for where, tex, display in formulas:
        if (tex, display) in seen:  # $h_R$ and friends occur dozens of times
            continue
        seen.add((tex, display))
        try:
            out = mathml.tex_to_mathml(tex, display)
        except mathml.MathConversionError as exc:
            failures.append(f"{where}: {exc}")
            continue
        assert "<math" in out and "\\" not in re.sub(r"<[^>]+>", "", out), (where, tex, out)
    assert not failures, "\n".join(failures)


def test_markdown_maths_skips_code_spans_and_escaped_dollars():
    source = (r"Cost \$5 or \$6; code `x = $y$` and ``$$z$$``; maths $a_1$ and" "\n\n"
              r"$$\sum_j D_j \tag{2}$$" "\n\n" r"\begin{aligned} a &= b \\ c &= d \end{aligned}")
    assert mathml.markdown_maths(source) == [
        ("a_1", False), (r"\sum_j D_j \tag{2}", True), (r"\begin{aligned} a &= b \\ c &= d \end{aligned}", True)]
    html = mathml.markdown_to_html(source)
    assert "<code>x = $y$</code>" in html and "$5 or $6" in html  # code kept as typed; \$ is a dollar
    assert html.count("<math") == 3 and '<span class="taskrel-eqno">(2)</span>' in html


@pytest.mark.parametrize("tex, expected", [
    (r"\underbrace{a+b}_{\text{loss}}", ['<munder><mrow><mrow style="background: ', "<mtext>loss</mtext></mrow></mrow></munder>"]),
    (r"\overbrace{\frac{a}{b} + {c}}^t", ['<mover><mrow><mrow style="background: ', "<mrow><mi>t</mi></mrow></mover>"]),
    (r"\operatorname{softmax}(x)", ["<mo>softmax</mo>"]),
    (r"z \in \mathbb R^d", ['<mi mathvariant="normal">ℝ</mi>']),  # Chromium ignores mathvariant
    (r"\mathcal L + \mathbf x + \mathbb E", ['<mi mathvariant="normal">ℒ</mi>', "<mi mathvariant=\"normal\">𝐱</mi>",
                                            '<mi mathvariant="normal">𝔼</mi>']),
    (r"\hat y = \arg\max_i B_{ij}", ["<mover", "<mo>arg</mo>", "<mo>max</mo>"]),
    (r"\begin{aligned} a &= b \\ c &= d \end{aligned}", ["<mtable", '<mtd columnalign="right"><mi>c</mi>']),
    (r"\Vert x \Vert", ["&#x02016;"]),
    (r"\big\Vert A z - t\big\Vert_2 + \Bigl\lbrace x \Bigr\rbrace", ['maxsize="1.2em">&#x02016;</mo>', ">{</mo>"]),
    (r"H(Y''\mid Y')", ['<mi>Y</mi><mo lspace="0em" rspace="0em">&#x02033;</mo>']),
    (r"0 \log 0", ['<mi>log</mi><mspace width="0.1667em" />']),
    (r"\operatorname*{arg\,min}_x f", ["<munder><mo>arg\u2009min</mo><mi>x</mi></munder>"]),
    (r"\operatorname{arg\,max}_i", ["<msub><mo>arg\u2009max</mo>"]),
])
def test_tex_to_mathml_knows_the_kits_commands(tex, expected):
    out = mathml.tex_to_mathml(tex)
    assert out.startswith('<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">')
    for piece in expected:
        assert piece in out, (piece, out)
    assert "\\" not in re.sub(r"<[^>]+>", "", out)


def test_a_displayed_equation_carries_its_tag_at_the_right():
    out = mathml.tex_to_mathml(r"J = L_C + \tau W \tag{14}", display=True)
    assert out.startswith('<span class="taskrel-math-display"><math')
    assert 'display="block"' in out and out.endswith('<span class="taskrel-eqno">(14)</span></span>')
    assert "14" not in out.split("</math>")[0]  # the number is not typeset inside the formula


def test_an_unknown_command_is_an_error_that_names_it_and_stays_visible_in_html():
    with pytest.raises(mathml.MathConversionError, match=r"\\frobnicate"):
        mathml.tex_to_mathml(r"\frobnicate{x}")
    with pytest.raises(TaskrelError, match="cannot convert"):
        mathml.tex_to_mathml(r"\frac{a}{")
    html = mathml.markdown_to_html(r"ok $x$, broken $\frobnicate x$")
    assert html.count("<math") == 1 and '<code class="taskrel-tex-error"' in html and "\\frobnicate x</code>" in html


def test_no_control_character_reaches_a_formula():
    """A ``\\a`` typed into a Python string becomes BEL: the converter must not be handed one silently."""
    with pytest.raises(mathml.MathConversionError):
        mathml.tex_to_mathml("\a rg\\max_i")


def test_maths_in_a_heading_stays_mathml():
    """nbconvert's anchor links go through ElementTree, which would write <ns0:math>."""
    html = mathml.markdown_to_html("## 2 · The classifier $h_R$\n\ntext")
    assert "<h2" in html and "ns0" not in html and "<math" in html and "<msub><mi>h</mi>" in html
