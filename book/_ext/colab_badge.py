"""Sphinx extension: an "Open in Colab" badge on every chapter that has a notebooks/ twin.

Jupyter Book's built-in launch button points Colab at the page source (book/X.md), which Colab
cannot open. This badge points at the paired notebooks/X.ipynb instead. The badge image is served
from the build (book/_static/colab-badge.svg), so the page renders without network.
"""
from pathlib import Path


def _add_badge(app, pagename, templatename, context, doctree):
    stem = pagename.rsplit("/", 1)[-1]
    if doctree is None or "body" not in context:
        return
    if not (Path(app.srcdir) / "notebooks" / f"{stem}.ipynb").exists():
        return
    url = f"{app.config.colab_notebooks_url.rstrip('/')}/{stem}.ipynb"
    img = context["pathto"]("_static/colab-badge.svg", 1)
    badge = (f'<p class="colab-badge"><a href="{url}" title="Open notebooks/{stem}.ipynb in Google Colab">'
             f'<img src="{img}" alt="Open in Colab" width="118" height="20"></a></p>\n')
    context["body"] = badge + context["body"]


def setup(app):
    app.add_config_value("colab_notebooks_url", "", "html")
    app.connect("html-page-context", _add_badge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
