"""Where a result came from: the git commit, the hardware and the library versions.

Every file that publishes a number (a checkpoint's ``manifest.json``, a benchmark's JSON) records
the same facts, probed here once:

* :func:`git_state` -- ``{"commit": sha or None, "dirty": bool or None}``. ``dirty`` means that the
  files under :data:`SOURCE_PATHS` (``dlib/`` and ``configs/``, the code and settings that make a
  checkpoint or a benchmark number) differ from that commit: modified, staged, deleted or new
  (untracked and not ignored). Edits elsewhere (a chapter, a test) do not make a result dirty.
  Outside a git repository, or without git, both are None; nothing raises.
* :func:`hardware` -- one line: the CPU's model name, the torch threads and whether the CPU has
  bf16 matrix units (AVX512-BF16 or AMX, where bf16 autocast pays off); or the CUDA device's name.
* :func:`versions` -- python, torch and numpy, plus the optional libraries the book compares
  with or measures through (diffusers, torchmetrics, ...) where they are installed.
* :func:`record` -- all of them, plus the platform string, in one dict.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

from . import runtime
from .runtime import ROOT

__all__ = ["SOURCE_PATHS", "git_state", "commit_label", "cpu_name", "hardware", "versions",
           "record"]

SOURCE_PATHS = ("dlib", "configs")
OPTIONAL_LIBRARIES = ("diffusers", "torchmetrics", "safetensors", "scipy", "torchvision", "torch-fidelity")


def _git(root: Path, *args: str) -> str | None:
    """stdout of ``git args`` run in ``root`` (stripped), or None where git fails or is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root=ROOT, paths=SOURCE_PATHS) -> dict:
    """``{"commit": HEAD's sha, "dirty": uncommitted changes under paths}`` of the repository at ``root``.

    ``paths`` are relative to ``root`` (default :data:`SOURCE_PATHS`; None or () = the whole
    working tree). Not a repository, no commit yet, or no git: ``{"commit": None, "dirty": None}``.
    """
    root = Path(root)
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    status = _git(root, "status", "--porcelain", "--", *(paths or ()))
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def commit_label(state: dict | None = None) -> str | None:
    """The commit as one string: ``"<sha>"``, ``"<sha>+uncommitted-changes"`` when dirty, None when unknown."""
    state = git_state() if state is None else state
    if not state.get("commit"):
        return None
    return state["commit"] + ("+uncommitted-changes" if state.get("dirty") else "")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere what :mod:`platform` knows)."""
    for line in runtime.cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware(device=None) -> str:
    """One line describing what computes: the CUDA device's name, or the CPU's.

    ``device``: ``"cpu"``, ``"cuda"``/``"cuda:1"`` or a torch.device; None: CUDA where available,
    else the CPU. A CPU reads like ``"Intel(R) Xeon(R) Processor, 2 torch threads, bf16 units"``.
    """
    device = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    bf16 = "bf16 units" if runtime.cpu_has_bf16_units() else "no bf16 units"
    return f"{cpu_name()}, {torch.get_num_threads()} torch threads, {bf16}"


def versions() -> dict:
    """``{library: version}``: python, torch, numpy, and each of :data:`OPTIONAL_LIBRARIES` installed here.

    Optional libraries are looked up in the installed packages' metadata, not imported (diffusers
    takes seconds to import).
    """
    found = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in OPTIONAL_LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def record(device=None, root=ROOT) -> dict:
    """``{"git": git_state(root), "hardware": hardware(device), "cpu_count", "platform", "versions"}``."""
    return {"git": git_state(root), "hardware": hardware(device), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "versions": versions()}
