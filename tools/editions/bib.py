"""references.bib as the plain notebooks cite it: "(Ho et al., 2020)", "Ho et al. (2020)", and the
list of works a chapter cites, written without LaTeX (accents decoded, braces dropped).

The rendered book cites through sphinxcontrib-bibtex in its author-year style; the notebooks show
the same author-year form as plain text, since Jupyter and Colab have no bibliography machinery.
"""
from __future__ import annotations

import codecs
import re
from functools import lru_cache
from pathlib import Path

import latexcodec  # noqa: F401  (registers the "ulatex" codec)
from pybtex.database import parse_file


def _plain(text: str) -> str:
    return re.sub(r"[{}]", "", codecs.decode(text, "ulatex"))


class Bibliography:
    """The entries of one .bib file, keyed by citation key."""

    def __init__(self, path: Path):
        self.entries = parse_file(str(path)).entries

    def _entry(self, key: str):
        if key not in self.entries:
            raise KeyError(f"citation {key!r} is not in references.bib")
        return self.entries[key]

    def authors(self, key: str) -> str:
        """"Ho", "Ho and Jain" or "Ho et al." (last names, as the book's author-year style)."""
        people = self._entry(key).persons.get("author", [])
        last = [_plain(" ".join(p.prelast_names + p.last_names)) for p in people] or ["Anonymous"]
        return last[0] if len(last) == 1 else " and ".join(last) if len(last) == 2 else f"{last[0]} et al."

    def year(self, key: str) -> str:
        return self._entry(key).fields.get("year", "n.d.")

    def cite(self, keys: list[str], textual: bool) -> str:
        """``{cite}`` -> "(Ho et al., 2020; Song et al., 2021)"; ``{cite:t}`` -> "Ho et al. (2020)"."""
        if textual:
            return ", ".join(f"{self.authors(k)} ({self.year(k)})" for k in keys)
        return "(" + "; ".join(f"{self.authors(k)}, {self.year(k)}" for k in keys) + ")"

    def reference(self, key: str) -> str:
        """One line of a reference list: authors (year). *Title*. Venue."""
        entry = self._entry(key)
        people = [_plain(" ".join(p.prelast_names + p.last_names)) for p in entry.persons.get("author", [])]
        names = ", ".join(people[:-1]) + (" and " if len(people) > 1 else "") + people[-1] if people else "Anonymous"
        venue = next((entry.fields[f] for f in ("journal", "booktitle", "howpublished") if f in entry.fields), "")
        return f"{names} ({self.year(key)}). *{_plain(entry.fields.get('title', key))}*." + (
            f" {_plain(venue)}." if venue else "")


@lru_cache(maxsize=None)
def load(path: Path) -> Bibliography:
    return Bibliography(path)
