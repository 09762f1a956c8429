"""The Inception-v3 versions of FID, KID and IS, for where they can run (e.g. Colab).

Published FIDs use the features of an ImageNet-trained Inception-v3. torchmetrics computes them
through torch-fidelity, which also needs torchvision and downloads the weights on first use; none
of that is available offline, so everything here checks first and raises :class:`MetricUnavailable`,
whose message points to the classifier-* metrics of :mod:`dlib.metrics`. Those are what the book
reports; they are not comparable with published Inception numbers.

Sources: FID, Heusel et al. 2017; KID, Binkowski et al. 2018; IS, Salimans et al. 2016.
"""
from __future__ import annotations

import importlib.util
import warnings

import torch

INCEPTION_METRICS = ("fid", "kid", "is")


class MetricUnavailable(ValueError):
    """A metric that cannot be computed here (Inception metrics offline); the message names the alternative."""


def inception_missing() -> list[str]:
    """The packages Inception FID/KID/IS need that are not importable here ([] when all are)."""
    return [name for name in ("torch_fidelity", "torchvision") if importlib.util.find_spec(name) is None]


def unavailable(name: str, detail: str) -> MetricUnavailable:
    """The error for Inception metric ``name`` ("fid", "kid" or "is"), with ``detail`` saying why."""
    return MetricUnavailable(f"Inception {name.upper()} needs torch-fidelity + torchvision + network; use "
                             f"classifier-{name} ({detail}). The classifier-* metrics use dlib's MNIST "
                             "classifier and are not comparable with published Inception numbers.")


def _inception_input(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (B, C, H, W) -> uint8 (B, 3, H, W); torchmetrics' Inception resizes to 299x299."""
    pixels = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels


def inception_metrics(samples: torch.Tensor, reference: torch.Tensor, names, device=None,
                      batch_size: int = 100) -> dict:
    """Inception-v3 ``fid``, ``kid`` (+ ``kid-std``) and ``is`` (+ ``is-std``, 10 splits) via torchmetrics.

    Images (N, 1 or 3, H, W) in [-1, 1] become uint8, are replicated to 3 channels and are resized
    to 299x299 by torchmetrics' Inception wrapper (bilinear, antialiased). Needs torch-fidelity,
    torchvision and the network (the weights download on first use, e.g. on Colab).

    Raises:
        MetricUnavailable: something is missing; the message suggests the classifier-* metric.
    """
    names = [n for n in names if n in INCEPTION_METRICS]
    missing = inception_missing()
    if missing:
        raise unavailable(names[0] if names else "fid", f"not installed here: {', '.join(missing)}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        size = min(1000, len(samples), len(reference))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            built = {"fid": lambda: FrechetInceptionDistance(feature=2048),
                     "kid": lambda: KernelInceptionDistance(feature=2048, subset_size=size),
                     "is": lambda: InceptionScore()}
            metrics = {name: built[name]().to(dev) for name in names}
    except Exception as err:  # typically the weights download failing offline
        raise unavailable(names[0] if names else "fid", f"{type(err).__name__}: {err}") from err
    for start in range(0, max(len(samples), len(reference)), batch_size):
        fake = _inception_input(samples[start:start + batch_size]).to(dev)
        real = _inception_input(reference[start:start + batch_size]).to(dev)
        for name, metric in metrics.items():
            if name == "is":
                if len(fake):
                    metric.update(fake)
                continue
            if len(real):
                metric.update(real, real=True)
            if len(fake):
                metric.update(fake, real=False)
    result = {}
    for name, metric in metrics.items():
        value = metric.compute()
        if isinstance(value, tuple):
            result[name], result[f"{name}-std"] = float(value[0]), float(value[1])
        else:
            result[name] = float(value)
    return result
