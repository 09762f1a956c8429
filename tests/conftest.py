"""Shared test set-up.

Unit tests use small tensors, for which one intra-op thread is as fast as several; more threads
only spin against each other, and against the subprocesses some tests start (the CLI, the
two-process DDP run), on the 2-core CI machine. Set before torch is imported, OMP_NUM_THREADS
also reaches those subprocesses.
"""
import os
import pathlib
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
