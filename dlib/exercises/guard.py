"""Keep the reference out of the answer: notice when a reader's function uses the book's reference.

A check compares the reader's function with the exercise's reference, which is a ``dlib``
function (``diffusion.q_posterior`` for "posterior-mean"). Without a guard, a function that only
calls that reference would pass, in the book and in a graded assignment alike. What counts as
"the reference" is found by running it once, so no exercise has to declare anything:

* :func:`run_reference` calls the reference under :func:`sys.setprofile` and records the
  reference callable itself and every ``dlib`` function called directly from the code of
  :mod:`dlib.exercises` while it runs (the lambda of "posterior-mean" and ``q_posterior``; not
  the helpers ``q_posterior`` calls in turn). Methods of the inputs themselves (``schedule.snr``,
  ``schedule.T``) are not recorded: reading the inputs is the exercise. Neither are dunder methods
  (constructors). It also records the attributes of input objects that already hold the answer
  (``schedule.beta_tildes`` for "beta-tilde").
* :func:`named` adds functions an exercise names itself (``Exercise.forbid``): a shortcut the
  reference does not call, such as the closed form a written-out reference checks against.
* :func:`guarded` runs the reader's function with a profiler that notes every call of a
  recorded function, whatever name it was imported under, and with a class-level property that
  notes every read of a recorded attribute. The check then fails the answer and names what it used.

This is a guard against shortcuts, not a sandbox: code that sets out to defeat it (replacing the
profiler, copying the reference's source) can; the graded hidden tests use inputs the reader never
saw as well.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

_DLIB = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep   # .../dlib/
_EXERCISES = os.path.dirname(os.path.abspath(__file__)) + os.sep              # .../dlib/exercises/

__all__ = ["Forbidden", "run_reference", "named", "guarded"]


@dataclass
class Forbidden:
    """What the reader's function may not use: ``codes`` maps code objects to dotted names,
    ``attributes`` lists ``(class, attribute name)`` pairs of input objects holding the answer."""

    codes: dict = field(default_factory=dict)
    attributes: list = field(default_factory=list)

    def merge(self, other: "Forbidden") -> None:
        self.codes.update(other.codes)
        self.attributes += [a for a in other.attributes if a not in self.attributes]


def _dotted(frame) -> str:
    code = frame.f_code
    module = frame.f_globals.get("__name__", "?")
    return f"{module}.{getattr(code, 'co_qualname', code.co_name)}"


def run_reference(reference, inputs: dict):
    """Call ``reference(**inputs)``; return its output and the :class:`Forbidden` it implies."""
    top = sys._getframe()
    found = Forbidden()

    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        if code in found.codes or not code.co_filename.startswith(_DLIB):
            return
        caller = frame.f_back
        if caller is not top and not caller.f_code.co_filename.startswith(_EXERCISES):
            return                                  # called by dlib itself: a helper, not the reference
        if code.co_name.startswith("__") and code.co_name.endswith("__"):
            return                                  # constructors and the like
        owner = frame.f_locals.get("self") if code.co_argcount else None
        if owner is not None and any(owner is value for value in inputs.values()):
            return                                  # a method of an input: reading the inputs is allowed
        found.codes[code] = _dotted(frame)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        expected = reference(**inputs)
    finally:
        sys.setprofile(previous)
    found.attributes = _answer_attributes(inputs, expected)
    return expected, found


def named(names) -> Forbidden:
    """:class:`Forbidden` for dotted names of functions (``"dlib.gaussian_chain.forward_marginals"``,
    a method ``"dlib.schedules.Schedule.snr"``, a property's getter)."""
    import importlib

    found = Forbidden()
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):      # the longest importable module prefix
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ImportError:
                continue
        for attr in parts[cut:]:
            obj = vars(obj)[attr] if isinstance(obj, type) and attr in vars(obj) else getattr(obj, attr)
        function = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
        found.codes[function.__code__] = name
    return found


def _tensors(value):
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _answer_attributes(inputs: dict, expected) -> list:
    """``(class, name)`` of every attribute of a ``dlib`` input object whose stored tensor (or a
    tensor inside a stored dict or tuple) equals one of the expected outputs."""
    answers = [e for e in _tensors(expected) if e.numel() > 1]
    out = []
    for value in inputs.values():
        cls = type(value)
        if not cls.__module__.startswith("dlib") or not hasattr(value, "__dict__"):
            continue
        for name, stored in vars(value).items():
            hit = any(s.shape == e.shape and torch.equal(s.to(e.dtype), e) for s in _tensors(stored) for e in answers)
            if hit and (cls, name) not in out:
                out.append((cls, name))
    return out


@contextmanager
def _watched(attributes, used: list):
    """Install a class-level property for each ``(class, name)`` that notes every read (a data
    descriptor on the class takes precedence over the instance's ``__dict__``) and restore the
    class afterwards. Writes go to the instance's ``__dict__`` as before."""
    saved = []
    try:
        for cls, name in attributes:
            saved.append((cls, name, name in cls.__dict__, cls.__dict__.get(name)))
            label = f"{cls.__module__}.{cls.__qualname__}.{name}"

            def read(obj, name=name, label=label):
                used.append(label)
                return obj.__dict__[name]

            def write(obj, value, name=name):
                obj.__dict__[name] = value

            setattr(cls, name, property(read, write))
        yield
    finally:
        for cls, name, had, old in reversed(saved):
            if had:
                setattr(cls, name, old)
            else:
                delattr(cls, name)


@contextmanager
def guarded(forbidden: Forbidden):
    """Run the body with ``forbidden`` watched; yields the list of names used (empty if none)."""
    used: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in forbidden.codes:
            used.append(forbidden.codes[frame.f_code])

    previous = sys.getprofile()
    with _watched(forbidden.attributes, used):
        sys.setprofile(profile)
        try:
            yield used
        finally:
            sys.setprofile(previous)
