"""MyST that must never reach a notebook a reader or student opens (tests/test_editions.py and
tests/test_grading.py grep the editions for it).

Roles are matched with their backtick: the maths of two chapters says ``\\text{ref}`` (a LaTeX
subscript), which is not the ``{ref}`` role.
"""
import re

MYST = [re.compile(p, re.M) for p in (r"\{eq\}`", r"\{cite(:\w+)?\}`", r"\{ref\}`", r"\{numref\}`", r"\{doc\}`",
                                      r"\{dropdown\}", r"\{admonition\}", r"```\{", r":::", r"\$\$ \(eq-",
                                      r"^\([\w:.-]+\)=\s*$")]


def myst_left(text: str) -> list[str]:
    """The MyST patterns found in ``text`` (empty when it reads cleanly)."""
    return [p.pattern for p in MYST if p.search(text)]
