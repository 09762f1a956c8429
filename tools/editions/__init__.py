"""The book's notebooks for readers and for courses, built from the chapters (book/*.md).

==================  ===============================================================================
``bib``             references.bib as the notebooks cite it: "(Ho et al., 2020)" and a reference list
``myst``            a chapter's MyST markdown as plain Jupyter markdown: numbered equations, citations,
                    cross-references by title, admonitions as quotes, solutions folded or removed
``chapters``        the book as these tools read it: chapters in table-of-contents order, the
                    equation numbers and titles the rendered book shows, and each chapter's exercises
``colab``           the Colab edition (colab/*.ipynb, committed): plain markdown, a GPU runtime asked
                    for in the metadata and named in the first cell
``assignments``     student and instructor editions of a chapter with otter-grader (``otter assign``)
``grade``           a folder of submitted notebooks graded without containers into a CSV of scores
``__main__``        ``python -m tools.editions colab|assignments|grade`` (what ``make colab``,
                    ``make assignments`` and ``make grade`` run)
==================  ===============================================================================

Nothing here edits a chapter: every edition is derived from book/*.md as it stands, and a chapter
whose exercises cannot be read (an exercise without a check, a check of an exercise the registry
does not know, a check without a worked solution) stops the build with the chapter and the reason.
"""
