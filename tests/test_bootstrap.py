"""The chapters' first cell makes `import dlib` load this package even when another `dlib`
(Colab's face-recognition library) sits in site-packages.

Equations checked: none (the set-up cell of every chapter).
"""
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


def _scratch_venv(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = pathlib.Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    decoy = site / "dlib"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("DECOY = True  # stands in for the face-recognition dlib\n")
    # Let the scratch venv see this venv's packages (torch, numpy, ...), after its own site-packages.
    (site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, decoy


def _run(python, code, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = subprocess.run([str(python), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return [l for l in out.stdout.splitlines() if l.startswith("DLIB_FILE=")][-1][len("DLIB_FILE="):]


def test_setup_cell_beats_a_decoy_dlib(tmp_path):
    python, decoy = _scratch_venv(tmp_path)
    # Without the set-up cell, the decoy wins: the test can fail.
    assert _run(python, PROBE, cwd=ROOT / "notebooks") == str(decoy / "__init__.py")
    # Even with the decoy already imported, the set-up cell switches to this package.
    got = _run(python, "import dlib\n" + SETUP + "\n" + PROBE, cwd=ROOT / "notebooks")
    assert got == str(ROOT / "dlib" / "__init__.py")
