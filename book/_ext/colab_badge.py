"""Sphinx extension: an "Open in Colab" badge on every chapter, and the repository's address for
the whole book, both derived from the one place that holds it.

The address is written once, on the ``REPO = ...`` line of book/_setup_cell.py (the set-up cell
must carry it to clone the book on Colab; every chapter opens with a verbatim copy of that cell).
This extension reads it from there and sets the theme's repository button (``repository_url``,
``use_repository_button``) and the badges' target, so _config.yml names no address (tests/test_bootstrap.py checks that no
other file does).

The badge opens colab/X.ipynb, the Colab edition of the chapter (plain markdown, solutions folded,
a GPU runtime requested; built by ``make colab``), not notebooks/X.ipynb, whose MyST markdown
Colab would show as raw text, nor the page source book/X.md, which Colab cannot open. The badge
image is served from the build (book/_static/colab-badge.svg), so the page renders without network.
"""
import re
from pathlib import Path

COLAB = "https://colab.research.google.com/github"


def repository_address(srcdir) -> str:
    """The default of ``REPO`` in book/_setup_cell.py, e.g. https://github.com/owner/name."""
    text = (Path(srcdir) / "book" / "_setup_cell.py").read_text()
    match = re.search(r'^REPO = os\.environ\.get\("DIFFUSION_BOOK_REPO", "([^"]+)"\)', text, re.M)
    if match is None:
        raise ValueError("book/_setup_cell.py has no `REPO = os.environ.get(\"DIFFUSION_BOOK_REPO\", ...)` line")
    return match.group(1).rstrip("/")


def _configure(app, config):
    address = repository_address(app.srcdir)
    options = dict(config.html_theme_options or {})
    options["repository_url"] = address   # always: jupyter-book fills in its own address when _config.yml has none
    options["use_repository_button"] = True
    config.html_theme_options = options
    if not config.colab_notebooks_url:
        owner_name = address.split("github.com/", 1)[1]
        branch = options.get("repository_branch") or "main"
        config.colab_notebooks_url = f"{COLAB}/{owner_name}/blob/{branch}/colab"


def _add_badge(app, pagename, templatename, context, doctree):
    stem = pagename.rsplit("/", 1)[-1]
    if doctree is None or "body" not in context:
        return
    if not (Path(app.srcdir) / "colab" / f"{stem}.ipynb").exists():
        return
    url = f"{app.config.colab_notebooks_url.rstrip('/')}/{stem}.ipynb"
    img = context["pathto"]("_static/colab-badge.svg", 1)
    badge = (f'<p class="colab-badge"><a href="{url}" title="Open colab/{stem}.ipynb in Google Colab">'
             f'<img src="{img}" alt="Open in Colab" width="118" height="20"></a></p>\n')
    context["body"] = badge + context["body"]


def setup(app):
    app.add_config_value("colab_notebooks_url", "", "html")
    app.connect("config-inited", _configure, priority=400)
    app.connect("html-page-context", _add_badge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
