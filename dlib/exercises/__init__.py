"""Automatic checks for the chapters' exercises: ``from dlib.exercises import check``.

==================  ===============================================================================
``checking``        ``check``, the ``Exercise``/``Result`` records, the registry, ``CHAPTERS``, the
                    random inputs shared by the chapters, ``results``/``export`` of a session
``guard``           what counts as an exercise's reference, and the watch that fails an answer
                    calling it
``__main__``        ``python -m dlib.exercises --list``: every chapter's exercises and points
``forward``, ...    one module per chapter in ``CHAPTERS`` registers that chapter's exercises
==================  ===============================================================================

This file only re-exports :mod:`.checking`; it never imports a chapter module. The chapter modules
are imported by :func:`load_chapters` from the list :data:`CHAPTERS` the first time ``check``,
``names`` or ``EXERCISES`` is used, so the package has no import circle.
"""
from .checking import (CHAPTERS, Exercise, Result, check, export, load_chapters, names, random_images,
                       random_schedule, register, results)

__all__ = ["CHAPTERS", "EXERCISES", "Exercise", "Result", "check", "export", "load_chapters", "names",
           "random_images", "random_schedule", "register", "results"]


def __getattr__(name: str):
    # ``dlib.exercises.EXERCISES`` is the registry with every chapter's exercises loaded (PEP 562)
    if name == "EXERCISES":
        return load_chapters()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
