"""A chapter's MyST markdown as plain Jupyter markdown, which Colab and Jupyter render as meant.

The rendered book understands MyST: roles (``{eq}``, ``{cite}``, ``{ref}``), labelled equations
(``$$ ... $$ (eq-x)``), targets (``(chapter-x)=``) and directives (``{admonition}``,
``{dropdown}``). A notebook shows all of them as literal text. :func:`to_plain` rewrites them:

============================  ===================================================================
``$$ ... $$ (eq-x)``          ``$$ ... \\tag{12} $$``: the number the rendered book shows
``{eq}`eq-x```                ``(12)`` (numbers run through the whole book, so they are unique)
``{cite}`a,b```               ``(Ho et al., 2020; Song et al., 2021)``; ``{cite:t}`` "Ho et al. (2020)"
``{ref}`label```              the target's title in italics; ``{ref}`text <label>``` the text
``(label)=``, ``% comment``   removed
admonitions                   a quotation headed by the title in bold (folded when ``:class:``
                              says ``dropdown``)
``{dropdown} Solution``       folded in an HTML ``<details>`` block, or removed (a student edition)
============================  ===================================================================

Anything else MyST-specific (another role or directive) raises :class:`MystError`, so a new kind
of markup in a chapter stops the build instead of reaching a student as raw text. Code blocks are
left exactly as written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .bib import Bibliography

ADMONITIONS = ("admonition", "note", "warning", "tip", "important", "caution", "attention", "danger",
               "error", "hint", "seealso")
DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
CODE_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
LABELLED_MATH = re.compile(r"\$\$(?P<math>(?:(?!\$\$).)+?)\$\$[ \t]*\((?P<label>[\w:.-]+)\)", re.S)
TARGET = re.compile(r"^[ \t]*\((?P<label>[\w:.-]+)\)=[ \t]*\n?", re.M)
COMMENT = re.compile(r"^%[^\n]*\n?", re.M)
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<content>[^`]*)`")


class MystError(ValueError):
    """Markup the plain editions cannot render (an unknown role or directive, an unknown label)."""


@dataclass
class Index:
    """What cross-references resolve against: equation numbers, target titles, the bibliography.
    ``cited`` collects the citation keys met, in order, for a reference list."""

    equations: dict[str, int]
    titles: dict[str, str]
    bib: Bibliography
    cited: list[str] = field(default_factory=list)


def to_plain(text: str, index: Index, solutions: str = "fold") -> str:
    """``text`` (one markdown cell) without MyST. ``solutions``: ``"fold"`` puts solution dropdowns
    in a ``<details>`` block, ``"drop"`` removes them."""
    if solutions not in ("fold", "drop"):
        raise ValueError(f"solutions must be 'fold' or 'drop', got {solutions!r}")
    lines = _directives(text.split("\n"), index, solutions)
    return _collapse_blank_lines("\n".join(_inline(chunk, index) if not code else chunk
                                           for code, chunk in _split_code("\n".join(lines))))


def _collapse_blank_lines(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def _split_code(text: str) -> list[tuple[bool, str]]:
    """``(is_code, chunk)`` pieces: plain fenced code blocks are kept away from the rewriting."""
    out, buf, fence = [], [], None
    for line in text.split("\n"):
        m = CODE_FENCE.match(line)
        if fence is None and m:
            out.append((False, "\n".join(buf)))
            buf, fence = [line], m.group(1)
        elif fence is not None and line.strip() == fence[0] * len(line.strip()) and len(line.strip()) >= len(fence):
            buf.append(line)
            out.append((True, "\n".join(buf)))
            buf, fence = [], None
        else:
            buf.append(line)
    out.append((fence is not None, "\n".join(buf)))
    return out


def _directives(lines: list[str], index: Index, solutions: str) -> list[str]:
    out, i, fence = [], 0, None
    while i < len(lines):
        line = lines[i]
        m = None if fence else DIRECTIVE.match(line)
        code = CODE_FENCE.match(line)
        if m is None:                       # not a directive: keep, and know when a code block is open
            if code and not fence:
                fence = code.group(1)
            elif fence and line.strip() and set(line.strip()) == {fence[0]} and len(line.strip()) >= len(fence):
                fence = None
            out.append(line)
            i += 1
            continue
        mark = m["fence"]
        close = re.compile(rf"^{re.escape(m['indent'])}{re.escape(mark[0])}{{{len(mark)},}}[ \t]*$")
        j = next((k for k in range(i + 1, len(lines)) if close.match(lines[k])), None)
        if j is None:
            raise MystError(f"the {{{m['name']}}} directive opened by {line.strip()!r} is never closed")
        options, body = _options(lines[i + 1:j])
        out += _render(m["name"], m["arg"].strip(), options, body, index, solutions)
        i = j + 1
    return out


def _options(body: list[str]) -> tuple[dict, list[str]]:
    options, k = {}, 0
    while k < len(body) and re.match(r"^[ \t]*:[\w-]+:", body[k]):
        key, _, value = body[k].strip()[1:].partition(":")
        options[key] = value.strip()
        k += 1
    return options, body[k:]


def _render(name, arg, options, body, index, solutions) -> list[str]:
    inner = to_plain("\n".join(body), index, solutions)
    if name == "dropdown":
        title = arg or "Details"
        if solutions == "drop" and title.lower().startswith("solution"):
            return []
        return _details(_inline(title, index), inner)
    if name in ADMONITIONS:
        title = _inline(arg or name.capitalize(), index)
        if "dropdown" in options.get("class", "").split():
            return _details(title, inner)
        quoted = [f"> {line}" if line.strip() else ">" for line in inner.split("\n")]
        return ["", f"> **{title}**", ">"] + quoted + [""]
    if name == "math":
        label = options.get("label")
        tag = f"\n\\tag{{{_equation(label, index)}}}" if label else ""
        return ["", "$$", inner + tag, "$$", ""]
    raise MystError(f"the plain editions cannot render the {{{name}}} directive")


def _details(title: str, inner: str) -> list[str]:
    return ["", "<details>", f"<summary>{title}</summary>", "", inner, "", "</details>", ""]


def _equation(label: str, index: Index) -> int:
    if label not in index.equations:
        raise MystError(f"no numbered equation is labelled {label!r}")
    return index.equations[label]


def _inline(text: str, index: Index) -> str:
    """Labelled display maths, targets, comments and roles of a piece of prose."""
    text = LABELLED_MATH.sub(lambda m: f"$${m['math'].rstrip()}\n\\tag{{{_equation(m['label'], index)}}}\n$$", text)
    text = TARGET.sub("", text)
    text = COMMENT.sub("", text)
    return ROLE.sub(lambda m: _role(m["role"], m["content"], index), text)


def _role(role: str, content: str, index: Index) -> str:
    if role == "eq":
        return f"({_equation(content.strip(), index)})"
    if role in ("ref", "numref", "doc"):
        explicit = re.match(r"^(?P<text>.*?)\s*<(?P<label>[^>]+)>$", content, re.S)
        if explicit:
            return explicit["text"]
        label = content.strip()
        if label not in index.titles:
            raise MystError(f"no target is labelled {label!r}")
        return f"*{index.titles[label]}*"
    if role in ("cite", "cite:p", "cite:ps", "cite:t", "cite:ts"):
        keys = [k.strip() for k in content.split(",") if k.strip()]
        index.cited += [k for k in keys if k not in index.cited]
        return index.bib.cite(keys, textual=role.startswith("cite:t"))
    if role == "math":
        return f"${content}$"
    raise MystError(f"the plain editions cannot render the {{{role}}} role")
