"""Exercises of chapter "angular", registered with :mod:`dlib.exercises.checking`.

References: the betas of the angular schedule with its clipped last step (:func:`dlib.schedules.angular`,
eq-angular-schedule), DDIM's eta = 0 jump on the quarter circle written as a rotation of x_t towards
v_hat (:func:`dlib.samplers.rotation_step` with the x0_hat that eps_hat implies, eq-rotation) and one
explicit Runge-Kutta step from a Butcher tableau (:func:`dlib.samplers.rk_step`, eq-rk-step).
"""
from __future__ import annotations

import math

import torch

from .. import objectives, samplers, schedules
from .checking import Exercise, register


def _schedule_inputs(gen: torch.Generator) -> dict:
    T = int(torch.randint(5, 80, (1,), generator=gen))
    return {"T": T, "max_beta": 0.9 + 0.099 * float(torch.rand(1, generator=gen))}


def _angular_betas(T, max_beta):
    return schedules.angular(T, max_beta).betas


def _rotation_inputs(gen: torch.Generator) -> dict:
    phi = 0.05 + 1.45 * float(torch.rand(1, generator=gen))          # away from pi/2, where eps_hat fixes no x0_hat
    phi_next = phi * float(torch.rand(1, generator=gen))
    normal = lambda: torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)  # noqa: E731
    return {"x": normal(), "phi": phi, "phi_next": phi_next, "eps_hat": normal()}


def _rotation(x, phi, phi_next, eps_hat):
    x0_hat, _ = objectives.predictions_from_coeffs(math.cos(phi), math.sin(phi), x, eps_hat, "eps")
    return samplers.rotation_step(x0_hat, eps_hat, phi_next)


class _Slope:
    """f(x, phi) = cos(phi) x A^T + sin(phi) b: a smooth non-autonomous right-hand side for the check."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def __call__(self, x, phi):
        return math.cos(phi) * x @ self.A.T + math.sin(phi) * self.b


def _rk_inputs(gen: torch.Generator) -> dict:
    D = 3
    f = _Slope(torch.randn(D, D, generator=gen, dtype=torch.float64), torch.randn(D, generator=gen, dtype=torch.float64))
    tableau = samplers.TABLEAUS[samplers.METHODS[int(torch.randint(0, len(samplers.METHODS), (1,), generator=gen))]]
    return {"f": f, "x": torch.randn(4, D, generator=gen, dtype=torch.float64),
            "phi": float(torch.rand(1, generator=gen)) * 1.5, "h": -0.3 * float(torch.rand(1, generator=gen)) - 0.05,
            "c": tableau.c, "a": tableau.a, "b": tableau.b}


def _rk(f, x, phi, h, c, a, b):
    method = next(m for m, tab in samplers.TABLEAUS.items() if (tab.c, tab.a, tab.b) == (c, a, b))
    return samplers.rk_step(lambda y, p: (f(y, p), None), x, phi, h, method)[0]


for _name, _reference, _inputs, _tol in [("angular-schedule", _angular_betas, _schedule_inputs, (1e-8, 1e-10)),
                                         ("angular-rotation-step", _rotation, _rotation_inputs, (1e-8, 1e-10)),
                                         ("rk-step", _rk, _rk_inputs, (1e-8, 1e-10))]:
    register(Exercise(name=_name, chapter="angular", reference=_reference, inputs=_inputs, rtol=_tol[0], atol=_tol[1]))
