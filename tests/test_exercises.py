"""Every exercise check passes with the worked solution printed in the book, and fails with a
wrong answer (a perturbed output, a wrong shape, an exception, an unattempted stub)."""
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
    from dlib import exercise_bank  # noqa: F401
    return sorted(exercises.EXERCISES)


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
