"""Exercises of chapter "scores", registered with :mod:`dlib.exercises.checking`.

The references are ``dlib`` functions where one exists: the exact Gaussian-mixture score of
:mod:`dlib.gaussian_mixture`, the score-to-x0 conversion (Tweedie's formula) of :mod:`dlib.objectives` and the
DDPM step of :mod:`dlib.samplers`; the Langevin step is written out.
"""
from __future__ import annotations

import math

import torch

from .. import gaussian_mixture as gm, objectives, samplers
from .checking import Exercise, random_schedule, register


def _gaussian_score_inputs(gen: torch.Generator) -> dict:
    d = int(torch.randint(1, 5, (1,), generator=gen))
    return {"x": torch.randn(6, d, generator=gen, dtype=torch.float64) * 2,
            "mean": torch.randn(d, generator=gen, dtype=torch.float64),
            "std": float(0.2 + 2 * torch.rand(1, generator=gen))}


register(Exercise(
    name="gaussian-score", chapter="scores",
    # a one-component mixture is N(mean, std^2 I); its score is computed by dlib.gaussian_mixture
    reference=lambda x, mean, std: gm.GaussianMixture([1.0], mean, std**2).score(x),
    inputs=_gaussian_score_inputs,
))


def _tweedie_inputs(gen: torch.Generator) -> dict:
    mix = gm.GaussianMixture(torch.rand(3, generator=gen, dtype=torch.float64) + 0.1,
                                    torch.randn(3, 2, generator=gen, dtype=torch.float64) * 1.5,
                                    torch.rand(3, generator=gen, dtype=torch.float64) * 0.5 + 0.05)
    alpha_bar = float(0.05 + 0.9 * torch.rand(1, generator=gen))
    a, sd = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    x_t = a * mix.sample(5, gen) + sd * torch.randn(5, 2, generator=gen, dtype=torch.float64)
    return {"x_t": x_t, "score": mix.noised(a, sd).score(x_t), "alpha_bar": alpha_bar}


register(Exercise(
    name="tweedie", chapter="scores",
    reference=lambda x_t, score, alpha_bar: objectives.predictions_from_coeffs(
        math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar), x_t, score, "score")[0],
    inputs=_tweedie_inputs,
))


def _langevin_step_inputs(gen: torch.Generator) -> dict:
    shape = (4, 3)
    return {"x": torch.randn(shape, generator=gen, dtype=torch.float64),
            "score": torch.randn(shape, generator=gen, dtype=torch.float64) * 3,
            "noise": torch.randn(shape, generator=gen, dtype=torch.float64),
            "step_size": float(10 ** (-3 * torch.rand(1, generator=gen)))}


register(Exercise(
    name="langevin-step", chapter="scores",
    reference=lambda x, score, noise, step_size: x + 0.5 * step_size * score + math.sqrt(step_size) * noise,
    inputs=_langevin_step_inputs,
))


def _ddpm_mean_inputs(gen: torch.Generator) -> dict:
    schedule = random_schedule(gen)
    t = torch.randint(1, schedule.T + 1, (4,), generator=gen)
    return {"schedule": schedule, "x_t": torch.randn(4, 2, generator=gen, dtype=torch.float64), "t": t,
            "score": torch.randn(4, 2, generator=gen, dtype=torch.float64)}


register(Exercise(
    name="ddpm-mean-from-score", chapter="scores",
    reference=lambda schedule, x_t, t, score: samplers.ddpm_step(
        schedule, x_t, t, objectives.eps_from_score(schedule, t, score), noise=None),
    inputs=_ddpm_mean_inputs,
))
