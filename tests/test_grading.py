"""The course editions end to end, with otter-grader and no containers (what `make assignments` and
`make grade` do): every chapter's student edition has the solutions removed and no hidden test in
it; graded, the posterior chapter's instructor edition scores full marks, its student edition as
handed out scores zero and runs top to bottom, a submission that calls the reference function
scores zero on that exercise, and a partly correct one scores in between.

The posterior chapter stands for all: three exercises, and it runs in seconds.

Equations checked: eq-posterior-mean, eq-beta-tilde, eq-kl-gauss (through the posterior chapter's
worked solutions and the submissions below).
"""
import csv
import re

import nbformat
import pytest
from myst_patterns import myst_left

from tools.editions import assignments, chapters

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]   # otter starts a kernel per notebook

SEED = 20_241


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    return out, assignments.build_all(out, seed=SEED)


def test_every_chapter_has_both_editions_and_the_student_sees_no_solution(built):
    out, paths = built
    assert (out / "seed.txt").read_text().strip() == str(SEED)
    for chapter, edition in paths.items():
        student, instructor = (nbformat.read(edition[k], as_version=4) for k in ("student", "instructor"))
        code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
        text = "\n".join(c.source for c in student.cells)
        for ex in chapters.exercises(chapter):
            body = [l for l in ex.solution.split("\n") if l.startswith("    ") and "NotImplementedError" not in l]
            assert not any(line in code for line in body[-1:]), (chapter, ex.name)   # the solution is removed ...
            assert f'check("{ex.name}", {ex.function})' in code                      # ... the check is kept
            assert "NotImplementedError" in code
            assert any(ex.solution.strip() == c.source.strip() for c in instructor.cells if c.cell_type == "code")
        assert "<summary>Solution" not in text and "hidden" not in str(student.metadata.get("otter", {}).get("tests"))
        assert "hidden=True" in str(instructor.metadata["otter"]["tests"])
        for nb in (student, instructor):
            assert nb.metadata["accelerator"] == "GPU"
            assert not [c for c in nb.cells if myst_left(c.source)], chapter
        assert edition["autograder"].stat().st_size > 0


def _answer(student_path, function: str, body: str):
    """The student edition with one stub answered by ``body`` (the lines of the function's body)."""
    nb = nbformat.read(student_path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and f"def {function}(" in c.source)
    cell.source = cell.source.replace("raise NotImplementedError  # your code here", body)
    return nb


def test_grading_a_folder_of_submissions(built, tmp_path):
    out, paths = built
    posterior = paths["posterior"]
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(nbformat.read(posterior["instructor"], as_version=4), folder / "instructor.ipynb")
    nbformat.write(nbformat.read(posterior["student"], as_version=4), folder / "as-handed-out.ipynb")
    # the reference under its own name for "posterior-mean" (q_posterior is imported by the chapter),
    # and a correct Gaussian KL written out
    nb = _answer(posterior["student"], "posterior_mean", "return q_posterior(schedule, x0, x_t, t)[0]")
    kl = next(c for c in nb.cells if c.cell_type == "code" and "def gaussian_kl(" in c.source)
    kl.source = kl.source.replace("raise NotImplementedError  # your code here",
                                  "return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)")
    nbformat.write(nb, folder / "calls-the-reference.ipynb")
    # one exercise right (beta-tilde), one wrong (a posterior mean that forgets the x_0 term)
    nb = _answer(posterior["student"], "beta_tilde",
                 "a = schedule.alpha_bars\n    out = torch.zeros_like(a)\n"
                 "    out[1:] = (1 - a[:-1]) / (1 - a[1:]) * schedule.betas[1:]\n    return out")
    wrong = next(c for c in nb.cells if c.cell_type == "code" and "def posterior_mean(" in c.source)
    wrong.source = wrong.source.replace("raise NotImplementedError  # your code here", "return x_t")
    nbformat.write(nb, folder / "partly-right.ipynb")

    from tools.editions.grade import grade
    rows = grade(folder, out, folder / "grades.csv")
    table = {r["submission"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert len(rows) == len(table) == 4 and all(not r["error"] for r in table.values()), table
    scores = {name: {k: float(r[k]) for k in ("posterior-mean", "beta-tilde", "gaussian-kl", "total", "possible")}
              for name, r in table.items()}
    assert scores["instructor.ipynb"] == {"posterior-mean": 1, "beta-tilde": 1, "gaussian-kl": 1, "total": 3, "possible": 3}
    assert scores["as-handed-out.ipynb"]["total"] == 0 and table["as-handed-out.ipynb"]["cells_failed"] == "0"
    assert scores["calls-the-reference.ipynb"]["posterior-mean"] == 0
    assert scores["calls-the-reference.ipynb"]["gaussian-kl"] == 1
    assert scores["partly-right.ipynb"] == {"posterior-mean": 0, "beta-tilde": 1, "gaussian-kl": 0, "total": 1, "possible": 3}
    assert all(r["cells_failed"] == "0" for r in table.values()), table   # every notebook ran top to bottom
    assert re.fullmatch(r"submission,chapter,.*,total,possible,cells_failed,error",
                        (folder / "grades.csv").read_text().splitlines()[0])
