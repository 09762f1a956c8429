"""Exercises of chapter "posterior", registered with :mod:`dlib.exercises.checking`.

References: the mean of the forward posterior q(x_{t-1} | x_t, x_0) (:func:`dlib.diffusion.q_posterior`),
its variance beta-tilde (:attr:`dlib.schedules.Schedule.beta_tildes`) and the KL divergence between
two diagonal Gaussians (:func:`dlib.diffusion.normal_kl`).
"""
from __future__ import annotations

import torch

from .. import diffusion
from .checking import Exercise, random_images, random_schedule, register


def _posterior_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    x0 = random_images(gen)
    t = torch.randint(1, s.T + 1, (3,), generator=gen)
    x_t = diffusion.q_sample(s, x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    return {"schedule": s, "x0": x0, "x_t": x_t, "t": t}


register(Exercise(
    name="posterior-mean", chapter="posterior",
    reference=lambda schedule, x0, x_t, t: diffusion.q_posterior(schedule, x0, x_t, t)[0],
    inputs=_posterior_inputs,
))

register(Exercise(
    name="beta-tilde", chapter="posterior",
    reference=lambda schedule: schedule.beta_tildes,
    inputs=lambda gen: {"schedule": random_schedule(gen)},
))


def _kl_inputs(gen: torch.Generator) -> dict:
    shape = (5,)
    return {"mean1": torch.randn(shape, generator=gen, dtype=torch.float64),
            "var1": torch.rand(shape, generator=gen, dtype=torch.float64) + 0.05,
            "mean2": torch.randn(shape, generator=gen, dtype=torch.float64),
            "var2": torch.rand(shape, generator=gen, dtype=torch.float64) + 0.05}


register(Exercise(
    name="gaussian-kl", chapter="posterior",
    reference=diffusion.normal_kl,
    inputs=_kl_inputs,
))
