"""Every exercise check passes with the worked solution printed in the book, and fails with a
wrong answer (a perturbed output, a wrong shape, an exception, an unattempted stub).

Equations checked: none directly (each exercise's reference is checked in its own module's tests).
"""
import ast
import importlib
import pathlib
import re

import pytest
import torch

import dlib
from dlib import exercises

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOLUTION = re.compile(r"````\{dropdown\} Solution\n```python\n(.*?)\n```", re.S)


def _solutions():
    out = []
    for md in sorted((ROOT / "book").glob("*.md")):
        for i, code in enumerate(SOLUTION.findall(md.read_text())):
            out.append(pytest.param(code, id=f"{md.stem}-{i + 1}"))
    return out


@pytest.mark.parametrize("code", _solutions())
def test_worked_solution_passes(code, monkeypatch):
    results = []
    real_check = exercises.check
    monkeypatch.setattr(exercises, "check", lambda *a, **k: results.append(real_check(*a, **k)) or results[-1])
    namespace = {"torch": torch, "dlib": dlib, "math": __import__("math"), "check": exercises.check}
    exec(compile(code, "<solution>", "exec"), namespace)
    assert results, "the solution does not call check(...)"
    assert all(results), [r.message for r in results]


def _every_exercise():
    return exercises.names()


@pytest.mark.parametrize("name", _every_exercise())
def test_wrong_answers_fail(name):
    ex = exercises.EXERCISES[name]

    def perturbed(**kw):
        out = ex.reference(**kw)
        return out * 1.01 + 0.01 if torch.is_tensor(out) else tuple(o * 1.01 + 0.01 for o in out)

    def wrong_shape(**kw):
        return torch.zeros(7)

    def raises(**kw):
        raise RuntimeError("boom")

    def stub(**kw):
        raise NotImplementedError

    assert exercises.check(name, lambda **kw: ex.reference(**kw), verbose=False)
    for fn, says in ((perturbed, "mismatch"), (wrong_shape, "shape"), (raises, "raised RuntimeError"),
                     (stub, "not attempted")):
        result = exercises.check(name, fn, verbose=False)
        assert not result and says in result.message, (fn.__name__, result.message)


def test_every_exercise_has_a_worked_solution():
    text = "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    for name in _every_exercise():
        assert re.search(rf'````\{{dropdown\}} Solution\n```python\n.*?check\("{re.escape(name)}"', text, re.S), name


def test_unknown_exercise():
    with pytest.raises(ValueError, match="unknown exercise"):
        exercises.check("no-such-exercise", lambda: None)


def test_registry_holds_every_chapter():
    registry = exercises.load_chapters()
    assert registry is exercises.EXERCISES
    for chapter in exercises.CHAPTERS:
        module = importlib.import_module(f"dlib.exercises.{chapter}")
        assert f'"{chapter}"' in module.__doc__.splitlines()[0], module.__doc__   # docstring names it
        assert exercises.names(chapter), f"chapter {chapter!r} registers no exercise"
    for name, ex in registry.items():
        assert ex.name == name and ex.chapter in exercises.CHAPTERS, (name, ex.chapter)
    assert sorted(exercises.names()) == sorted(registry)


def _imports(path: pathlib.Path) -> list[str]:
    """The modules a file imports statically, relative ones written with their dots (".checking")."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            out += [base] if node.module else [base + a.name for a in node.names]
    return out


def test_no_import_circle():
    # the package face and the checking module never import a chapter; a chapter imports only
    # the checking module and dlib's maths modules (never the package face, which re-exports check)
    package = ROOT / "dlib" / "exercises"
    for face in ("__init__.py", "checking.py"):
        chapters = [m for m in _imports(package / face) if m.lstrip(".").split(".")[-1] in exercises.CHAPTERS]
        assert not chapters, (face, chapters)
    for chapter in exercises.CHAPTERS:
        for module in _imports(package / f"{chapter}.py"):
            ok = module == ".checking" or (module.startswith("..") and not module.startswith("..exercises")) \
                or not module.startswith((".", "dlib"))
            assert ok, (chapter, module)
