"""The Colab edition: colab/<chapter>.ipynb, what a reader opens from a chapter's "Open in Colab"
badge, generated from book/<chapter>.md and committed.

Why a separate edition: notebooks/*.ipynb are jupytext twins of the chapters, cell for cell and
character for character (tests/test_pairing.py), so that `make pair` and nbval keep the authors'
loop simple; their markdown is MyST, which Colab shows as raw text. The Colab edition has the same
code cells and plain markdown (:mod:`.myst`): numbered equations, "(Ho et al., 2020)" citations
and a reference list, titles for cross-references, admonitions as quotations and the worked
solutions folded under "Solution". Its metadata asks Colab for a GPU runtime, and its first
markdown cell says which runtime to choose. `make colab` regenerates it; tests/test_editions.py
fails when a committed notebook differs from what this module generates.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from . import chapters
from .myst import to_plain

OUT = chapters.ROOT / "colab"
GPU = "T4"   # the GPU of Colab's free tier
RUNTIME_NOTE = (
    "> **Runtime.** In Colab choose *Runtime → Change runtime type → {gpu} GPU* (this notebook asks "
    "for one when it opens). The first code cell fetches the book's code; then run the cells in order. "
    "Without a GPU every cell still runs, in the smaller `fast` setting (`dlib.setting()`).")


def _with_note(source: str, note: str) -> str:
    """The chapter's first markdown cell with ``note`` after its title line."""
    lines = source.split("\n")
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    rest = "\n".join(lines[at:]).strip("\n")
    return "\n".join(lines[:at] + ["", note, "", rest]).strip("\n")


def _references(index) -> nbformat.NotebookNode | None:
    if not index.cited:
        return None
    items = "\n".join(f"- {index.bib.reference(key)}" for key in index.cited)
    return nbformat.v4.new_markdown_cell("## References\n\n" + items)


def finish(cells: list, note: str, index) -> nbformat.NotebookNode:
    """A notebook of ``cells`` (markdown already plain) with ``note`` in the first markdown cell,
    the chapter's reference list at the end, stable cell ids and Colab's GPU metadata."""
    first_md = next(i for i, c in enumerate(cells) if c.cell_type == "markdown")
    cells[first_md].source = _with_note(cells[first_md].source, note)
    references = _references(index)
    nb = nbformat.v4.new_notebook(cells=cells + ([references] if references else []))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata = {
        "accelerator": "GPU",
        "colab": {"gpuType": GPU, "provenance": []},
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def plain_cells(chapter: str, solutions: str = "fold", index=None) -> list:
    """The chapter's cells (:func:`.chapters.cells`) with plain markdown, empty markdown cells dropped."""
    index = index or chapters.fresh_index()
    out = []
    for cell in chapters.cells(chapter):
        if cell.cell_type == "markdown":
            cell.source = to_plain(cell.source, index, solutions)
            if not cell.source.strip():
                continue
        out.append(cell)
    return out


def notebook(chapter: str) -> nbformat.NotebookNode:
    """The Colab edition of one chapter."""
    index = chapters.fresh_index()
    return finish(plain_cells(chapter, "fold", index), RUNTIME_NOTE.format(gpu=GPU), index)


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def build(out: Path = OUT, check: bool = False) -> list[str]:
    """Write (or, with ``check``, only compare) colab/<chapter>.ipynb for every chapter; return the
    chapters whose file was missing, stale or (with ``check``) would change, plus orphans."""
    changed = []
    for chapter in chapters.chapters():
        path, text = out / f"{chapter}.ipynb", render(notebook(chapter))
        if not path.exists() or path.read_text() != text:
            changed.append(chapter)
            if not check:
                out.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    orphans = sorted(p.stem for p in out.glob("*.ipynb") if p.stem not in chapters.chapters())
    return changed + [f"{o} (no chapter)" for o in orphans]
