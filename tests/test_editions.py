"""The editions built from the chapters: the Colab edition (colab/*.ipynb) is up to date, reads
cleanly (no MyST role or directive left), asks for a GPU and keeps the chapters' code; every
chapter's exercises are found from its own markup, and a chapter with an exercise that cannot be
checked stops the build; the otter master notebooks build for every chapter.

Equations checked: none (the notebooks' markdown; equation numbers against the table of contents).
"""
import json
import re
import types

import jupytext
import pytest
from myst_patterns import myst_left

from tools import sync_setup_cell
from tools.editions import assignments, chapters, colab
from tools.editions.myst import Index, MystError, to_plain

ROOT = chapters.ROOT
SETUP = (ROOT / "book" / "_setup_cell.py").read_text().strip()
CHAPTERS = chapters.chapters()


def test_colab_edition_is_up_to_date():
    stale = colab.build(check=True)
    assert not stale, f"colab/ differs from the chapters for {stale}: run `make colab`"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_edition_reads_cleanly_and_asks_for_a_gpu(chapter):
    nb = json.loads((ROOT / "colab" / f"{chapter}.ipynb").read_text())
    for cell in nb["cells"]:
        assert not myst_left("".join(cell["source"])), (chapter, myst_left("".join(cell["source"])))
        assert not cell.get("outputs") and cell.get("execution_count") is None
    assert nb["metadata"]["accelerator"] == "GPU" and nb["metadata"]["colab"]["gpuType"]
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "markdown")["source"])
    assert "Change runtime type" in first and f"{colab.GPU} GPU" in first


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_edition_keeps_the_chapters_code_and_folds_the_solutions(chapter):
    nb = json.loads((ROOT / "colab" / f"{chapter}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    book = [c.source for c in jupytext.read(ROOT / "book" / f"{chapter}.md").cells if c.cell_type == "code"]
    assert code[0] == SETUP and code[1:] == book[1:]
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    for ex in chapters.exercises(chapter):
        folded = re.search(r"<details>\n<summary>Solution</summary>\n\n```python\n(.*?)\n```", markdown[
            markdown.index(ex.solution.split("\n")[0]) - 60:], re.S)
        assert folded and folded.group(1).strip() == ex.solution.strip(), ex.name


def test_every_chapter_checks_exactly_its_registered_exercises():
    from dlib import exercises as registry

    for chapter in CHAPTERS:
        found = [e.name for e in chapters.exercises(chapter)]     # raises ChapterError on any problem
        assert sorted(found) == registry.names(chapter), chapter
    assert set(registry.CHAPTERS) <= set(CHAPTERS), "an exercise module names no chapter of the book"


CHAPTER = """---
jupytext:
  text_representation: {{extension: .md, format_name: myst}}
---
# A chapter

```{{code-cell}} ipython3
print("set-up")
```

{body}
"""
EXERCISE = """**Exercise 1.** Do it.

```{{code-cell}} ipython3
def f(x):
    raise NotImplementedError

check("{name}", f);
```

````{{dropdown}} Solution
```python
def f(x):
    return x

check("{name}", f)
```
````
"""


@pytest.mark.parametrize("body, registered, says", [
    (EXERCISE.format(name="ok"), ["ok"], None),
    (EXERCISE.format(name="ok") + "\n**Exercise 2.** Prove it.\n", ["ok"], "has no check"),
    (EXERCISE.format(name="typo"), ["ok"], "names no registered exercise"),
    (EXERCISE.format(name="ok"), ["ok", "forgotten"], "'forgotten' is never checked"),
    (EXERCISE.format(name="ok").split("````{dropdown}")[0], ["ok"], "not followed by a worked solution"),
])
def test_exercise_discovery_fails_loudly(tmp_path, body, registered, says):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "toy.md").write_text(CHAPTER.format(body=body))
    if says is None:
        assert [e.name for e in chapters.exercises("toy", tmp_path, registered)] == ["ok"]
    else:
        with pytest.raises(chapters.ChapterError, match=re.escape(says)):
            chapters.exercises("toy", tmp_path, registered)


def _index():
    bib = types.SimpleNamespace(cite=lambda keys, textual: ("T:" if textual else "P:") + "+".join(keys))
    return Index({"eq-a": 7}, {"sec-a": "A section"}, bib)


def test_myst_becomes_plain_markdown():
    text = ("(sec-a)=\n# Title\n\nSee {eq}`eq-a`, {ref}`sec-a`, {ref}`that <sec-a>`, {cite}`x,y` and {cite:t}`x`.\n\n"
            "$$\na = b\n$$ (eq-a)\n\n```{admonition} Careful\n:class: warning\nBody {eq}`eq-a`.\n```\n\n"
            "````{dropdown} Solution\n```python\nx = '{eq}`kept in code`'\n```\n````\n% a comment\n")
    folded = to_plain(text, _index(), "fold")
    assert folded.startswith("# Title") and "See (7), *A section*, that, P:x+y and T:x." in folded
    assert "$$\na = b\n\\tag{7}\n$$" in folded and "> **Careful**\n>\n> Body (7)." in folded
    assert "<details>\n<summary>Solution</summary>" in folded and "x = '{eq}`kept in code`'" in folded
    assert "comment" not in folded
    dropped = to_plain(text, _index(), "drop")
    assert "Solution" not in dropped and "kept in code" not in dropped
    for bad in ("{foo}`x`", "```{figure} a.png\n```", "{eq}`eq-unknown`"):
        with pytest.raises(MystError):
            to_plain(bad, _index())


def test_equations_are_numbered_through_the_book_in_toc_order():
    numbers = chapters.index().equations
    assert numbers["eq-q-step"] == 1                     # the first equation of the first chapter
    assert sorted(numbers.values()) == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if chapters.exercises(c)])
def test_the_otter_master_notebook_builds(chapter):
    nb = assignments.master(chapter, seed=1)
    raw = [c.source for c in nb.cells if c.cell_type == "raw"]
    found = chapters.exercises(chapter)
    assert raw[0].startswith("# ASSIGNMENT CONFIG") and f"name: {chapter}" in raw[0]
    assert sum(r.startswith("# BEGIN QUESTION") for r in raw) == len(found)
    tests = [c.source for c in nb.cells if c.cell_type == "code" and "BEGIN TEST CONFIG" in c.source]
    assert len(tests) == len(found) and all("hidden: true" in t for t in tests)
    assert all(str(assignments.hidden_seed(1, e.name)) in t for e, t in zip(found, tests))


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_setup_cell_sync_changes_only_the_first_code_cell(chapter):
    path = ROOT / "book" / f"{chapter}.md"
    before = path.read_text()
    after = sync_setup_cell.synced(before)
    sync_setup_cell._verify(before, after, path.name)
    assert sync_setup_cell.synced(after) == after


def test_the_badges_and_the_repository_button_derive_from_the_setup_cell():
    import importlib.util

    spec = importlib.util.spec_from_file_location("colab_badge", ROOT / "book" / "_ext" / "colab_badge.py")
    badge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(badge)
    address = re.search(r'"DIFFUSION_BOOK_REPO", "([^"]+)"', SETUP).group(1)
    config = types.SimpleNamespace(html_theme_options={"repository_url": "https://elsewhere", "repository_branch": "main"},
                                   colab_notebooks_url="")
    badge._configure(types.SimpleNamespace(srcdir=str(ROOT)), config)
    assert config.html_theme_options["repository_url"] == address
    assert config.colab_notebooks_url == address.replace("https://github.com", badge.COLAB) + "/blob/main/colab"
