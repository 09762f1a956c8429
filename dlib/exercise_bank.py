"""The book's exercises, registered with :mod:`dlib.exercises`, grouped by chapter.

Each entry names the ``dlib`` function that serves as the reference answer and draws random
inputs of the shapes the chapter uses. The worked solutions are printed in the chapters (hidden in
a dropdown); ``tests/test_exercises.py`` runs them against these checks.
"""
from __future__ import annotations

import torch

from . import diffusion, gaussian_chain, schedules
from .exercises import Exercise, random_images, register
from .exercises import random_schedule as _schedule


def _posterior_inputs(gen: torch.Generator) -> dict:
    s = _schedule(gen)
    x0 = random_images(gen)
    t = torch.randint(1, s.T + 1, (3,), generator=gen)
    x_t = diffusion.q_sample(s, x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    return {"schedule": s, "x0": x0, "x_t": x_t, "t": t}


# Chapter "posterior" -----------------------------------------------------------------------
register(Exercise(
    name="posterior-mean", chapter="posterior",
    reference=lambda schedule, x0, x_t, t: diffusion.q_posterior(schedule, x0, x_t, t)[0],
    inputs=_posterior_inputs,
))

register(Exercise(
    name="beta-tilde", chapter="posterior",
    reference=lambda schedule: schedule.beta_tildes(),
    inputs=lambda gen: {"schedule": _schedule(gen)},
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


# Chapter "elbo" ----------------------------------------------------------------------------
def _prior_kl_inputs(gen: torch.Generator) -> dict:
    return {"schedule": _schedule(gen), "x0": random_images(gen)}


register(Exercise(
    name="prior-kl", chapter="elbo",
    reference=lambda schedule, x0: diffusion.prior_kl(schedule, x0),
    inputs=_prior_kl_inputs,
))


def _random_reverse_model(gen: torch.Generator, T: int) -> gaussian_chain.ReverseModel:
    def draw(lo, hi):
        out = lo + (hi - lo) * torch.rand(T + 1, generator=gen, dtype=torch.float64)
        out[0] = float("nan")
        return out
    return gaussian_chain.ReverseModel(draw(0.5, 1.1), draw(-0.2, 0.2), draw(0.01, 0.5),
                                       float(torch.randn(1, generator=gen)), float(0.5 + torch.rand(1, generator=gen)))


register(Exercise(
    name="reverse-marginal", chapter="elbo",
    reference=gaussian_chain.model_marginal,
    inputs=lambda gen: {"model": _random_reverse_model(gen, int(torch.randint(1, 9, (1,), generator=gen)))},
))


def _chain_inputs(gen: torch.Generator) -> dict:
    T = int(torch.randint(1, 9, (1,), generator=gen))
    schedule = schedules.from_betas(torch.rand(T, generator=gen, dtype=torch.float64) * 0.5 + 0.01)
    chain = gaussian_chain.sample_chain(schedule, torch.randn(4, generator=gen, dtype=torch.float64), gen)
    return {"schedule": schedule, "model": _random_reverse_model(gen, T), "chain": chain}


register(Exercise(
    name="chain-log-weight", chapter="elbo",
    reference=gaussian_chain.log_weight,
    inputs=_chain_inputs,
))


# Chapter "scores": registered in their own module.
from . import exercises_scores  # noqa: E402,F401

# Chapter "objectives": registered in their own module.
from . import exercises_objectives  # noqa: E402,F401

# Chapter "ddpm": registered in their own module.
from . import exercises_ddpm  # noqa: E402,F401
