"""Every chapter in book/ has an .ipynb twin in notebooks/ with identical cells, and no outputs.

Equations checked: none (the notebooks' pairing with the chapters).
"""
import json
import pathlib

import jupytext
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p for p in (ROOT / "book").glob("*.md") if p.read_text().startswith("---\njupytext:"))
SETUP_CELL = (ROOT / "book" / "_setup_cell.py").read_text().strip()


def test_there_are_chapters():
    assert CHAPTERS, "no jupytext chapters found in book/"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_twin_has_the_same_cells(md):
    twin = ROOT / "notebooks" / f"{md.stem}.ipynb"
    assert twin.exists(), f"{md.name} has no twin {twin.relative_to(ROOT)}: run `make pair`"
    a, b = jupytext.read(md), jupytext.read(twin)
    assert len(a.cells) == len(b.cells), f"{md.name}: {len(a.cells)} cells, twin has {len(b.cells)}: run `make pair`"
    for i, (x, y) in enumerate(zip(a.cells, b.cells)):
        assert x.cell_type == y.cell_type, f"{md.name} cell {i}: {x.cell_type} vs {y.cell_type}"
        assert x.source == y.source, f"{md.name} cell {i} differs from its twin: run `make pair`"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_twin_is_committed_without_outputs(md):
    nb = json.loads((ROOT / "notebooks" / f"{md.stem}.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{md.stem}: strip outputs"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_setup_cell(md):
    code = [c for c in jupytext.read(md).cells if c.cell_type == "code"]
    assert code and code[0].source.strip() == SETUP_CELL, f"{md.name}: first code cell must be book/_setup_cell.py"


def test_no_orphan_notebooks_and_every_chapter_in_toc():
    stems = {p.stem for p in CHAPTERS}
    orphans = [p.name for p in (ROOT / "notebooks").glob("*.ipynb") if p.stem not in stems]
    assert not orphans, f"notebooks without a book/ source: {orphans}"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = {c["file"] for part in toc["parts"] for c in part["chapters"]}
    missing = [s for s in stems if f"book/{s}" not in files]
    assert not missing, f"chapters missing from _toc.yml: {missing}"


def test_pairing_check_catches_a_difference(tmp_path):
    md = CHAPTERS[0]
    nb = jupytext.read(md)
    nb.cells[-1].source += "\n# edited"
    assert nb.cells[-1].source != jupytext.read(md).cells[-1].source
