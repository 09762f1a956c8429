"""Langevin samplers driven by a score function (chapter "scores", eq-langevin).

Unadjusted Langevin dynamics draws approximate samples from a density p using only its score
s(x) = grad_x log p(x)::

    x <- x + (delta / 2) s(x) + sqrt(delta) z,        z ~ N(0, I)             (eq-langevin)

:func:`langevin` runs this with a fixed step size ``delta``. :func:`annealed_langevin` is the
sampler of Song & Ermon (2019, their Algorithm 1): it runs Langevin at a decreasing sequence of
noise levels sigma_1 > ... > sigma_L, each time with the score of the data blurred by N(0, sigma_i^2 I)
and the step size delta_i = eps * sigma_i^2 / sigma_L^2.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

Tensor = torch.Tensor

__all__ = ["langevin", "annealed_langevin"]


def _check_positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _check_x(x_init) -> Tensor:
    if not torch.is_tensor(x_init) or not x_init.is_floating_point():
        got = f"a tensor of dtype {x_init.dtype}" if torch.is_tensor(x_init) else type(x_init).__name__
        raise ValueError(f"x_init must be a floating-point tensor of shape (B, ...), got {got}")
    if x_init.ndim < 1 or x_init.shape[0] == 0:
        raise ValueError(f"x_init must have shape (B, ...) with B >= 1, got {tuple(x_init.shape)}")
    return x_init


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise like ``x``, drawn on the generator's device and moved to ``x``'s."""
    if generator is None:
        return torch.randn_like(x)
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
    return z.to(x.device)


def _checked_score(out, x: Tensor, what: str) -> Tensor:
    if not torch.is_tensor(out) or out.shape != x.shape:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"{what} must return a tensor of the shape of x {tuple(x.shape)}, got {shape}")
    return out.to(x.dtype)


@torch.no_grad()
def langevin(score: Callable[[Tensor], Tensor], x_init: Tensor, step_size: float, n_steps: int,
             generator: torch.Generator | None = None, progress: bool = False) -> Tensor:
    """Unadjusted Langevin dynamics with a fixed step (chapter "scores", eq-langevin).

    Repeats ``n_steps`` times: x <- x + (step_size / 2) score(x) + sqrt(step_size) z, z ~ N(0, I).
    For small ``step_size`` and many steps the samples approach the density whose score is
    ``score``; the step size introduces a bias of order ``step_size`` (no Metropolis correction).

    Args:
        score: callable mapping x of shape (B, ...) to grad_x log p(x) of the same shape.
        x_init: starting points, float tensor (B, ...), any device; not modified.
        step_size: delta > 0.
        n_steps: number of updates (0 returns a copy of ``x_init``).
        generator: optional ``torch.Generator`` for the noise (seeded runs are reproducible);
            its device may differ from ``x_init``'s.
        progress: show a tqdm progress bar.
    Returns:
        the samples after ``n_steps`` updates, shape, dtype and device of ``x_init``.
    Raises:
        ValueError: non-positive step size, negative or non-int ``n_steps``, a non-float
            ``x_init``, or a score of the wrong shape.
    """
    x = _check_x(x_init).clone()
    delta = _check_positive(step_size, "step_size")
    n_steps = _check_count(n_steps, "n_steps")
    root = math.sqrt(delta)
    for _ in tqdm(range(n_steps), desc="Langevin", disable=not progress, leave=False):
        s = _checked_score(score(x), x, "score")
        x = x + 0.5 * delta * s + root * _noise(x, generator)
    return x


@torch.no_grad()
def annealed_langevin(score_model: Callable[[Tensor, Tensor], Tensor], sigmas, x_init: Tensor,
                      steps_per_level: int, eps: float = 2e-5, generator: torch.Generator | None = None,
                      progress: bool = True) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1; chapter "scores", eq-langevin).

    For each noise level sigma_i, from the largest to the smallest, runs ``steps_per_level``
    Langevin updates (eq-langevin) with the score of the data perturbed by N(0, sigma_i^2 I) and
    the step size delta_i = eps * sigma_i^2 / sigma_L^2, where sigma_L is the smallest level:

        x <- x + (delta_i / 2) score_model(x, sigma_i) + sqrt(delta_i) z,   z ~ N(0, I).

    Scaling delta_i with sigma_i^2 keeps the ratio of the drift to the noise the same at every level.

    Args:
        score_model: callable ``(x, sigma) -> score`` with x of shape (B, ...) and sigma a tensor
            of shape (B,) (dtype and device of x) holding the current level; returns (B, ...).
        sigmas: the noise levels, 1-D (list, array or tensor), positive and strictly decreasing.
        x_init: starting points, float tensor (B, ...) (typically broad noise, e.g. sigma_1 * N(0, I)).
        steps_per_level: Langevin updates per level (>= 1).
        eps: the step size at the smallest level, delta_L = eps > 0.
        generator: optional ``torch.Generator`` for the noise.
        progress: show a tqdm progress bar over the levels.
    Returns:
        samples of shape, dtype and device of ``x_init`` (no final denoising step is applied).
    Raises:
        ValueError: bad ``sigmas`` (not 1-D, not positive, not decreasing), ``eps`` <= 0,
            ``steps_per_level`` < 1, a non-float ``x_init`` or a score of the wrong shape.
    """
    x = _check_x(x_init).clone()
    levels = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    if levels.ndim != 1 or levels.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {tuple(levels.shape)}")
    if not torch.isfinite(levels).all() or (levels <= 0).any():
        raise ValueError("sigmas must be positive and finite")
    if (levels[1:] >= levels[:-1]).any():
        raise ValueError("sigmas must be strictly decreasing (largest noise level first)")
    eps = _check_positive(eps, "eps")
    if _check_count(steps_per_level, "steps_per_level") < 1:
        raise ValueError("steps_per_level must be at least 1")
    sigma_min = levels[-1].item()
    for sigma in tqdm(levels.tolist(), desc="annealed Langevin", disable=not progress, leave=False):
        delta = eps * sigma**2 / sigma_min**2
        root = math.sqrt(delta)
        sigma_batch = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        for _ in range(steps_per_level):
            s = _checked_score(score_model(x, sigma_batch), x, "score_model")
            x = x + 0.5 * delta * s + root * _noise(x, generator)
    return x
