"""Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2; chapter "ddpm").

:func:`ddpm_step` is one step x_t -> x_{t-1}; :func:`ddpm_sample` runs it for t = T..1 and calls
nothing else, so the source a chapter prints is the code that runs.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..diffusion import q_posterior
from ..objectives import resolve_target
from ..schedules import Schedule
from .common import check_like, noise_like, predict, start

Tensor = torch.Tensor


def ddpm_step(s: Schedule, x_t: Tensor, t, eps_hat: Tensor, noise: Tensor | None,
              variance: str = "beta_tilde", x0_hat: Tensor | None = None) -> Tensor:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Algorithm 2; chapter "ddpm", eq-ddpm-step).

        x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z

    with sigma_t^2 = beta_tilde_t (``"beta_tilde"``) or beta_t (``"beta"``) (eq-ddpm-variance,
    ``s.reverse_variances``), and no noise where t == 1 (per example). If ``x0_hat`` is given the mean
    is the posterior mean with x0_hat plugged in, coef_x0 x0_hat + coef_xt x_t (chapter "posterior",
    eq-posterior-mean) -- equal to the line above when x0_hat and eps_hat agree.

    Args:
        x_t, eps_hat: (B, ...) float. t: int or int64 (B,) in 1..T.
        noise: standard normal z shaped like x_t, or None for no noise (the step's mean).
    Returns:
        x_{t-1}, shaped like x_t.
    """
    sigma2 = s.reverse_variances(variance)   # checks the variance's name
    check_like(x_t, eps_hat, "eps_hat")
    check_like(x_t, noise, "noise")
    check_like(x_t, x0_hat, "x0_hat")
    tt = s.check_t(t)
    if x0_hat is None:
        g = lambda values: s.gather(values, tt, x_t)  # noqa: E731
        mean = (x_t - g(s.betas) / (1.0 - g(s.alpha_bars)).sqrt() * eps_hat) / g(s.alphas).sqrt()
    else:
        mean = q_posterior(s, x0_hat, x_t, tt)[0]
    if noise is None:
        return mean
    sigma = s.gather(sigma2, tt, x_t).sqrt() * s.gather(torch.arange(s.T + 1) > 1, tt, x_t)
    return mean + sigma * noise


def ddpm_sample(model, s: Schedule, shape, target: str | None = None, generator: torch.Generator | None = None,
                seed: int | None = None, device=None, variance: str = "beta_tilde", dtype=None,
                x_T: Tensor | None = None, clip_x0: float | None = None, callback=None, progress: bool = True):
    """Ancestral sampling with all T steps (Ho et al. 2020, Algorithm 2; chapter "ddpm", eq-ddpm-step).

    From x_T ~ N(0, I) (or the given ``x_T``), for t = T..1: (x0_hat, eps_hat) from the model's
    output, then :func:`ddpm_step` with x0_hat plugged into the posterior mean (eq-posterior-mean)
    and sigma_t^2 = beta_tilde_t or beta_t (eq-ddpm-variance); no noise at t = 1.

    Args:
        model: callable model(x (B, ...), t int64 (B,)) -> its output (see :mod:`dlib.samplers.common`).
        shape: (B, ...) of the samples (ignored when ``x_T`` is given).
        target: how to read the output; default the model's declared ``target`` (else "eps"); a
            contradicting value is a ValueError.
        clip_x0: clamp x0_hat to [-c, c] (c = 1 for images in [-1, 1]).
        dtype: float dtype of the samples; None: that of ``x_T``, else float32.
        callback: ``callback(t, x_t, x0_hat)`` before each step (e.g. a :class:`Trajectory`).
    Returns:
        x_0, (B, ...).
    """
    target = resolve_target(model, target)
    s.reverse_variances(variance)  # fail before the loop on a bad name
    x, generator = start(model, shape, generator, seed, device, dtype, x_T)
    with torch.no_grad():
        for t in tqdm(range(s.T, 0, -1), desc="DDPM", disable=not progress):
            x0_hat, eps_hat = predict(model, s, x, t, target, clip_x0)
            if callback is not None:
                callback(t, x, x0_hat)
            noise = noise_like(x.shape, generator, x.device, x.dtype) if t > 1 else None
            x = ddpm_step(s, x, t, eps_hat, noise, variance, x0_hat=x0_hat)
    return x
