"""Grade a folder of submitted notebooks into a CSV of scores, with otter-grader and no containers.

Each ``*.ipynb`` in the folder is graded with ``otter run`` (``otter.api.grade_submission``):
otter executes the notebook top to bottom in a fresh kernel in a scratch folder, then runs the
chapter's hidden tests (from ``<assignments>/<chapter>/instructor/autograder.zip``, built by
``make assignments``) against what the notebook defined. The chapter is read from the notebook's
metadata (``otter.assignment_name``, which the student edition carries); ``--chapter`` names it for
notebooks that lost their metadata.

Grading runs in this environment (no Docker): the kernel finds the book through
``DIFFUSION_BOOK_ROOT`` (the set-up cell's first place to look) and runs in the ``fast`` setting
unless ``DLIB_SETTING`` says otherwise. A notebook is code that runs with your permissions: grade
submissions you would run yourself, or use otter's Docker grading (``otter grade``) with the same
zip on a machine that has Docker.

The CSV has one row per submission: ``submission``, ``chapter``, one column per exercise (its
points), ``total``, ``possible``, ``cells_failed`` (cells that raised while the notebook ran) and
``error`` (why a submission could not be graded at all).
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from pathlib import Path

import nbformat

from . import chapters

FIXED = ["submission", "chapter"]
TAIL = ["total", "possible", "cells_failed", "error"]


def _chapter_of(path: Path, default: str | None) -> str | None:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:          # not a notebook: grade_one will say so
        return default
    return nb.metadata.get("otter", {}).get("assignment_name") or default


def _with_name(path: Path, chapter: str, scratch: Path) -> Path:
    """A copy of the submission whose metadata names its chapter (otter checks the name)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault("otter", {})["assignment_name"] = chapter
    copy = scratch / path.name
    nbformat.write(nb, copy)
    return copy


def grade_one(path: Path, autograder: Path) -> dict:
    """The row of one submission (without ``submission``/``chapter``)."""
    from otter.api import grade_submission

    results = grade_submission(str(path), str(autograder), quiet=True)
    row = {name: results.get_score(name) for name in results.test_files}
    failed = sum(any(o.get("output_type") == "error" for o in c.get("outputs", []))
                 for c in (results.notebook.cells if results.notebook else []) if c.cell_type == "code")
    return {**row, "total": results.total, "possible": results.possible, "cells_failed": failed, "error": ""}


def grade(submissions: Path, assignments: Path, out: Path, chapter: str | None = None) -> list[dict]:
    """Grade every notebook in ``submissions``; write ``out`` (CSV) and return its rows."""
    os.environ.setdefault("DIFFUSION_BOOK_ROOT", str(chapters.ROOT))
    os.environ.setdefault("DLIB_SETTING", "fast")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    paths = sorted(p for p in Path(submissions).glob("*.ipynb") if not p.name.startswith("."))
    if not paths:
        raise FileNotFoundError(f"no .ipynb files in {submissions}")
    rows, scratch = [], Path(tempfile.mkdtemp(prefix="grading-"))
    for path in paths:
        name = _chapter_of(path, chapter)
        row = {"submission": path.name, "chapter": name or ""}
        zip_path = Path(assignments) / (name or "?") / "instructor" / "autograder.zip"
        if name is None or not zip_path.exists():
            row["error"] = ("no chapter in the notebook's metadata: pass --chapter" if name is None else
                            f"no autograder for {name!r} in {assignments}: run `make assignments`")
        else:
            try:
                row.update(grade_one(_with_name(path, name, scratch), zip_path))
            except Exception as err:   # one broken submission must not stop the others
                row["error"] = f"{type(err).__name__}: {err}"
        rows.append(row)
        print(f"{path.name}: {row.get('total', '-')} / {row.get('possible', '-')} {row.get('error', '')}".rstrip())
    shutil.rmtree(scratch, ignore_errors=True)
    _write(rows, Path(out))
    return rows


def _write(rows: list[dict], out: Path) -> None:
    exercises = list(dict.fromkeys(k for r in rows for k in r if k not in FIXED + TAIL))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIXED + exercises + TAIL, restval="")
        writer.writeheader()
        writer.writerows(rows)
