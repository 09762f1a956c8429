"""``python -m tools.editions colab|assignments|grade``: the commands behind ``make colab``,
``make assignments`` and ``make grade``.

    python -m tools.editions colab [--check]                  write colab/*.ipynb (or only compare)
    python -m tools.editions assignments [--chapters a,b] [--out DIR] [--seed N]
    python -m tools.editions grade SUBMISSIONS [--assignments DIR] [--out FILE.csv] [--chapter C]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import assignments, colab


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.editions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("colab", help="the Colab edition, colab/*.ipynb")
    c.add_argument("--check", action="store_true", help="compare only; exit 1 if a notebook would change")
    a = sub.add_parser("assignments", help="student and instructor editions (otter assign)")
    a.add_argument("--chapters", default="", help="comma-separated chapters (default: every chapter with exercises)")
    a.add_argument("--out", type=Path, default=assignments.OUT)
    a.add_argument("--seed", type=int, default=None, help="the hidden tests' seed (default: kept in OUT/seed.txt)")
    g = sub.add_parser("grade", help="grade a folder of submitted notebooks into a CSV")
    g.add_argument("submissions", type=Path)
    g.add_argument("--assignments", type=Path, default=assignments.OUT)
    g.add_argument("--out", type=Path, default=None, help="the CSV (default: SUBMISSIONS/grades.csv)")
    g.add_argument("--chapter", default=None, help="the chapter of notebooks whose metadata lost it")
    args = parser.parse_args(argv)

    if args.command == "colab":
        changed = colab.build(check=args.check)
        verb = "differ from the chapters (run `make colab`)" if args.check else "written"
        print(f"colab/: {len(changed)} notebook(s) {verb}: {', '.join(changed) or '-'}")
        return 1 if (args.check and changed) else 0
    if args.command == "assignments":
        only = [c for c in args.chapters.split(",") if c] or None
        built = assignments.build_all(args.out, only, args.seed)
        for chapter, paths in built.items():
            print(f"{chapter}: {paths['student'].relative_to(args.out.parent)}, "
                  f"{paths['instructor'].relative_to(args.out.parent)}, {paths['autograder'].name}")
        print(f"hidden-test seed in {args.out / 'seed.txt'}")
        return 0
    from .grade import grade
    out = args.out or args.submissions / "grades.csv"
    rows = grade(args.submissions, args.assignments, out, args.chapter)
    print(f"{len(rows)} submission(s) graded: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
