"""The book as the edition builders read it: the chapters in table-of-contents order, the equation
numbers and titles the rendered book shows, and each chapter's exercises.

Equation numbers run through the whole book in table-of-contents order (the rendered book numbers
its labelled equations that way: forward has (1)-(4), elbo continues at (5)); a labelled display
``$$ ... $$ (eq-x)`` or a ``{math}`` directive with ``:label:`` takes the next number.

An exercise is found from the chapter's own markup, never from a list kept by hand: a code cell
calling ``check("name", function)`` (the stub the reader completes), the prompt in the markdown
just before it (the text from ``**Exercise``), and the worked solution in the ``{dropdown}``
that opens the markdown just after it (its first ``python`` block, which calls the same check).
:func:`exercises` raises :class:`ChapterError` naming every problem at once: a prompt without a
check, a check of a name the registry (``dlib.exercises``) does not know, a registered exercise
the chapter never checks, a check without a worked solution.
"""
from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jupytext
import yaml

from . import bib
from .myst import LABELLED_MATH, Index

ROOT = Path(__file__).resolve().parents[2]
PROMPT = re.compile(r"\*\*Exercise\b")
SOLUTION = re.compile(r"\A\s*(?P<fence>`{3,}|:{3,})\{dropdown\}\s*Solution[^\n]*\n(?P<body>.*?)\n(?P=fence)[ \t]*(?:\n|\Z)", re.S)
SOLUTION_CODE = re.compile(r"```python\n(?P<code>.*?)\n```", re.S)
MATH_LABEL = re.compile(r"^`{3,}\{math\}[^\n]*\n(?::[^\n]*\n)*?:label:[ \t]*(?P<label>[\w:.-]+)", re.M)
TARGET_TITLE = re.compile(r"^\((?P<label>[\w:.-]+)\)=[ \t]*\n(?:[ \t]*\n)*#+[ \t]+(?P<title>[^\n]+)", re.M)


class ChapterError(ValueError):
    """A chapter whose exercises cannot be read; the message lists every problem found."""


