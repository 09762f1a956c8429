"""Automatic checks for the book's exercises: the exercise record, the registry and ``check``.

A reader writes a function and calls ``dlib.exercises.check("posterior-mean", my_function)``. The
check draws a few random inputs, calls the reader's function and the book's reference (a ``dlib``
function), and prints either a pass or the first mismatch (inputs, expected, got). It never
raises for a wrong answer, so a chapter keeps running; it returns a :class:`Result` that is truthy
only on a pass and carries the exercise's points (its weight). A stub that raises
``NotImplementedError`` is reported as "not attempted yet". A function that calls the reference
itself (or reads an input attribute that already holds the answer) fails: :mod:`.guard` watches
for it while the reader's function runs. :func:`export` writes this session's results to a CSV
or JSON file; a graded assignment calls ``check`` with a seed and trial count the reader never saw.

Each chapter's exercises live in their own module of this package (``dlib.exercises.<chapter>``),
which registers them here with :func:`register`. This module never imports those modules by name:
:func:`load_chapters` imports the ones listed in :data:`CHAPTERS` on first use of the registry, so
a chapter module can import this one without an import circle. ``tests/test_exercises.py`` proves
every check passes with the worked solution printed in the book and fails with a wrong answer.
"""
from __future__ import annotations

import csv
import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import schedules
from .guard import guarded, named, run_reference

__all__ = ["CHAPTERS", "Exercise", "Result", "EXERCISES", "register", "load_chapters", "names",
           "random_schedule", "random_images", "check", "results", "export"]

# The chapters that have exercises, in book order: each is a module ``dlib.exercises.<chapter>``.
CHAPTERS = ("forward", "posterior", "elbo", "scores", "measuring", "objectives", "ddpm", "ddim", "angular", "daed")


# -----------------------------------------------------------------------------------------------
# the exercise record and the registry

@dataclass(frozen=True)
class Exercise:
    """One checkable exercise: ``inputs(generator) -> dict`` of keyword arguments, and the
    ``reference(**inputs)`` output the reader's function must reproduce (to ``rtol``/``atol``).
    ``points`` is its weight in a graded assignment (all or nothing). ``forbid`` names ``dlib``
    functions an answer may not call besides the reference itself (see :mod:`.guard`)."""

    name: str
    chapter: str
    reference: Callable
    inputs: Callable[[torch.Generator], dict]
    rtol: float = 1e-5
    atol: float = 1e-6
    trials: int = 5
    points: float = 1.0
    forbid: tuple = ()


@dataclass(frozen=True)
class Result:
    """The outcome of one check: truthy on a pass; ``points`` of ``max_points`` (the exercise's
    weight when it passed, else 0); ``as_dict()`` for export."""

    name: str
    passed: bool
    message: str
    points: float = 0.0
    max_points: float = 1.0
    chapter: str = ""
    seed: int = 0
    trials: int = 0

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def as_dict(self) -> dict:
        return asdict(self)


EXERCISES: dict[str, Exercise] = {}   # name -> Exercise; complete once load_chapters() has run


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (names are unique)."""
    if exercise.name in EXERCISES and EXERCISES[exercise.name] != exercise:
        raise ValueError(f"an exercise named {exercise.name!r} is already registered")
    EXERCISES[exercise.name] = exercise
    return exercise


def load_chapters() -> dict[str, Exercise]:
    """Import every chapter module in :data:`CHAPTERS` (each registers its exercises on import;
    Python imports a module once, so calling this again is cheap) and return the registry."""
    for chapter in CHAPTERS:
        importlib.import_module(f"{__package__}.{chapter}")
    return EXERCISES


def names(chapter: str | None = None) -> list[str]:
    """The sorted names of every exercise, or of one chapter's."""
    return sorted(name for name, ex in load_chapters().items() if chapter in (None, ex.chapter))


# -----------------------------------------------------------------------------------------------
# random inputs shared by the chapters' exercises

def random_schedule(gen: torch.Generator):
    """A random short schedule for a check: linear (beta 1e-3..0.2) or cosine, T in 5..59."""
    T = int(torch.randint(5, 60, (1,), generator=gen))
    return schedules.linear(T, 1e-3, 0.2) if torch.rand(1, generator=gen) < 0.5 else schedules.cosine(T)


def random_images(gen: torch.Generator, shape=(3, 1, 4, 4)) -> torch.Tensor:
    """Random float64 "images" in [-1, 1] of the given shape, for a check."""
    return torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1


# -----------------------------------------------------------------------------------------------
# comparing an answer with the reference

def _flatten(value):
    if isinstance(value, (tuple, list)):
        return [y for x in value for y in _flatten(x)]
    if isinstance(value, dict):
        return [y for k in sorted(value) for y in _flatten(value[k])]
    return [value]


