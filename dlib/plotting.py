"""Figures shared by chapters: image grids (no torchvision needed).

Images are tensors or arrays of shape (N, C, H, W) with values in [-1, 1] (C = 1 or 3).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def make_grid(images, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one picture.

    Args:
        images: (N, C, H, W) tensor or array in [-1, 1], C in {1, 3}.
        nrow: images per row.
        padding: pixels between tiles; pad_value: their colour in [0, 1] (1 = white).
    Returns:
        float32 array (rows * (H + padding) + padding, nrow * (W + padding) + padding, C) in [0, 1].
    """
    x = images.detach().float().cpu().numpy() if torch.is_tensor(images) else np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, C, H, W) with C = 1 or 3, got {x.shape}")
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    n, c, h, w = x.shape
    ncol, rows = min(nrow, max(n, 1)), max(1, math.ceil(n / nrow))
    grid = np.full((rows * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.float32)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[top:top + h, left:left + w] = np.clip((x[i].transpose(1, 2, 0) + 1.0) / 2.0, 0.0, 1.0)
    return grid


def save_grid(images, path, nrow: int = 8, scale: int = 2) -> Path:
    """Write a grid of images in [-1, 1] (N, C, H, W) as a PNG, each pixel ``scale`` x ``scale``."""
    import matplotlib.pyplot as plt

    grid = make_grid(images, nrow)
    grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if grid.shape[2] == 1:
        plt.imsave(path, grid[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        plt.imsave(path, grid)
    return path


def show_grid(images, nrow: int = 8, ax=None, title: str | None = None):
    """Draw a grid of images in [-1, 1] (N, C, H, W) on a matplotlib axis; returns the axis."""
    import matplotlib.pyplot as plt

    grid = make_grid(images, nrow)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, 0.6 * grid.shape[1] / 16 + 1), min(12, 0.6 * grid.shape[0] / 16 + 1)))
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
