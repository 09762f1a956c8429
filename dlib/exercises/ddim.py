"""Exercises of chapter "ddim", registered with :mod:`dlib.exercises.checking`.

References: the noise level of a jump (:func:`dlib.samplers.ddim_sigma`, eq-ddim-sigma), the
marginal moments of the non-Markovian family's chain, which the derivation says are DDPM's for
every choice of sigma (eq-ddim-family, eq-ddim-marginal), the deterministic step written as an Euler
step in rescaled variables (:func:`dlib.samplers.ddim_step` with eta = 0, eq-ddim-ode) and one step
of DDIM inversion (:func:`dlib.samplers.ddim_invert_step`, eq-ddim-invert).
"""
from __future__ import annotations

import torch

from .. import samplers
from .checking import Exercise, random_schedule, register


def _jump_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    t = torch.randint(2, s.T + 1, (4,), generator=gen)
    t_prev = (torch.rand(4, generator=gen, dtype=torch.float64) * t).long()   # 0..t-1
    t_prev[0] = t[0] - 1                                                      # one consecutive jump
    return {"schedule": s, "t": t, "t_prev": t_prev, "eta": float(torch.rand(1, generator=gen)) * 1.5}


def _family_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    # any sigma_t with sigma_t^2 <= 1 - alpha_bar_{t-1} is a member; sigma_1 must be 0 (alpha_bar_0 = 1)
    room = (1 - s.alpha_bars[:-1]).sqrt()                    # index t-1 -> the largest sigma_t
    sigmas = torch.cat([torch.zeros(1, dtype=torch.float64),
                        room * torch.rand(s.T, generator=gen, dtype=torch.float64)])
    sigmas[1] = 0.0
    x0 = torch.randn(3, generator=gen, dtype=torch.float64)
    return {"schedule": s, "x0": x0, "sigmas": sigmas}


def _family_marginals(schedule, x0, sigmas):
    a = schedule.alpha_bars[1:, None]
    return a.sqrt() * x0[None, :], (1 - schedule.alpha_bars[1:])


def _step_inputs(gen: torch.Generator) -> dict:
    inputs = _jump_inputs(gen)
    inputs.pop("eta")
    normal = lambda: torch.randn(4, 1, 3, 3, generator=gen, dtype=torch.float64)  # noqa: E731
    return {**inputs, "x_t": normal(), "eps_hat": normal()}


def _invert_inputs(gen: torch.Generator) -> dict:
    inputs = _step_inputs(gen)
    t_next, t = inputs.pop("t"), inputs.pop("t_prev")         # now upwards: t in 0..T-1, t_next > t
    return {"schedule": inputs["schedule"], "x_t": inputs["x_t"], "t": t, "t_next": t_next,
            "eps_hat": inputs["eps_hat"]}


def _sigma(schedule, t, t_prev, eta):
    return samplers.ddim_sigma(schedule, t, t_prev, eta)


def _euler_step(schedule, t, t_prev, x_t, eps_hat):
    return samplers.ddim_step(schedule, x_t, t, t_prev, eps_hat, 0.0)


def _invert_step(schedule, x_t, t, t_next, eps_hat):
    return samplers.ddim_invert_step(schedule, x_t, t, t_next, eps_hat)


# name, reference, inputs, (rtol, atol): the closed forms are float64, so the tolerances are tight
for _name, _reference, _inputs, _tol in [("ddim-sigma", _sigma, _jump_inputs, (1e-5, 1e-6)),
                                         ("ddim-family-marginals", _family_marginals, _family_inputs, (1e-8, 1e-10)),
                                         ("ddim-euler-step", _euler_step, _step_inputs, (1e-8, 1e-10)),
                                         ("ddim-invert-step", _invert_step, _invert_inputs, (1e-8, 1e-10))]:
    register(Exercise(name=_name, chapter="ddim", reference=_reference, inputs=_inputs, rtol=_tol[0], atol=_tol[1]))
