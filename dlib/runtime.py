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
import re
from pathlib import Path

import numpy as np
import torch

#: Root of the repository (the folder holding ``dlib/``, ``book/`` and ``checkpoints/``).
ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("fast", "full")


#: The device names :func:`device` accepts ("cuda:N" picks GPU N).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def check_device_name(name) -> str:
    """``name`` as a device string of the accepted form (:data:`DEVICE_NAMES`); availability is not checked.

    Args:
        name: None or ``"auto"`` (both give ``"auto"``), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (N >= 0),
            ``"mps"``, or a ``torch.device`` of one of these types.
    Raises:
        ValueError: any other name (``"gpu"``, ``"cuda:x"``, ...), naming the accepted forms.
    """
    if name is None:
        return "auto"
    if isinstance(name, torch.device):
        name = str(name)
    text = name.strip().lower() if isinstance(name, str) else None
    if text is None or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise ValueError(f"unknown device {name!r}; expected one of {', '.join(DEVICE_NAMES)}")
    return text


def device(name=None) -> torch.device:
    """The device called ``name``, checked to be usable here; by default the best available one.

    Args:
        name: None or ``"auto"``: the best available device, ``cuda`` > ``mps`` > ``cpu``;
            ``"cpu"``; ``"cuda"`` or ``"cuda:N"`` (a GPU, N < the number of GPUs); ``"mps"`` (Apple
            silicon); a ``torch.device`` of these types is accepted too.
    Returns:
        a ``torch.device``.
    Raises:
        ValueError: a name not of these forms, or a device this machine does not have (one line,
            saying what is available instead).
    """
    text = check_device_name(name)
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device {text!r} is not available here ({why}); use 'cpu' or 'auto'")
        dev = torch.device(text)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {text!r} is not available here: this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s), cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
        return dev
    if text == "mps" and not has_mps:
        raise ValueError("device 'mps' is not available here (it needs Apple silicon and a torch built with MPS); "
                         "use 'cpu' or 'auto'")
    return torch.device(text)


#: Precision settings: an autocast dtype chosen once the device is known (:func:`autocast_dtype`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpuinfo() -> str:
    """The text of ``/proc/cpuinfo`` ("" where there is none, e.g. on macOS or Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16_units() -> bool:
    """True when this CPU has bf16 matrix units (the ``avx512_bf16`` or ``amx_bf16`` flag), where bf16 autocast pays."""
    lines = cpuinfo().splitlines()
    flags = {f for line in lines if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cuda_has_native_bf16(dev: torch.device) -> bool:
    """True on CUDA GPUs of compute capability >= 8.0 (Ampere and later), which compute in bf16 natively.

    ``torch.cuda.is_bf16_supported()`` is also true on older GPUs (a T4 is 7.5) where bf16 is
    emulated, slowly; there fp16 (with a GradScaler when training) is the fast choice.
    """
    return torch.cuda.get_device_capability(dev) >= (8, 0)


def autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: plain fp32) for a precision setting on a device (training and sampling).

    Args:
        precision: one of :data:`PRECISIONS`. ``"auto"``: bf16 on CUDA GPUs with native bf16
            (compute capability >= 8.0), fp16 on older CUDA GPUs, bf16 on CPUs with bf16 units
            (:func:`cpu_has_bf16_units`), fp32 elsewhere.
        dev: where the computation runs.
    Raises:
        ValueError: an unknown setting, or ``"fp16"`` off CUDA.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = torch.device(dev)
    if precision == "auto":
        if dev.type == "cuda":
            return torch.bfloat16 if cuda_has_native_bf16(dev) else torch.float16
        return torch.bfloat16 if dev.type == "cpu" and cpu_has_bf16_units() else None
    if precision == "fp16" and dev.type != "cuda":
        raise ValueError("precision 'fp16' needs CUDA (use 'bf16' or 'fp32' on this device)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


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