def _close(expected, got, rtol, atol) -> str | None:
    """None when ``got`` matches ``expected``; otherwise a short description of the difference."""
    exp, out = _flatten(expected), _flatten(got)
    if len(exp) != len(out):
        return f"wrong number or shape of outputs: expected {len(exp)}, got {len(out)}"
    for i, (e, g) in enumerate(zip(exp, out)):
        e = torch.as_tensor(e, dtype=torch.float64)
        try:
            g = torch.as_tensor(g, dtype=torch.float64)
        except Exception:
            return f"output {i}: expected a number or tensor, got {type(g).__name__}"
        if g.shape != e.shape and g.numel() != e.numel():
            return f"output {i}: expected shape {tuple(e.shape)}, got {tuple(g.shape)}"
        g = g.reshape(e.shape)
        if not torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=True):
            where = int(((g - e).abs() - atol - rtol * e.abs()).flatten().argmax())
            return (f"output {i}: mismatch at flat index {where}: expected {e.flatten()[where].item():.6g}, "
                    f"got {g.flatten()[where].item():.6g}")
    return None


def _describe(inputs: dict) -> str:
    parts = []
    for k, v in inputs.items():
        if torch.is_tensor(v):
            parts.append(f"{k}=tensor{tuple(v.shape)}" if v.numel() > 4 else f"{k}={v.tolist()}")
        else:
            parts.append(f"{k}={v!r}" if len(repr(v)) < 40 else f"{k}=<{type(v).__name__}>")
    return ", ".join(parts)


# -----------------------------------------------------------------------------------------------
# the check

def check(name: str, fn: Callable, seed: int = 0, verbose: bool = True, trials: int | None = None) -> Result:
    """Check the reader's ``fn`` against exercise ``name`` on ``trials`` random inputs (the
    exercise's own count by default) drawn from ``seed``.

    Returns a :class:`Result` (truthy on a pass), records it for :func:`export`, and prints its
    message when ``verbose``. Calling the reference inside ``fn`` fails the check (see :mod:`.guard`).
    """
    load_chapters()
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; known: {sorted(EXERCISES)}")
    ex = EXERCISES[name]
    trials = ex.trials if trials is None else int(trials)
    problem = _first_problem(ex, fn, seed, trials)
    passed = problem is None
    message = (f"[{name}] passed: {trials} random cases match the book's reference." if passed
               else f"[{name}] {problem}")
    result = Result(name, passed, message, ex.points if passed else 0.0, ex.points, ex.chapter, seed, trials)
    _RESULTS[name] = result
    if verbose:
        print(result.message)
    return result


def _first_problem(ex: Exercise, fn: Callable, seed: int, trials: int) -> str | None:
    """None when ``fn`` matches the reference on every trial, else what went wrong first."""
    gen = torch.Generator().manual_seed(seed)
    extra = named(ex.forbid)
    for trial in range(trials):
        inputs = ex.inputs(gen)
        expected, forbidden = run_reference(ex.reference, inputs)
        forbidden.merge(extra)
        with guarded(forbidden) as used:
            try:
                got = fn(**{k: (v.clone() if torch.is_tensor(v) else v) for k, v in inputs.items()})
                error = None
            except NotImplementedError:
                return "not attempted yet: replace `raise NotImplementedError`."
            except Exception as err:  # the reader's code failed: report it, keep the chapter running
                error = err
        if used:
            names = ", ".join(dict.fromkeys(used))
            return (f"case {trial + 1}: your function uses {names}, the book's reference for this "
                    "exercise: write the computation yourself.")
        if error is not None:
            return (f"case {trial + 1}: your function raised {type(error).__name__}: {error}\n"
                    f"  inputs: {_describe(inputs)}")
        problem = _close(expected, got, ex.rtol, ex.atol)
        if problem:
            return f"case {trial + 1} of {trials}: {problem}\n  inputs: {_describe(inputs)}"
    return None


# -----------------------------------------------------------------------------------------------
# this session's results, for export

_RESULTS: dict[str, Result] = {}   # exercise name -> the latest result of check


def results() -> list[Result]:
    """The latest result of every exercise checked in this session, in book order."""
    order = {c: i for i, c in enumerate(CHAPTERS)}
    return sorted(_RESULTS.values(), key=lambda r: (order.get(r.chapter, len(order)), r.name))


def export(path) -> list[dict]:
    """Write :func:`results` to ``path`` (``.json``: a list of records; otherwise CSV with a header)
    and return the records. Each record: name, passed, message, points, max_points, chapter, seed, trials."""
    records = [r.as_dict() for r in results()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(records, indent=2) + "\n")
    else:
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(Result.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(records)
    return records
