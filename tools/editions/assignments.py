"""Student and instructor editions of a chapter, built with otter-grader's ``otter assign``.

For each chapter this writes an otter "master" notebook (plain markdown, as in the Colab edition)
in which every exercise found by :func:`.chapters.exercises` is an otter question:

* the prompt (the markdown from "**Exercise") opens the question;
* the solution block holds one code cell: the worked solution from the chapter's dropdown for the
  instructor, and, as otter's prompt for the student, the chapter's stub cell exactly as the book
  prints it (``raise NotImplementedError`` and the in-book ``check(...)``); the dropdown itself,
  folded in ``<details>``, is a solution cell too, so otter removes it from the student edition;
* one hidden test per exercise: the book's public check (seed 0) and then ``trials`` cases from a
  seed the student never sees, both through ``dlib.exercises.check``, whose guard fails a function
  that calls the book's reference. The question is worth the exercise's ``points``.

``otter assign`` then writes the student notebook (solutions and tests removed, nothing hidden in
it) and the autograder notebook and zip. The result, per chapter::

    <out>/<chapter>/student/<chapter>.ipynb        hand this out (Colab: GPU runtime requested)
    <out>/<chapter>/instructor/<chapter>.ipynb     solutions in place, hidden tests in its metadata
    <out>/<chapter>/instructor/autograder.zip      what `make grade` (otter run) grades against

The hidden seed is drawn once per output folder and kept in ``<out>/seed.txt``, so rebuilding
does not change what earlier submissions are graded on.
"""
from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import zlib
from pathlib import Path

import nbformat

from . import chapters, colab
from .myst import to_plain

OUT = chapters.ROOT / "_build" / "assignments"
HIDDEN_TRIALS = 20
STUDENT_NOTE = colab.RUNTIME_NOTE.format(gpu=colab.GPU) + (
    "\n>\n> **Assignment.** Complete each exercise's function where it says `raise NotImplementedError`; "
    "the check under it says whether your answer passes on the book's test inputs. Grading runs the same "
    "checks on inputs you have not seen, and an answer that calls the book's own implementation scores "
    "nothing for that exercise. Hand in this notebook (in Colab: *File → Download → Download .ipynb*).")
INSTRUCTOR_NOTE = ("> **Instructor edition.** The worked solutions are filled in (and folded under each "
                   "exercise); the hidden tests are in `autograder.zip` beside this notebook.")


def _raw(text: str):
    return nbformat.v4.new_raw_cell(text)


def _config(chapter: str):
    return _raw("# ASSIGNMENT CONFIG\n" + "\n".join([
        f"name: {chapter}", "init_cell: false", "check_all_cell: false", "export_cell: false",
        "run_tests: false", "tests:", "  files: false", "  ok_format: false", "generate:", "  pdf: false"]))


def hidden_seed(seed: int, name: str) -> int:
    """The hidden inputs' seed for one exercise: distinct per exercise, fixed by the build's seed."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def _answer_cell(stub: str, solution: str):
    """The solution for the instructor, the book's stub as otter's prompt for the student."""
    if '"""' in stub:
        raise ValueError("a stub cell may not contain triple double quotes")
    return nbformat.v4.new_code_cell(
        f"# BEGIN SOLUTION NO PROMPT\n{solution.strip()}\n# END SOLUTION\n"
        f'""" # BEGIN PROMPT\n{stub.strip()}\n"""; # END PROMPT')


def _test_cell(ex, seed: int, trials: int):
    fn = "test_" + re.sub(r"\W", "_", ex.name)
    return nbformat.v4.new_code_cell(
        '""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'
        f"def {fn}({ex.function}):\n"
        "    from dlib.exercises import check\n"
        "    # the book's public check, then inputs it never showed; calling the book's reference fails both\n"
        f"    for seed, trials in ((0, None), ({hidden_seed(seed, ex.name)}, {trials})):\n"
        f'        result = check("{ex.name}", {ex.function}, seed=seed, trials=trials, verbose=False)\n'
        "        assert result, result.message\n"
        f"{fn}({ex.function})")


def _pieces(cells, found):
    """``(kind, exercise, cell-or-text)`` in chapter order, markdown split at prompts and solutions."""
    prompts, stubs, solutions = ({getattr(e, k): e for e in found} for k in ("prompt_cell", "cell", "solution_cell"))
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            yield ("stub", stubs[i], cell) if i in stubs else ("cell", None, cell)
            continue
        text, start = cell.source, 0
        if i in solutions:
            yield "solution", solutions[i], text[:solutions[i].solution_end]
            start = solutions[i].solution_end
        end = prompts[i].prompt_start if i in prompts else len(text)
        yield "text", None, text[start:end]
        if i in prompts:
            yield "prompt", prompts[i], text[end:]


