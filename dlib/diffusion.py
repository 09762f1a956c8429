"""The Gaussian forward process and its variational bound.

Chapter "forward": q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)   (eq-q-xt-x0)
"""
from __future__ import annotations

import torch

from .schedules import Schedule

Tensor = torch.Tensor


def _check_pair(x0: Tensor, other: Tensor, name: str) -> None:
    if other.shape != x0.shape:
        raise ValueError(f"{name} must have the shape of x0 {tuple(x0.shape)}, got {tuple(other.shape)}")


def q_sample(schedule: Schedule, x0: Tensor, t, eps: Tensor) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) by reparameterization (chapter "forward", eq-q-xt-x0).

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps

    Args:
        schedule: the noise schedule.
        x0: clean data, shape (B, ...) (images: (B, C, H, W) in [-1, 1]).
        t: int or int64 tensor (B,), values in 1..T (0 returns x0).
        eps: standard normal noise with the shape of ``x0``.
    Returns:
        x_t, shape and dtype of ``x0``.
    """
    _check_pair(x0, eps, "eps")
    a = schedule.gather(schedule.alpha_bars, t, x0, allow_zero=True)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * eps
