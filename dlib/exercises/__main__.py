"""``python -m dlib.exercises --list``: every chapter's exercises, their points, and the reference
functions an answer may not call.

The instructor's page of the book points here instead of printing a table that would go stale:
the registry is the one list of exercises. ``--markdown`` prints the same as a Markdown table.
"""
from __future__ import annotations

import argparse
from .checking import CHAPTERS, load_chapters
from .guard import named, run_reference


def _reference(ex) -> str:
    """What the check refuses inside an answer: the dlib functions and input attributes the guard
    records for the reference on the first public input (the reference itself when it is written
    out in the chapter's exercise module)."""
    import torch

    _, forbidden = run_reference(ex.reference, ex.inputs(torch.Generator().manual_seed(0)))
    forbidden.merge(named(ex.forbid))
    names = [n for n in forbidden.codes.values() if not n.startswith("dlib.exercises.")]
    names += [f"{cls.__module__}.{cls.__qualname__}.{attr}" for cls, attr in forbidden.attributes]
    return ", ".join(dict.fromkeys(names)) or f"(written out in dlib.exercises.{ex.chapter})"


def rows() -> list[tuple[str, str, float, str]]:
    """``(chapter, exercise, points, refused)`` for every registered exercise, in book order."""
    registry = load_chapters()
    return [(c, ex.name, ex.points, _reference(ex))
            for c in CHAPTERS for ex in sorted(registry.values(), key=lambda e: e.name) if ex.chapter == c]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlib.exercises", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every exercise (the default)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    table = rows()
    if args.markdown:
        print("| chapter | exercise | points | an answer may not call |\n|---|---|---|---|")
        for chapter, name, points, ref in table:
            print(f"| {chapter} | `{name}` | {points:g} | `{ref}` |")
        return 0
    for chapter in CHAPTERS:
        mine = [r for r in table if r[0] == chapter]
        print(f"{chapter}: {len(mine)} exercises, {sum(r[2] for r in mine):g} points")
        for _, name, points, ref in mine:
            print(f"  {name:24s} {points:g}  {ref}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
