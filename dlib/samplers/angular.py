"""The angular ODE sampler: x = cos(phi) x0 + sin(phi) eps, integrated in the angle (chapter "angular", eq-angular-ode).

Zhang, Ehinger & Drummond (2023). On the quarter circle alpha_bar = cos^2(phi) the noisy image moves
with velocity

    dx/dphi = -sin(phi) x0_hat + cos(phi) eps_hat = v                 (the v of chapter "objectives", eq-v)

which :func:`angular_sample` integrates from phi = pi/2 (pure noise) to 0 with one explicit
Runge-Kutta scheme, :func:`rk_step`, whose coefficients are a Butcher tableau (:data:`TABLEAUS`:
Euler, Heun's RK2, the classical RK4). :func:`rotation_step` is the exact solution when x0_hat and
eps_hat are held fixed over the step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..objectives import predictions_from_coeffs, resolve_target, target_from_coeffs
from ..schedules import Schedule
from .common import start

Tensor = torch.Tensor


@dataclass(frozen=True)
class ButcherTableau:
    """An explicit Runge-Kutta method: nodes c_i, lower-triangular a_ij and weights b_i."""

    name: str
    c: tuple
    a: tuple
    b: tuple


#: Euler (order 1), Heun's RK2 (order 2) and the classical RK4 (order 4). Model calls per step: 1, 2, 4.
TABLEAUS = {
    "euler": ButcherTableau("euler", c=(0.0,), a=((),), b=(1.0,)),
    "rk2": ButcherTableau("rk2", c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5)),
    "rk4": ButcherTableau("rk4", c=(0.0, 0.5, 0.5, 1.0), a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                          b=(1 / 6, 1 / 3, 1 / 3, 1 / 6)),
}
METHODS = tuple(TABLEAUS)


def rk_step(f, x: Tensor, phi: float, h: float, method: str = "rk4"):
    """One explicit Runge-Kutta step of dx/dphi = f(x, phi) (chapter "angular", eq-rk-step).

        k_i = f(x + h sum_{j<i} a_ij k_j, phi + c_i h),     x(phi + h) ~ x + h sum_i b_i k_i

    ``f(x, phi)`` returns (slope, aux); the aux of the first stage (the model's x0_hat at the step's
    start, for the angular ODE) is returned beside the new x. ``method``: a key of :data:`TABLEAUS`.
    """
    if method not in TABLEAUS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    tableau = TABLEAUS[method]
    slopes, first_aux = [], None
    for c_i, a_i in zip(tableau.c, tableau.a):
        x_i = x
        for a_ij, k_j in zip(a_i, slopes):
            if a_ij:
                x_i = x_i + (h * a_ij) * k_j
        k_i, aux = f(x_i, phi + c_i * h)
        slopes.append(k_i)
        first_aux = aux if first_aux is None else first_aux
    out = x
    for b_i, k_i in zip(tableau.b, slopes):
        out = out + (h * b_i) * k_i
    return out, first_aux


def rotation_step(x0_hat: Tensor, eps_hat: Tensor, phi_next: float) -> Tensor:
    """x at angle phi_next when x0_hat and eps_hat are held fixed: cos(phi_next) x0_hat + sin(phi_next) eps_hat.

    The exact solution of dx/dphi = -sin(phi) x0_hat + cos(phi) eps_hat from a point on the same
    circle (chapter "angular", eq-fixed-heads, eq-rotation); it equals DDIM's eta = 0 jump (chapter "ddim", eq-ddim-step).
    """
    return math.cos(phi_next) * x0_hat + math.sin(phi_next) * eps_hat


def model_time(phis, schedule: Schedule, integer_t: bool = False) -> np.ndarray:
    """The model's time for each angle: the t of ``schedule`` with arccos sqrt(alpha_bar_t) = phi.

    Interpolated linearly between integer t (for the angular schedule alpha_bar_t = cos^2(pi t / 2T)
    this is t = 2 T phi / pi); angles above the schedule's last one map to T. ``integer_t`` rounds
    to an int in 1..T. Returns float64 values in [0, T].
    """
    phis = np.asarray(phis, dtype=np.float64)
    grid = np.arccos(np.sqrt(schedule.alpha_bars.numpy()))  # increasing in t, grid[0] = 0
    t = np.interp(phis, grid, np.arange(schedule.T + 1, dtype=np.float64))
    return np.clip(np.rint(t), 1, schedule.T) if integer_t else np.clip(t, 0.0, schedule.T)


def angular_sample(model, s: Schedule, shape, steps: int, method: str = "rk4", target: str | None = None,
                   integer_t: bool = False, phi_clip: float | None = None, generator: torch.Generator | None = None,
                   seed: int | None = None, device=None, dtype=None, x_T: Tensor | None = None, callback=None,
                   progress: bool = True):
    """Integrate the angular ODE from pure noise to data (Zhang et al. 2023; chapter "angular", eq-angular-ode).

    dx/dphi = -sin(phi) x0_hat(x, phi) + cos(phi) eps_hat(x, phi) from phi = pi/2 (x = x_T ~ N(0, I))
    to phi = 0 in ``steps`` equal steps h = -pi/(2 steps), each a :func:`rk_step` with ``method``
    ("euler", "rk2" or "rk4"; 1, 2 or 4 model calls per step). The model is called at float times
    t (B,) given by :func:`model_time` on ``s`` (``integer_t`` rounds them and passes int64).

    "eps" and "score" cannot give x0_hat at phi = pi/2, nor "x0" eps_hat at phi = 0; for these
    targets the model is evaluated at the angle clamped to [phi_clip, pi/2 - phi_clip] at that end
    (default phi_clip = pi/(2T), one step of the discrete chain). "x0_eps" and "v" need none.
    ``callback(t, x, x0_hat)`` is called once per step with the state at the step's start.

    Returns:
        x at phi = 0, (B, ...).
    """
    target = resolve_target(model, target)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    phi_clip = math.pi / (2 * s.T) if phi_clip is None else float(phi_clip)
    lo = phi_clip if target == "x0" else 0.0
    hi = math.pi / 2 - phi_clip if target in ("eps", "score") else math.pi / 2
    clamp = lambda phi: min(max(phi, lo), hi)  # noqa: E731
    x, _ = start(model, shape, generator, seed, device, dtype, x_T)
    h = -math.pi / (2 * steps)
    edges = [math.pi / 2 + k * h for k in range(steps)]
    stages = sorted({clamp(e + c * h) for e in edges for c in TABLEAUS[method].c}, reverse=True)
    t_dtype = torch.long if integer_t else x.dtype
    t_of = {phi: torch.full((x.shape[0],), t.item(), dtype=t_dtype, device=x.device)
            for phi, t in zip(stages, model_time(stages, s, integer_t))}

    def velocity(x, phi):
        phi = clamp(phi)
        a, sd = math.cos(phi), math.sin(phi)
        x0_hat, eps_hat = predictions_from_coeffs(a, sd, x, model(x, t_of[phi]), target)
        return target_from_coeffs(a, sd, x0_hat, eps_hat, "v"), x0_hat   # v = dx/dphi

    with torch.no_grad():
        for phi in tqdm(edges, desc=f"angular {method}", disable=not progress):
            x_next, x0_hat = rk_step(velocity, x, phi, h, method)
            if callback is not None:
                callback(float(t_of[clamp(phi)][0]), x, x0_hat)
            x = x_next
    return x

