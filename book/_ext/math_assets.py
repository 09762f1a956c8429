"""Sphinx extension: load MathJax on every page, not only on pages whose body has equations.

Chapter titles with maths (e.g. the posterior $q(x_{t-1} | x_t, x_0)$) appear in the navigation of
every page; without this, pages with no maths of their own would show those titles as raw LaTeX.
"""


def setup(app):
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