def toc_documents(root: Path = ROOT) -> list[str]:
    """Every document of _toc.yml (paths without suffix, e.g. "book/forward"), in book order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    docs = [toc["root"]]
    for part in toc.get("parts", []):
        docs += [c["file"] for c in part.get("chapters", [])]
    return docs


def chapters(root: Path = ROOT) -> list[str]:
    """The chapters (stems of book/*.md with a jupytext header) in book order; chapters missing
    from the table of contents come last, alphabetically."""
    stems = sorted(p.stem for p in (root / "book").glob("*.md") if p.read_text().startswith("---\njupytext:"))
    order = [d.rsplit("/", 1)[-1] for d in toc_documents(root)]
    return sorted(stems, key=lambda s: (order.index(s) if s in order else len(order), s))


@lru_cache(maxsize=4)
def index(root: Path = ROOT) -> Index:
    """Equation numbers and target titles across the whole book, and its bibliography."""
    equations, titles, number = {}, {}, 0
    for doc in toc_documents(root):
        path = root / f"{doc}.md"
        if not path.exists():
            continue
        text = path.read_text()
        labels = sorted([(m.start(), m["label"]) for m in LABELLED_MATH.finditer(text)] +
                        [(m.start(), m["label"]) for m in MATH_LABEL.finditer(text)])
        for _, label in labels:
            number += 1
            equations[label] = number
        titles.update({m["label"]: m["title"].strip() for m in TARGET_TITLE.finditer(text)})
    return Index(equations, titles, bib.load(root / "references.bib"))


def fresh_index(root: Path = ROOT) -> Index:
    """:func:`index` with an empty list of citations met, for one notebook's reference list."""
    out = copy.copy(index(root))
    out.cited = []
    return out


def read(chapter: str, root: Path = ROOT):
    """The chapter as a notebook (jupytext's reading of book/<chapter>.md)."""
    return jupytext.read(root / "book" / f"{chapter}.md")


def cells(chapter: str, root: Path = ROOT) -> list:
    """The chapter's cells as every edition starts from them: without jupytext's metadata, and with
    book/_setup_cell.py itself as the first code cell (each chapter carries a copy of it, which
    tests/test_pairing.py compares; an edition never ships a stale one)."""
    out = [copy.deepcopy(c) for c in read(chapter, root).cells]
    for cell in out:
        cell.metadata.pop("jupytext", None)
    first = next(c for c in out if c.cell_type == "code")
    first.source = (root / "book" / "_setup_cell.py").read_text().strip()
    return out


@dataclass(frozen=True)
class ChapterExercise:
    """Where one exercise sits in a chapter's cells (indices into ``read(chapter).cells``)."""

    name: str             # the registry's name, the first argument of check(...)
    function: str         # the reader's function, the second argument
    prompt_cell: int      # the markdown cell holding the prompt ...
    prompt_start: int     # ... from this offset (the "**Exercise" that opens it) to its end
    cell: int             # the stub code cell
    solution_cell: int    # the markdown cell that opens with the worked solution ...
    solution_end: int     # ... up to this offset (the end of the dropdown)
    solution: str         # the worked solution's code


def _check_calls(source: str) -> list[tuple[str, str]]:
    """``(name, function)`` of each top-level ``check("name", function)`` statement of a code cell."""
    lines = [l for l in source.split("\n") if not l.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return [(m[0], m[1]) for m in re.findall(r'^check\("([^"]+)",\s*(\w+)', source, re.M)]
    out = []
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "check" and call.args:
            name = call.args[0].value if isinstance(call.args[0], ast.Constant) else None
            fn = call.args[1].id if len(call.args) > 1 and isinstance(call.args[1], ast.Name) else "?"
            out.append((name if isinstance(name, str) else "?", fn))
    return out


def exercises(chapter: str, root: Path = ROOT, registered: list[str] | None = None) -> list[ChapterExercise]:
    """The chapter's exercises in order; :class:`ChapterError` if any is incomplete.
    ``registered``: the registry's names for this chapter (read from ``dlib.exercises`` by default)."""
    if registered is None:
        from dlib import exercises as registry
        registered = registry.names(chapter)
    cells = read(chapter, root).cells
    found, problems = [], []
    prompts = [(i, m.start()) for i, c in enumerate(cells) if c.cell_type == "markdown"
               for m in PROMPT.finditer(c.source)]
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        calls = _check_calls(cell.source)
        if len(calls) > 1:
            problems.append(f"cell {i} checks {len(calls)} exercises; one exercise per cell")
        for name, fn in calls[:1]:
            found.append(_one(chapter, cells, i, name, fn, prompts, problems))
    checked = [e.name for e in found if e is not None]
    for i, start in prompts:
        if not any(e is not None and (e.prompt_cell, e.prompt_start) == (i, start) for e in found):
            title = cells[i].source[start:start + 60].split("\n")[0]
            problems.append(f"the exercise {title!r} has no check: its code cell must call check(\"name\", function)")
    problems += [f"check({n!r}) names no registered exercise (dlib.exercises.{chapter} registers "
                 f"{registered})" for n in checked if n not in registered]
    problems += [f"the registered exercise {n!r} is never checked in the chapter" for n in registered if n not in checked]
    problems += [f"{n!r} is checked twice" for n in sorted({n for n in checked if checked.count(n) > 1})]
    if problems:
        raise ChapterError(f"chapter {chapter!r}: " + "; ".join(problems))
    return found


def _one(chapter, cells, i, name, fn, prompts, problems) -> ChapterExercise | None:
    before = [(c, s) for c, s in prompts if c < i]
    if not before or before[-1][0] != i - 1:
        problems.append(f"the check of {name!r} (cell {i}) has no prompt (\"**Exercise ...\") in the markdown just before it")
        return None
    after = cells[i + 1] if i + 1 < len(cells) else None
    match = SOLUTION.match(after.source) if after is not None and after.cell_type == "markdown" else None
    code = SOLUTION_CODE.search(match["body"]) if match else None
    if code is None or f'check("{name}"' not in code["code"]:
        problems.append(f"the check of {name!r} (cell {i}) is not followed by a worked solution: a "
                        f"{{dropdown}} Solution whose python block calls check(\"{name}\", ...)")
        return None
    return ChapterExercise(name, fn, i - 1, before[-1][1], i, i + 1, match.end(), code["code"])
