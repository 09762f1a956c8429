"""The plain editions (Colab, student, instructor) number equations as the built book does.

Run after the book is built (``make render``, ``make test``). For every chapter page, each
numbered equation's label and number in the HTML must be what tools/editions/chapters.py assigns,
so that "(12)" in a Colab notebook is the equation the rendered book calls (12).

Equations checked: none (the numbering of every labelled equation).
"""
import pathlib
import re

import pytest

from tools.editions import chapters   # importable: tests/conftest.py puts the repository on sys.path

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


@pytest.mark.parametrize("chapter", chapters.chapters())
def test_equation_numbers_match_the_built_book(chapter):
    page = HTML / "book" / f"{chapter}.html"
    assert page.exists(), "build the book first: jupyter-book build ."
    html = page.read_text()
    # MathJax's numbered display: <span class="eqno">(12)...</span> inside the div whose id is the label
    built = {m["label"]: int(m["number"]) for m in re.finditer(
        r'id="equation-(?P<label>[\w:.-]+)"[^>]*>\s*<span class="eqno">\((?P<number>\d+)\)', html)}
    expected = chapters.index().equations
    assert built, f"{chapter}: no numbered equation found in the page (has the HTML changed?)"
    assert {label: expected.get(label) for label in built} == built
