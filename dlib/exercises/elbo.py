"""Exercises of chapter "elbo", registered with :mod:`dlib.exercises.checking`.

References: the prior term KL(q(x_T | x_0) || N(0, I)) of the bound (:func:`dlib.diffusion.prior_kl`),
and, for the scalar linear-Gaussian chains of :mod:`dlib.gaussian_chain`, the model's marginal
p(x_0) (:func:`~dlib.gaussian_chain.model_marginal`) and the importance log-weight of a forward
chain (:func:`~dlib.gaussian_chain.log_weight`).
"""
from __future__ import annotations

import torch

from .. import diffusion, gaussian_chain, schedules
from .checking import Exercise, random_images, random_schedule, register


def _prior_kl_inputs(gen: torch.Generator) -> dict:
    return {"schedule": random_schedule(gen), "x0": random_images(gen)}


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
