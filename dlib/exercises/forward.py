"""Exercises of chapter "forward", registered with :mod:`dlib.exercises.checking`.

References: the variance of x_t for data of a given per-pixel variance, carried step by step
through eq-q-step (the reader derives the closed form, eq-q-xt-x0 averaged over the data, which
:func:`dlib.gaussian_chain.forward_marginals` implements), the first step
at which the SNR falls below one (:meth:`dlib.schedules.Schedule.snr`, eq-snr) and the endpoints of
a shorter linear schedule with the same sum of betas (eq-alpha-bar).
"""
from __future__ import annotations

import torch

from .. import schedules
from .checking import Exercise, random_schedule, register


def _variance_inputs(gen: torch.Generator) -> dict:
    return {"schedule": random_schedule(gen), "data_var": float(0.05 + 3 * torch.rand(1, generator=gen))}


def _stepwise_variance(schedule, data_var: float) -> torch.Tensor:
    """Var(x_t) for t = 0..T carried through one step of eq-q-step at a time,
    Var(x_t) = alpha_t Var(x_{t-1}) + beta_t: independent of the closed form the reader derives
    (which :func:`dlib.gaussian_chain.forward_marginals` implements; the tests compare the two)."""
    out = [float(data_var)]
    for t in range(1, schedule.T + 1):
        out.append(schedule.alphas[t].item() * out[-1] + schedule.betas[t].item())
    return torch.tensor(out, dtype=torch.float64)


register(Exercise(
    name="forward-variance", chapter="forward",
    reference=_stepwise_variance,
    inputs=_variance_inputs,
    forbid=("dlib.gaussian_chain.forward_marginals",),   # the closed form the reader is asked to derive
))


def _crossing_schedule(gen: torch.Generator) -> dict:
    """A schedule whose SNR certainly falls below one: linear with the usual endpoints and T >= 150,
    or cosine (which ends at alpha_bar_T = 0)."""
    T = int(torch.randint(150, 1001, (1,), generator=gen))
    return {"schedule": schedules.linear(T) if torch.rand(1, generator=gen) < 0.5 else schedules.cosine(T)}


def _first_snr_below_one(schedule) -> torch.Tensor:
    snr = schedule.snr(torch.arange(1, schedule.T + 1))
    return torch.nonzero(snr < 1)[0, 0] + 1


register(Exercise(
    name="snr-half-life", chapter="forward",
    reference=_first_snr_below_one,
    inputs=_crossing_schedule,
))


def _endpoint_inputs(gen: torch.Generator) -> dict:
    return {"T": int(torch.randint(50, 1000, (1,), generator=gen)), "T_ref": 1000,
            "beta_start": float(1e-5 + 1e-3 * torch.rand(1, generator=gen)),
            "beta_end": float(0.005 + 0.015 * torch.rand(1, generator=gen))}


register(Exercise(
    name="rescaled-endpoints", chapter="forward",
    # sum of a linear schedule = T (beta_start + beta_end) / 2: scaling both ends by T_ref / T keeps it
    reference=lambda T, T_ref, beta_start, beta_end: (beta_start * T_ref / T, beta_end * T_ref / T),
    inputs=_endpoint_inputs,
))
