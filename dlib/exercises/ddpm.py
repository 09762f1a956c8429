"""Exercises of chapter "ddpm", registered with :mod:`dlib.exercises.checking`.

References: one ancestral step with sigma_t^2 = beta_t (:func:`dlib.samplers.ddpm_step`,
eq-ddpm-step), the sinusoidal time embedding (:func:`dlib.nn_blocks.timestep_embedding`,
eq-time-embedding), the discretized decoder term in bits per dimension
(:func:`dlib.diffusion.discretized_gaussian_log_likelihood`, eq-bits-per-dim), and the true reverse
variance Var(x_{t-1} | x_t) for Gaussian data (:func:`dlib.gaussian_chain.exact_reverse`, eq-ddpm-variance).
"""
from __future__ import annotations

import math

import torch

from .. import diffusion, gaussian_chain, nn_blocks, samplers
from .checking import Exercise, random_schedule, register


def _step_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    t = torch.randint(1, s.T + 1, (3,), generator=gen)
    t[0] = 1                                   # one example at the last step, which adds no noise
    normal = lambda: torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)  # noqa: E731
    return {"schedule": s, "x_t": normal(), "t": t, "eps_hat": normal(), "noise": normal()}


register(Exercise(
    name="ddpm-step", chapter="ddpm",
    reference=lambda schedule, x_t, t, eps_hat, noise: samplers.ddpm_step(schedule, x_t, t, eps_hat, noise,
                                                                          variance="beta"),
    inputs=_step_inputs,
))


def _embedding_inputs(gen: torch.Generator) -> dict:
    return {"t": torch.randint(0, 1001, (5,), generator=gen), "dim": 2 * int(torch.randint(2, 17, (1,), generator=gen))}


register(Exercise(
    name="time-embedding", chapter="ddpm",
    reference=lambda t, dim: nn_blocks.timestep_embedding(t, dim),
    inputs=_embedding_inputs,
    rtol=1e-4, atol=1e-4,   # float32 angles up to 1000 rad: two correct codes can differ by ~1e-4
))


def _decoder_inputs(gen: torch.Generator) -> dict:
    x0 = torch.randint(0, 256, (3, 1, 4, 4), generator=gen).to(torch.float64) / 127.5 - 1   # 8-bit, in [-1, 1]
    x0[0, 0, 0, 0], x0[0, 0, 0, 1] = -1.0, 1.0
    sigma = float(0.005 + 0.05 * torch.rand(1, generator=gen))
    # means within a few sigma of the data, so a direct CDF difference (no log-CDF) is accurate
    mean = x0 + sigma * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    return {"x0": x0, "mean": mean, "sigma": sigma}


def _decoder_bits(x0, mean, sigma):
    log_p = diffusion.discretized_gaussian_log_likelihood(x0, mean, torch.full_like(x0, math.log(sigma)))
    return -log_p.flatten(1).mean(1) / math.log(2.0)


register(Exercise(
    name="decoder-bits-per-dim", chapter="ddpm",
    reference=_decoder_bits,
    inputs=_decoder_inputs,
))


def _reverse_variance_inputs(gen: torch.Generator) -> dict:
    return {"schedule": random_schedule(gen), "data_var": float(10 ** (-3 + 3.5 * torch.rand(1, generator=gen)))}


register(Exercise(
    name="reverse-variance", chapter="ddpm",
    reference=lambda schedule, data_var: gaussian_chain.exact_reverse(schedule, 0.0, data_var).v[1:],
    inputs=_reverse_variance_inputs,
))
