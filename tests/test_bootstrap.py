"""The chapters' first cell (book/_setup_cell.py) makes `import dlib` load this package even when
another `dlib` (Colab's face-recognition library) sits in site-packages, in the kernel and in the
processes it starts; away from a copy of the book it clones one, explains a failed clone, and
starts a set-up that stopped half-way afresh.

The clone path runs offline: the repository address is overridden (DIFFUSION_BOOK_REPO) by a local
bare clone of this repository, and the scratch interpreter's `pip` is a stand-in that records its
command line and exits with the status the test asks for (the real `pip install -e` needs the
network; what is tested here is what the cell does around it).

Equations checked: none (the set-up cell of every chapter).
"""
import json
import os
import pathlib
import subprocess
import sysconfig
import venv

import pytest

pytestmark = pytest.mark.subprocess  # starts Python interpreters

ROOT = pathlib.Path(__file__).resolve().parents[1]
SETUP = (ROOT / "book" / "_setup_cell.py").read_text()
PROBE = "import dlib, sys; print('DLIB_FILE=' + dlib.__file__)"
CHILD = ("import subprocess, sys\n"
         "print(subprocess.run([sys.executable, '-c', " + repr(PROBE) + "], capture_output=True, text=True).stdout)")
FAKE_PIP = """import os, sys
with open(os.environ["FAKE_PIP_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
sys.exit(int(os.environ.get("FAKE_PIP_STATUS", "0")))
"""


def _scratch_venv(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = pathlib.Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    decoy = site / "dlib"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("DECOY = True  # stands in for the face-recognition dlib\n")
    (site / "pip").mkdir()
    (site / "pip" / "__init__.py").write_text("")
    (site / "pip" / "__main__.py").write_text(FAKE_PIP)
    # Let the scratch venv see this venv's packages (torch, numpy, ...), after its own site-packages.
    (site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, decoy


def _start(python, code, cwd, **env):
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV") and
            not k.startswith("DIFFUSION_BOOK_")}
    return subprocess.run([str(python), "-c", code], cwd=cwd, env={**base, **env}, capture_output=True,
                          text=True, timeout=300)


def _dlib_files(out) -> list[str]:
    """Every dlib the process and its children imported, in the order they printed them."""
    assert out.returncode == 0, out.stderr[-2000:]
    return [line[len("DLIB_FILE="):] for line in out.stdout.splitlines() if line.startswith("DLIB_FILE=")]


def test_setup_cell_beats_a_decoy_dlib_in_the_kernel_and_in_child_processes(tmp_path):
    python, decoy = _scratch_venv(tmp_path)
    book = str(ROOT / "dlib" / "__init__.py")
    # Without the set-up cell, the decoy wins, here and in a child process: the test can fail.
    assert _dlib_files(_start(python, PROBE + "\n" + CHILD, cwd=ROOT / "notebooks")) == [str(decoy / "__init__.py")] * 2
    # Even with the decoy already imported, the set-up cell switches to this package, and so do the
    # processes the notebook starts afterwards (`!python -m dlib ...`, torchrun).
    got = _dlib_files(_start(python, "import dlib\n" + SETUP + "\n" + PROBE + "\n" + CHILD, cwd=ROOT / "notebooks"))
    assert got == [book, book]


def _bare_clone(tmp_path) -> str:
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(bare)], check=True, timeout=300)
    return bare.as_uri()


def test_clone_path_offline_from_a_local_repository(tmp_path):
    python, _ = _scratch_venv(tmp_path)
    home, elsewhere, log = tmp_path / "home" / "diffusion-book", tmp_path / "elsewhere", tmp_path / "pip.log"
    elsewhere.mkdir()
    env = dict(DIFFUSION_BOOK_REPO=_bare_clone(tmp_path), DIFFUSION_BOOK_HOME=str(home), FAKE_PIP_LOG=str(log))
    got = _dlib_files(_start(python, "import dlib\n" + SETUP + "\n" + PROBE + "\n" + CHILD, cwd=elsewhere, **env))
    assert got == [str(home / "dlib" / "__init__.py")] * 2
    assert (home / ".setup-complete").is_file() and not pathlib.Path(str(home) + ".partial").exists()
    assert log.read_text().split() == ["install", "-q", "-e", str(home)]
    # a second run finds the finished set-up and neither clones nor installs again
    assert _dlib_files(_start(python, SETUP + "\n" + PROBE, cwd=elsewhere, **env)) == [str(home / "dlib" / "__init__.py")]
    assert len(log.read_text().splitlines()) == 1


def test_a_failed_clone_or_install_is_explained_and_a_rerun_starts_afresh(tmp_path):
    python, _ = _scratch_venv(tmp_path)
    home, log = tmp_path / "home" / "diffusion-book", tmp_path / "pip.log"
    good = dict(DIFFUSION_BOOK_REPO=_bare_clone(tmp_path), DIFFUSION_BOOK_HOME=str(home), FAKE_PIP_LOG=str(log))
    missing = (tmp_path / "no-such-repository.git").as_uri()
    out = _start(python, SETUP, cwd=tmp_path, **{**good, "DIFFUSION_BOOK_REPO": missing})
    assert out.returncode != 0 and f"cloning {missing} failed" in out.stderr
    assert "does not exist" in out.stderr or "not appear to be a git repository" in out.stderr   # git's own words
    assert "What to do" in out.stderr and "run this cell again" in out.stderr and not home.exists()
    # the clone works but the install fails: the cell says so and leaves an unfinished set-up behind
    out = _start(python, SETUP, cwd=tmp_path, FAKE_PIP_STATUS="1", **good)
    assert out.returncode != 0 and "installing the book's requirements failed" in out.stderr
    assert (home / ".setup-started").is_file() and not (home / ".setup-complete").exists()
    # running the cell again starts afresh (a new clone, a new install) and finishes
    (home / "stale-file").write_text("left by the unfinished set-up")
    assert _dlib_files(_start(python, SETUP + "\n" + PROBE, cwd=tmp_path, **good)) == [str(home / "dlib" / "__init__.py")]
    assert (home / ".setup-complete").is_file() and not (home / "stale-file").exists()
    assert len(log.read_text().splitlines()) == 2


def test_a_folder_the_cell_did_not_make_is_never_deleted(tmp_path):
    python, _ = _scratch_venv(tmp_path)
    home = tmp_path / "home" / "diffusion-book"
    home.mkdir(parents=True)
    (home / "my-notes.txt").write_text("not the book")
    out = _start(python, SETUP, cwd=tmp_path, DIFFUSION_BOOK_HOME=str(home), FAKE_PIP_LOG=str(tmp_path / "pip.log"),
                 DIFFUSION_BOOK_REPO=(tmp_path / "unused.git").as_uri())
    assert out.returncode != 0 and "imported the wrong dlib" in out.stderr
    assert (home / "my-notes.txt").read_text() == "not the book"


def test_the_repository_address_is_written_in_one_place():
    # book/_setup_cell.py holds it, on its REPO line; the chapters' first cells and the notebooks are
    # verbatim copies of that cell (tests/test_pairing.py, tests/test_editions.py), and the repository
    # button and Colab badges derive from it (book/_ext/colab_badge.py), so no other line may carry it
    line = next(l for l in SETUP.splitlines() if l.startswith("REPO = "))
    path = line.split("github.com/", 1)[1].split('"', 1)[0]
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        try:
            text = (ROOT / name).read_text()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        text = text.replace(line, "").replace(json.dumps(line)[1:-1], "")   # as written, and inside JSON
        if path in text:
            offenders.append(name)
    assert not offenders, f"the repository address is written outside book/_setup_cell.py: {offenders}"
