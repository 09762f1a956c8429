"""Where and at what scale the book's code runs: device choice, seeding, the fast/full switch.

The *setting* is the one switch that sizes every chapter:

* ``"fast"``  -- CPU-sized runs (CI, ``make`` default): small data, few steps, each chapter
  finishes in about two minutes on a 2-core machine.
* ``"full"``  -- GPU-sized runs (Colab default): the data, steps and epochs the page discusses.

It is read from the environment variable ``DLIB_SETTING``; when unset it is ``"full"`` on a CUDA
machine and ``"fast"`` otherwise. Chapters never test the setting themselves: they call
:func:`pick` (``n_train = dlib.pick(fast=2_000, full=60_000)``) and print :func:`describe`.
"""
from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

#: Root of the repository (the folder holding ``dlib/``, ``book/`` and ``checkpoints/``).
ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("fast", "full")


def device() -> torch.device:
    """The best available device: ``cuda`` > ``mps`` > ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setting() -> str:
    """The current scale setting, ``"fast"`` or ``"full"`` (see the module docstring)."""
    value = os.environ.get("DLIB_SETTING", "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "fast"
    if value not in SETTINGS:
        raise ValueError(f"DLIB_SETTING must be one of {SETTINGS}, got {value!r}")
    return value


def pick(fast, full):
    """Return ``fast`` or ``full`` according to :func:`setting`."""
    return fast if setting() == "fast" else full


def describe() -> str:
    """One line saying which setting and hardware produced the outputs on a page."""
    dev = device()
    if dev.type == "cuda":
        hw = torch.cuda.get_device_name(0)
    else:
        hw = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return f"setting={setting()!r} on {dev.type} ({hw}), torch {torch.__version__}"


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; return a ``torch.Generator`` seeded with ``seed``.

    On the CPU, runs that use only the returned generator or the global torch RNG are
    bit-reproducible. With ``deterministic=True`` cuDNN/cuBLAS are asked for deterministic
    kernels as well (GPU runs are then reproducible on the same hardware and library versions).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)
