"""Exercises of chapter "daed", registered with :mod:`dlib.exercises.checking`.

References: the switching step and its log-SNR for a DAE noise level (:func:`dlib.daed.switch_step`,
:func:`dlib.daed.switch_log_snr`, eq-daed-switch), the top-up from a schedule's level to the DAE's
(:func:`dlib.daed.top_up`, eq-daed-top-up), the expected decoder term of a linear denoiser in closed
form (eq-daed-linear-decoder; tests/test_daed.py checks it against Monte Carlo of
:func:`dlib.daed.decoder_nll`) and the difference between the source's eq. 12 and the bound, minus the
entropy of q(x_{t_s} | x_0) (eq-daed-entropy-gap; checked there against exact Gaussian components).
"""
from __future__ import annotations

import math

import torch

from .. import daed
from .checking import Exercise, random_schedule, register


def _level_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    lo, hi = float(1 - s.alpha_bars[1]), float(1 - s.alpha_bars[s.T - 1])
    return {"schedule": s, "beta_1": lo + (hi - lo) * float(torch.rand(1, generator=gen, dtype=torch.float64))}


def _switch(schedule, beta_1):
    return (torch.tensor(float(daed.switch_step(schedule, beta_1)), dtype=torch.float64),
            torch.tensor(daed.switch_log_snr(beta_1), dtype=torch.float64))


def _top_up_inputs(gen: torch.Generator) -> dict:
    inputs = _level_inputs(gen)
    t = daed.switch_step(inputs["schedule"], inputs["beta_1"])
    normal = lambda: torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)  # noqa: E731
    return {**inputs, "x_t": normal(), "t": t, "noise": normal()}


def _top_up(schedule, x_t, t, beta_1, noise):
    return daed.top_up(schedule, x_t, t, beta_1, noise)


def _linear_decoder_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    x0 = torch.rand(4, 6, generator=gen, dtype=torch.float64) * 2 - 1
    u = torch.rand(4, generator=gen, dtype=torch.float64)
    return {"schedule": s, "t_s": int(torch.randint(1, s.T, (1,), generator=gen)), "x0": x0,
            "a": 0.5 + float(u[0]), "b": float(u[1]) - 0.5, "variance": 0.01 + float(u[2])}


def linear_decoder_nll(schedule, t_s, x0, a, b, variance):
    """E over x ~ q(x_{t_s} | x_0) of -log N(x_0; a x + b, variance I), per example (eq-daed-linear-decoder).

    x0 (B, D) float64 -> (B,): D/2 log(2 pi variance) + sum_i [((1 - a sqrt(abar)) x0_i - b)^2 + a^2 (1 - abar)] / (2 variance).
    """
    abar = float(schedule.alpha_bars[t_s])
    bias = (1 - a * math.sqrt(abar)) * x0 - b
    spread = a**2 * (1 - abar)
    return 0.5 * x0.shape[1] * math.log(2 * math.pi * variance) + (bias**2 + spread).sum(1) / (2 * variance)


def _gap_inputs(gen: torch.Generator) -> dict:
    u = torch.rand(2, generator=gen, dtype=torch.float64)
    return {"beta_1": float(10 ** (-3 + 2.5 * u[0])), "D": int(1 + 800 * u[1])}


def entropy_gap(beta_1, D):
    """The source's eq. 12 minus log p(x_0) with exact components: -H[q(x_{t_s} | x_0)] = -D/2 (1 + log(2 pi beta_1)) nats (eq-daed-entropy-gap)."""
    return torch.tensor(-0.5 * D * (1 + math.log(2 * math.pi * beta_1)), dtype=torch.float64)


for _name, _reference, _inputs, _tol in [("daed-switch", _switch, _level_inputs, (1e-8, 1e-10)),
                                         ("daed-top-up", _top_up, _top_up_inputs, (1e-8, 1e-10)),
                                         ("daed-linear-decoder", linear_decoder_nll, _linear_decoder_inputs,
                                          (1e-8, 1e-8)),
                                         ("daed-entropy-gap", entropy_gap, _gap_inputs, (1e-8, 1e-8))]:
    register(Exercise(name=_name, chapter="daed", reference=_reference, inputs=_inputs, rtol=_tol[0], atol=_tol[1]))