def master(chapter: str, seed: int, trials: int = HIDDEN_TRIALS) -> nbformat.NotebookNode:
    """The otter master notebook of one chapter."""
    from dlib.exercises import EXERCISES

    index = chapters.fresh_index()
    found = chapters.exercises(chapter)
    cells = [_config(chapter)]
    for kind, ex, item in _pieces(chapters.cells(chapter), found):
        if kind == "cell":
            cells.append(item)
        elif kind == "text":
            text = to_plain(item, index, "drop")
            cells += [nbformat.v4.new_markdown_cell(text)] if text.strip() else []
        elif kind == "prompt":
            points = EXERCISES[ex.name].points
            cells += [_raw(f"# BEGIN QUESTION\nname: {ex.name}\npoints: {points:g}\ncheck_cell: false"),
                      nbformat.v4.new_markdown_cell(to_plain(item, index, "drop"))]
        elif kind == "stub":
            cells += [_raw("# BEGIN SOLUTION"), _answer_cell(item.source, ex.solution)]
        elif kind == "solution":
            cells += [nbformat.v4.new_markdown_cell(to_plain(item, index, "fold")), _raw("# END SOLUTION"),
                      _raw("# BEGIN TESTS"), _test_cell(ex, seed, trials), _raw("# END TESTS"), _raw("# END QUESTION")]
    return colab.finish(cells, STUDENT_NOTE, index)


def _instructor(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """otter's autograder notebook, readable: the solution cells without otter's markers and
    without the student's stub, and a note saying which edition this is."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "otter_assign_solution_cell" in cell.metadata.get("tags", []):
            source = re.sub(r'\n?""" # BEGIN PROMPT\n.*?\n"""; # END PROMPT', "", cell.source, flags=re.S)
            cell.source = source.replace("# BEGIN SOLUTION NO PROMPT\n", "").replace("\n# END SOLUTION", "")
    first = next(c for c in nb.cells if c.cell_type == "markdown")
    first.source = first.source.replace("> **Assignment.**", INSTRUCTOR_NOTE + "\n>\n> **Assignment.**", 1)
    return nb


def build(chapter: str, out: Path, seed: int, trials: int = HIDDEN_TRIALS) -> dict[str, Path]:
    """Both editions of one chapter under ``out/<chapter>``; returns their paths."""
    from otter.assign import main as otter_assign

    target = out / chapter
    shutil.rmtree(target, ignore_errors=True)
    (target / "student").mkdir(parents=True)
    (target / "instructor").mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{chapter}.ipynb"
        nbformat.write(master(chapter, seed, trials), source)
        otter_assign(str(source), str(Path(tmp) / "dist"), no_pdfs=True, no_run_tests=True)
        dist = Path(tmp) / "dist"
        shutil.copy(dist / "student" / f"{chapter}.ipynb", target / "student" / f"{chapter}.ipynb")
        nbformat.write(_instructor(nbformat.read(dist / "autograder" / f"{chapter}.ipynb", as_version=4)),
                       target / "instructor" / f"{chapter}.ipynb")
        shutil.copy(next((dist / "autograder").glob("*.zip")), target / "instructor" / "autograder.zip")
    return {"student": target / "student" / f"{chapter}.ipynb",
            "instructor": target / "instructor" / f"{chapter}.ipynb",
            "autograder": target / "instructor" / "autograder.zip"}


def build_seed(out: Path, seed: int | None = None) -> int:
    """The build's hidden seed: ``seed`` if given (and recorded), else the one recorded in
    ``out/seed.txt``, else a fresh random one (recorded)."""
    record = out / "seed.txt"
    if seed is None and record.exists():
        return int(record.read_text().split()[0])
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{seed}\n")
    return seed


def build_all(out: Path = OUT, only: list[str] | None = None, seed: int | None = None,
              trials: int = HIDDEN_TRIALS) -> dict[str, dict[str, Path]]:
    """Both editions of every chapter that has exercises (or of ``only``)."""
    from dlib.exercises import names

    seed = build_seed(out, seed)
    todo = only or [c for c in chapters.chapters() if names(c)]
    return {chapter: build(chapter, out, seed, trials) for chapter in todo}
