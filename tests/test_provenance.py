"""Tests of dlib.provenance: git state in throw-away repositories, hardware and versions.

Equations checked: none (provenance records).
"""
import shutil
import subprocess

import pytest
import torch

from dlib import provenance, runtime

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(root, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false",
                    *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with one commit holding dlib/a.py, configs/c.yaml and book/ch.md."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # never find a repository above
    for name in ("dlib/a.py", "configs/c.yaml", "book/ch.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_repository(repo):
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert provenance.git_state(repo) == {"commit": sha, "dirty": False}
    assert provenance.commit_label(provenance.git_state(repo)) == sha


def test_modified_new_and_staged_files_are_dirty(repo):
    (repo / "dlib" / "a.py").write_text("x = 2\n")
    state = provenance.git_state(repo)
    assert state["dirty"] is True and provenance.commit_label(state).endswith("+uncommitted-changes")
    _git(repo, "add", "dlib/a.py")  # staged but not committed: still dirty
    assert provenance.git_state(repo)["dirty"] is True
    _git(repo, "commit", "-q", "-m", "second")
    assert provenance.git_state(repo)["dirty"] is False
    (repo / "configs" / "new.yaml").write_text("steps: 3\n")  # an untracked config counts
    assert provenance.git_state(repo)["dirty"] is True


def test_only_source_paths_count_unless_asked(repo):
    (repo / "book" / "ch.md").write_text("edited\n")
    assert provenance.git_state(repo)["dirty"] is False  # a chapter does not change what dlib computes
    assert provenance.git_state(repo, paths=None)["dirty"] is True  # the whole working tree
    assert provenance.git_state(repo, paths=("book",))["dirty"] is True


def test_not_a_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}
    assert provenance.commit_label({"commit": None, "dirty": None}) is None
    (tmp_path / "empty").mkdir()
    _git(tmp_path / "empty", "init", "-q")  # a repository without a commit
    assert provenance.git_state(tmp_path / "empty") == {"commit": None, "dirty": None}
    assert provenance.git_state(tmp_path / "absent")["commit"] is None  # not even a folder


def test_git_missing(repo, monkeypatch):
    monkeypatch.setenv("PATH", "")  # no git executable to be found
    assert provenance.git_state(repo) == {"commit": None, "dirty": None}


def test_hardware_versions_record(monkeypatch):
    line = provenance.hardware("cpu")
    assert provenance.cpu_name() in line and f"{torch.get_num_threads()} torch threads" in line
    assert line.endswith("bf16 units")
    monkeypatch.setattr(runtime, "cpuinfo", lambda: "model name\t: Test CPU\nflags\t\t: fpu avx2 amx_bf16\n")
    assert provenance.cpu_name() == "Test CPU" and runtime.cpu_has_bf16_units()
    assert provenance.hardware("cpu").endswith(", bf16 units")
    monkeypatch.setattr(runtime, "cpuinfo", lambda: "model name\t: Old CPU\nflags\t\t: fpu avx2 avx512f\n")
    assert not runtime.cpu_has_bf16_units() and provenance.hardware("cpu").endswith("no bf16 units")
    found = provenance.versions()
    assert found["torch"] == torch.__version__ and {"python", "numpy"} <= set(found)
    record = provenance.record("cpu")
    assert set(record) == {"git", "hardware", "cpu_count", "platform", "versions"}
    assert set(record["git"]) == {"commit", "dirty"}
