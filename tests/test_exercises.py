"""Every exercise check passes with the worked solution printed in the book, and fails with a
wrong answer (a perturbed output, a wrong shape, an exception, an unattempted stub, a function
that calls the book's reference).

Equations checked: eq-q-step, eq-q-xt-x0 (the forward chapter's references against step-by-step
computations; every other exercise's reference is checked in its own module's tests).
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

    # the reference's answer to the check's first case, computed outside the check: inside it, the
    # guard fails any function that calls the reference (the last wrong answer below)
    first = ex.reference(**ex.inputs(torch.Generator().manual_seed(0)))

    def perturbed(**kw):
        return first * 1.01 + 0.01 if torch.is_tensor(first) else tuple(o * 1.01 + 0.01 for o in first)

    def wrong_shape(**kw):
        return torch.zeros(7)

    def raises(**kw):
        raise RuntimeError("boom")

    def stub(**kw):
        raise NotImplementedError

    def calls_the_reference(**kw):
        return ex.reference(**kw)

    for fn, says in ((perturbed, "mismatch"), (wrong_shape, "shape"), (raises, "raised RuntimeError"),
                     (stub, "not attempted"), (calls_the_reference, "the book's reference")):
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


def test_forward_references_agree_with_independent_computations():
    # chapter "forward": the step-by-step variance (eq-q-step) against the closed form (eq-q-xt-x0),
    # the half-life against alpha_bar < 1/2, the rescaled endpoints against a schedule's sum
    from dlib import gaussian_chain, schedules

    ex = exercises.EXERCISES
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        inputs = ex["forward-variance"].inputs(gen)
        closed_form = gaussian_chain.forward_marginals(inputs["schedule"], 0.0, inputs["data_var"])[1]
        assert torch.allclose(ex["forward-variance"].reference(**inputs), closed_form, rtol=1e-10)
        s = ex["snr-half-life"].inputs(gen)["schedule"]
        assert int(ex["snr-half-life"].reference(s)) == int(torch.nonzero(s.alpha_bars < 0.5)[0])
        inputs = ex["rescaled-endpoints"].inputs(gen)
        start, end = ex["rescaled-endpoints"].reference(**inputs)
        ref = schedules.linear(inputs["T_ref"], inputs["beta_start"], inputs["beta_end"]).betas.sum()
        assert torch.isclose(schedules.linear(inputs["T"], start, end).betas.sum(), ref, rtol=1e-9)


def test_measuring_references_are_deterministic_and_match_closed_forms():
    # chapter "measuring": the KID reference uses one subset holding every row, so no seed can change
    # it; the diagonal Frechet reference is the 1-D 2-Wasserstein distance summed over coordinates
    from dlib.metrics import gaussian_frechet_distance, kernel_distance

    ex = exercises.load_chapters()
    gen = torch.Generator().manual_seed(3)
    inputs = ex["kid-unbiased"].inputs(gen)
    m = len(inputs["real"])
    values = {kernel_distance(inputs["real"], inputs["fake"], subsets=1, subset_size=m, seed=s)[0] for s in range(4)}
    assert len({round(v, 12) for v in values}) == 1
    assert float(ex["kid-unbiased"].reference(**inputs)) == pytest.approx(values.pop(), rel=1e-12)
    inputs = ex["frechet-diagonal"].inputs(gen)
    one_d = sum(float(gaussian_frechet_distance(inputs["mu1"][i:i + 1], inputs["var1"][i].reshape(1, 1),
                                                inputs["mu2"][i:i + 1], inputs["var2"][i].reshape(1, 1)))
                for i in range(len(inputs["mu1"])))
    closed = ((inputs["mu1"] - inputs["mu2"]) ** 2 + (inputs["var1"].sqrt() - inputs["var2"].sqrt()) ** 2).sum()
    assert float(ex["frechet-diagonal"].reference(**inputs)) == pytest.approx(one_d, rel=1e-9)
    assert one_d == pytest.approx(float(closed), rel=1e-9)
