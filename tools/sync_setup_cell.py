"""Rewrite the first code cell of every chapter (book/*.md with a jupytext header) to be
book/_setup_cell.py verbatim, keeping the cell's options (``:tags: [hide-input]``) as they are.

The set-up cell is the same in every chapter (tests/test_pairing.py checks it); this is how a new
version reaches them. Only the body of that one cell changes: the edit is made on the text, and
the script checks with jupytext that every other cell of the chapter reads exactly as before.
Afterwards run ``make pair`` (the notebooks/ twins) and ``make colab`` (the Colab edition).

    python tools/sync_setup_cell.py           # rewrite the chapters that differ, list them
    python tools/sync_setup_cell.py --check   # only list them; exit status 1 if any differs
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP = (ROOT / "book" / "_setup_cell.py").read_text().strip()
# the opening fence of a code cell, its option lines (":key: value") and an optional blank line,
# then the body up to the closing fence
FIRST_CODE_CELL = re.compile(r"(^```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*\n?)(.*?)(\n```[ \t]*$)", re.S | re.M)


def chapters() -> list[Path]:
    return sorted(p for p in (ROOT / "book").glob("*.md") if p.read_text().startswith("---\njupytext:"))


def synced(text: str) -> str:
    """``text`` with its first code cell's body replaced by the set-up cell."""
    match = FIRST_CODE_CELL.search(text)
    if match is None:
        raise ValueError("no code cell")
    return text[:match.start(2)] + SETUP + text[match.end(2):]


def _verify(before: str, after: str, name: str) -> None:
    """Every cell but the first code cell is unchanged, and that one is the set-up cell."""
    import jupytext

    a, b = jupytext.reads(before, fmt="md:myst"), jupytext.reads(after, fmt="md:myst")
    first = next(i for i, c in enumerate(b.cells) if c.cell_type == "code")
    assert len(a.cells) == len(b.cells), f"{name}: the number of cells changed"
    assert b.cells[first].source.strip() == SETUP, f"{name}: the first code cell is not the set-up cell"
    for i, (x, y) in enumerate(zip(a.cells, b.cells)):
        assert i == first or (x.source == y.source and x.cell_type == y.cell_type), f"{name}: cell {i} changed"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list the chapters that differ; change nothing")
    args = parser.parse_args(argv)
    stale = []
    for path in chapters():
        before = path.read_text()
        after = synced(before)
        if after == before:
            continue
        stale.append(path.relative_to(ROOT).as_posix())
        if not args.check:
            _verify(before, after, path.name)
            path.write_text(after)
    verb = "differ from" if args.check else "now match"
    print(f"{len(stale)} chapter(s) {verb} book/_setup_cell.py: {', '.join(stale) or '-'}")
    if stale and not args.check:
        print("next: make pair colab")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
