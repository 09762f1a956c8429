"""The links between the book's numbered equations, dlib's docstrings and the tests stay true.

* every equation label a ``dlib`` docstring cites (``eq-...``) is defined in the book, once;
* where a docstring names the chapter (``chapter "posterior", eq-posterior-mean``) the label is
  defined in that chapter, and every chapter a docstring names exists (code that is ahead of the
  book names the chapter to come in words, without a label, until the chapter is written);
* every test module says which labels it checks (a docstring line ``Equations checked: ...``),
  and those labels exist.

Equations checked: none (this module checks the links themselves).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEL = re.compile(r"eq-[a-z0-9]+(?:-[a-z0-9]+)*")
DEFINITION = re.compile(r"^\$\$\s*\((eq-[a-z0-9-]+)\)\s*$", re.M)
CHAPTER = re.compile(r'chapter "([a-z0-9_-]+)"')


def _chapters() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted((ROOT / "book").glob("*.md"))}


def _definitions() -> dict[str, list[str]]:
    """label -> chapters defining it (a ``$$ (eq-label)`` line closing a display equation)."""
    out: dict[str, list[str]] = {}
    for name, text in _chapters().items():
        for label in DEFINITION.findall(text):
            out.setdefault(label, []).append(name)
    return out


def _docstrings():
    """(where, docstring) for every module, class and function docstring in dlib."""
    for path in sorted((ROOT / "dlib").rglob("*.py")):
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT)
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield f"{rel}:{getattr(node, 'name', '<module>')}", doc


def _citations(doc: str):
    """(label, chapter named before it in the same clause or None) for every label in a docstring.

    A clause is the text between ``(`` ``)`` ``;`` and line breaks that end a sentence; a label
    belongs to the last ``chapter "X"`` written before it in its clause.
    """
    for clause in re.split(r"[();]|\.\s", doc):
        chapter = None
        for token in re.finditer(rf'{CHAPTER.pattern}|{LABEL.pattern}', clause):
            if token.group(1):
                chapter = token.group(1)
            else:
                yield token.group(0), chapter


def test_every_label_is_defined_once():
    twice = {label: where for label, where in _definitions().items() if len(where) > 1}
    assert not twice, f"labels defined in more than one chapter: {twice}"


def test_docstring_labels_exist_in_the_chapter_they_name():
    defined, chapters = _definitions(), set(_chapters())
    problems = []
    for where, doc in _docstrings():
        for name in CHAPTER.findall(doc):
            if name not in chapters:
                problems.append(f"{where}: names chapter {name!r}, which does not exist")
        for label, chapter in _citations(doc):
            if label not in defined:
                problems.append(f"{where}: cites {label}, defined in no chapter")
            elif chapter is not None and chapter not in defined[label]:
                problems.append(f"{where}: cites {label} as chapter {chapter!r}'s; it is in {defined[label][0]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("test_*.py")), ids=lambda p: p.name)
def test_every_test_module_says_which_labels_it_checks(path):
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    line = next((ln for ln in doc.splitlines() if ln.startswith("Equations checked:")), None)
    assert line is not None, f"{path.name}: its docstring needs a line 'Equations checked: eq-..., ...' (or 'none ...')"
    missing = [label for label in LABEL.findall(line) if label not in _definitions()]
    assert not missing, f"{path.name} says it checks {missing}, which no chapter defines"


def test_the_link_checker_can_fail():
    # negative controls: a made-up label, a label attributed to the wrong chapter, a missing chapter
    cited = list(_citations('x (chapter "posterior", eq-q-xt-x0; chapter "forward", eq-alpha-bar) eq-nope'))
    assert cited == [("eq-q-xt-x0", "posterior"), ("eq-alpha-bar", "forward"), ("eq-nope", None)]
    defined = _definitions()
    assert "eq-nope" not in defined and "posterior" not in defined["eq-q-xt-x0"]
