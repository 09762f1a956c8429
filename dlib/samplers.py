"""Samplers: ancestral DDPM, DDIM and the angular ODE (chapters "ddpm", "ddim", "angular").

Every sampler asks the model for its declared target and turns it into (x0_hat, eps_hat) with
:func:`dlib.objectives.predictions_from_coeffs`; nothing here depends on what the model predicts.

* :func:`ddpm_step` / :func:`ddpm_sample` -- Ho et al. (2020), Algorithm 2 (eq-ddpm-step).
* :func:`ddim_step` / :func:`ddim_sample` -- Song et al. (2021), their eq. 12 (eq-ddim-step, eq-ddim-sigma).
* :func:`angular_sample` -- Zhang et al.: x = cos(eta) x0 + sin(eta) eps, integrate
  dx/deta = -sin(eta) x0_hat + cos(eta) eps_hat from eta = pi/2 to 0 with Euler, RK2 or RK4
  (eq-angular-xt, eq-angular-ode, eq-angular-euler).

Conventions of the loops: ``model(x, t)`` gets x (B, ...) and t (B,) -- int64 timesteps in 1..T
for DDPM and DDIM, float times on the 0..T scale for the angular sampler. The caller puts a
network in eval mode; the loops run under ``torch.no_grad()``. Noise comes from ``generator``
(drawn on its device, then moved), or a fresh generator seeded with ``seed`` on the sampling
device, or else the global torch RNG. ``device=None`` means the device of the model's parameters
(CPU for a plain function).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from .objectives import TARGETS, predictions_from_coeffs
from .schedules import Schedule

Tensor = torch.Tensor

SPACINGS = ("uniform", "quadratic")
METHODS = ("euler", "rk2", "rk4")
__all__ = ["timesteps", "ddpm_step", "ddim_step", "ddpm_sample", "ddim_sample", "angular_sample",
           "SPACINGS", "METHODS"]


# ----------------------------------------------------------------------------- helpers
def _f(values: Tensor, t: int) -> float:
    return float(values[t])


def _posterior_coeffs(s: Schedule, t: int) -> tuple[float, float]:
    """(coef_x0, coef_xt) of the posterior mean mu_tilde (chapter "posterior", eq-posterior-mean)."""
    a_bar, a_bar_prev = _f(s.alpha_bars, t), _f(s.alpha_bars, t - 1)
    coef_x0 = math.sqrt(a_bar_prev) * _f(s.betas, t) / (1.0 - a_bar)
    coef_xt = math.sqrt(_f(s.alphas, t)) * (1.0 - a_bar_prev) / (1.0 - a_bar)
    return coef_x0, coef_xt


def _ddim_sigma(s: Schedule, t: int, t_prev: int, eta: float) -> float:
    a_bar, a_bar_prev = _f(s.alpha_bars, t), _f(s.alpha_bars, t_prev)
    return eta * math.sqrt((1.0 - a_bar_prev) / (1.0 - a_bar) * (1.0 - a_bar / a_bar_prev))


def _check_variance(variance: str) -> None:
    if variance not in ("beta_tilde", "beta"):
        raise ValueError(f"unknown variance {variance!r}; expected 'beta_tilde' or 'beta'")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")


def _check_like(x_t: Tensor, other, name: str) -> None:
    if other is not None and (not torch.is_tensor(other) or other.shape != x_t.shape):
        shape = tuple(other.shape) if torch.is_tensor(other) else type(other).__name__
        raise ValueError(f"{name} must have the shape of x_t {tuple(x_t.shape)}, got {shape}")


def _setup(model, shape, generator, seed, device, dtype, x_T):
    """Resolve device, generator and the starting noise x_T of a sampling loop."""
    if x_T is not None:
        if not torch.is_tensor(x_T) or not x_T.is_floating_point():
            raise ValueError("x_T must be a floating-point tensor of shape (B, ...)")
        device = x_T.device if device is None else torch.device(device)
        dtype = x_T.dtype if dtype is None else dtype
        shape = tuple(x_T.shape)
    dtype = torch.float32 if dtype is None else dtype
    if (not isinstance(shape, (tuple, list)) or len(shape) < 1
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise ValueError(f"shape must be a tuple of positive ints (B, ...), got {shape!r}")
    if device is None:
        param = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    x = _noise(tuple(shape), generator, device, dtype) if x_T is None else x_T.to(device=device, dtype=dtype)
    return x, generator


def _noise(shape, generator, device, dtype) -> Tensor:
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def _new_trajectory() -> dict:
    return {"x_t": [], "x0_hat": [], "t": []}


def _record(trajectory, x, x0_hat, t) -> None:
    if trajectory is not None:
        trajectory["x_t"].append(x.detach().cpu())
        trajectory["x0_hat"].append(x0_hat.detach().cpu())
        trajectory["t"].append(t)


def _clip(x_t, x0_hat, eps_hat, a: float, sd: float, clip_x0):
    """Clamp x0_hat to [-clip_x0, clip_x0] and re-derive eps_hat from it (eq-eps-from-x0)."""
    if clip_x0 is None:
        return x0_hat, eps_hat
    x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
    return x0_hat, (x_t - a * x0_hat) / sd


# ----------------------------------------------------------------------------- timesteps
def timesteps(T: int, steps: int, spacing: str = "uniform") -> list[int]:
    """The descending timesteps t_1 = T > t_2 > ... > t_steps = 1 at which a sampler calls the model.

    Chapter "ddim". Each model call at t_i is followed by a jump to t_prev = t_{i+1}, and after
    the last call (t = 1) to t_prev = 0, the clean data. ``"uniform"``: round(1 + (T - 1) u) for
    u = 1, (S-2)/(S-1), ..., 0; ``"quadratic"``: u squared, which puts more steps at small t (Song
    et al. 2021). Values are nudged apart so the list is strictly decreasing; ``steps = T`` gives
    T, T-1, ..., 1 and ``steps = 1`` gives [T].

    Raises:
        ValueError: T < 1, steps outside 1..T, or an unknown spacing.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an int in 1..T = 1..{T}, got {steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; expected one of {SPACINGS}")
    if steps == 1:
        return [T]
    u = np.linspace(0.0, 1.0, steps)
    if spacing == "quadratic":
        u = u**2
    ts = np.rint(1 + (T - 1) * u).astype(np.int64)
    for i in range(1, steps):  # ascending: at least one apart, and room left above for the rest
        ts[i] = max(ts[i], ts[i - 1] + 1)
    for i in range(steps - 1, -1, -1):
        ts[i] = min(ts[i], T - (steps - 1 - i))
    return [int(v) for v in ts[::-1]]


# ----------------------------------------------------------------------------- single steps
def ddpm_step(s: Schedule, x_t: Tensor, t, eps_hat: Tensor, noise: Tensor | None,
              variance: str = "beta_tilde", x0_hat: Tensor | None = None) -> Tensor:
    """One ancestral step x_t -> x_{t-1} (Ho et al. 2020, Algorithm 2; chapter "ddpm", eq-ddpm-step).

        x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t) + sigma_t z

    with sigma_t^2 = beta_tilde_t (``"beta_tilde"``, eq-beta-tilde) or beta_t (``"beta"``)
    (eq-ddpm-variance), and no noise where t == 1 (per example). If ``x0_hat`` is given the mean
    is the posterior mean with x0_hat plugged in, coef_x0 x0_hat + coef_xt x_t (chapter
    "posterior", eq-posterior-mean) -- equal to the line above when x0_hat and eps_hat agree.

    Args:
        x_t, eps_hat: (B, ...) float. t: int or int64 (B,) in 1..T.
        noise: standard normal z shaped like x_t, or None for no noise (the step's mean).
    Returns:
        x_{t-1}, shaped like x_t.
    """
    _check_variance(variance)
    _check_like(x_t, eps_hat, "eps_hat")
    _check_like(x_t, noise, "noise")
    _check_like(x_t, x0_hat, "x0_hat")
    tt = s.check_t(t)
    g = lambda values: s.gather(values, tt, x_t)  # noqa: E731
    if x0_hat is None:
        mean = (x_t - g(s.betas) / (1.0 - g(s.alpha_bars)).sqrt() * eps_hat) / g(s.alphas).sqrt()
    else:
        a_bar, a_bar_prev = g(s.alpha_bars), s.gather(s.alpha_bars, tt - 1, x_t, allow_zero=True)
        mean = (a_bar_prev.sqrt() * g(s.betas) * x0_hat + g(s.alphas).sqrt() * (1.0 - a_bar_prev) * x_t) / (1 - a_bar)
    if noise is None:
        return mean
    var = s.betas if variance == "beta" else s.beta_tildes()
    sigma = g(var).sqrt() * (g(torch.arange(s.T + 1)) > 1)
    return mean + sigma * noise


def ddim_step(s: Schedule, x_t: Tensor, t, t_prev, eps_hat: Tensor, eta: float = 0.0,
              noise: Tensor | None = None, x0_hat: Tensor | None = None) -> Tensor:
    """One DDIM step x_t -> x_{t_prev} (Song et al. 2021, eq. 12; chapter "ddim", eq-ddim-step).

        x_{t_prev} = sqrt(alpha_bar_{t_prev}) x0_hat + sqrt(1 - alpha_bar_{t_prev} - sigma^2) eps_hat + sigma z
        sigma = eta sqrt((1 - alpha_bar_{t_prev})/(1 - alpha_bar_t)) sqrt(1 - alpha_bar_t/alpha_bar_{t_prev})
                                                                                    (eq-ddim-sigma)

    x0_hat defaults to (x_t - sqrt(1 - alpha_bar_t) eps_hat)/sqrt(alpha_bar_t) (eq-x0-from-eps);
    pass it to use a separate estimate (target "x0_eps"). eta = 0 is deterministic; eta = 1 with
    t_prev = t - 1 gives sigma^2 = beta_tilde_t, the DDPM step. t_prev = 0 returns x0_hat.

    Args:
        x_t, eps_hat: (B, ...) float. t: int or int64 (B,) in 1..T; t_prev: same, in 0..t-1.
        eta: >= 0. noise: standard normal z like x_t, or None for no noise.
    """
    _check_like(x_t, eps_hat, "eps_hat")
    _check_like(x_t, noise, "noise")
    _check_like(x_t, x0_hat, "x0_hat")
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    tt, tp = s.check_t(t), s.check_t(t_prev, allow_zero=True)
    if (tp >= tt).any():
        raise ValueError("t_prev must be smaller than t for every example")
    a_bar = s.gather(s.alpha_bars, tt, x_t)
    a_bar_prev = s.gather(s.alpha_bars, tp, x_t, allow_zero=True)
    if x0_hat is None:
        x0_hat = (x_t - (1.0 - a_bar).sqrt() * eps_hat) / a_bar.sqrt()
    sigma = eta * ((1.0 - a_bar_prev) / (1.0 - a_bar) * (1.0 - a_bar / a_bar_prev)).sqrt()
    out = a_bar_prev.sqrt() * x0_hat + (1.0 - a_bar_prev - sigma**2).clamp(min=0).sqrt() * eps_hat
    return out if noise is None else out + sigma * noise


# ----------------------------------------------------------------------------- loops
def _discrete_loop(model, x, plan, target, generator, clip_x0, return_trajectory, progress, desc):
    """Run x_{t_prev} = p x0_hat + q x_t + r eps_hat + sigma z over ``plan`` (precomputed floats)."""
    trajectory = _new_trajectory() if return_trajectory else None
    batch = x.shape[0]
    t_inputs = [torch.full((batch,), step[0], dtype=torch.long, device=x.device) for step in plan]
    with torch.no_grad():
        for (t, a, sd, p, q, r, sigma), t_in in zip(tqdm(plan, desc=desc, disable=not progress), t_inputs):
            x0_hat, eps_hat = predictions_from_coeffs(a, sd, x, model(x, t_in), target)
            x0_hat, eps_hat = _clip(x, x0_hat, eps_hat, a, sd, clip_x0)
            _record(trajectory, x, x0_hat, t)
            out = x0_hat * p
            if q:
                out = out.add_(x, alpha=q)
            if r:
                out = out.add_(eps_hat, alpha=r)
            if sigma:
                out = out.add_(_noise(x.shape, generator, x.device, x.dtype), alpha=sigma)
            x = out
    return (x, trajectory) if return_trajectory else x


def ddpm_sample(model, s: Schedule, shape, target: str = "eps", generator: torch.Generator | None = None,
                seed: int | None = None, device=None, variance: str = "beta_tilde", dtype=None,
                x_T: Tensor | None = None, clip_x0: float | None = None, return_trajectory: bool = False,
                progress: bool = True):
    """Ancestral sampling with all T steps (Ho et al. 2020, Algorithm 2; chapter "ddpm", eq-ddpm-step).

    From x_T ~ N(0, I) (or the given ``x_T``), for t = T..1: (x0_hat, eps_hat) from the model's
    output, then x_{t-1} = coef_x0 x0_hat + coef_xt x_t + sigma_t z (eq-posterior-mean; the same as
    Algorithm 2's eps form), with sigma_t^2 = beta_tilde_t or beta_t (eq-ddpm-variance) and no
    noise at t = 1. ``clip_x0=c`` clamps x0_hat to [-c, c] (c = 1 for images in [-1, 1]).

    Args:
        model: callable model(x (B, ...), t int64 (B,)) -> output for ``target``.
        shape: (B, ...) of the samples (ignored when ``x_T`` is given).
        dtype: float dtype of the samples; None: that of ``x_T``, else float32.
    Returns:
        x_0 (B, ...); with ``return_trajectory`` also {"x_t": [...], "x0_hat": [...], "t": [...]},
        one CPU tensor / int per model call, t descending.
    """
    _check_target(target)
    _check_variance(variance)
    x, generator = _setup(model, shape, generator, seed, device, dtype, x_T)
    var = s.betas if variance == "beta" else s.beta_tildes()
    plan = []
    for t in range(s.T, 0, -1):
        coef_x0, coef_xt = _posterior_coeffs(s, t)
        sigma = math.sqrt(_f(var, t)) if t > 1 else 0.0
        a_bar = _f(s.alpha_bars, t)
        plan.append((t, math.sqrt(a_bar), math.sqrt(1.0 - a_bar), coef_x0, coef_xt, 0.0, sigma))
    return _discrete_loop(model, x, plan, target, generator, clip_x0, return_trajectory, progress, "DDPM")


def ddim_sample(model, s: Schedule, shape, steps: int, eta: float = 0.0, spacing: str = "uniform",
                target: str = "eps", generator: torch.Generator | None = None, seed: int | None = None,
                device=None, dtype=None, x_T: Tensor | None = None, clip_x0: float | None = None,
                return_trajectory: bool = False, progress: bool = True):
    """DDIM sampling on a subsequence of timesteps (Song et al. 2021; chapter "ddim", eq-ddim-step).

    Calls the model at ``timesteps(s.T, steps, spacing)`` (T down to 1) and jumps from each t to
    the next (to 0 after t = 1) with :func:`ddim_step`'s update, eta in [0, 1] scaling sigma
    (eq-ddim-sigma). eta = 0 is a deterministic map of x_T; eta = 1 with steps = T is DDPM with
    sigma_t^2 = beta_tilde_t. Other arguments and the return value as :func:`ddpm_sample`.
    """
    _check_target(target)
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    ts = timesteps(s.T, steps, spacing)
    x, generator = _setup(model, shape, generator, seed, device, dtype, x_T)
    plan = []
    for t, t_prev in zip(ts, ts[1:] + [0]):
        a_bar, a_bar_prev = _f(s.alpha_bars, t), _f(s.alpha_bars, t_prev)
        sigma = _ddim_sigma(s, t, t_prev, eta)
        r = math.sqrt(max(1.0 - a_bar_prev - sigma**2, 0.0))
        plan.append((t, math.sqrt(a_bar), math.sqrt(1.0 - a_bar), math.sqrt(a_bar_prev), 0.0, r, sigma))
    return _discrete_loop(model, x, plan, target, generator, clip_x0, return_trajectory, progress,
                          f"DDIM eta={eta}")


def _model_time(etas, T: int, schedule: Schedule | None, integer_t: bool) -> np.ndarray:
    """The model's time for each angle: eta 2T/pi, or the schedule's t with arccos sqrt(alpha_bar_t) = eta."""
    etas = np.asarray(etas, dtype=np.float64)
    if schedule is None:
        t = etas * 2.0 * T / math.pi
    else:
        grid = np.arccos(np.sqrt(schedule.alpha_bars.numpy()))  # increasing in t, grid[0] = 0
        t = np.interp(etas, grid, np.arange(schedule.T + 1, dtype=np.float64))
    return np.clip(np.rint(t), 1, T) if integer_t else np.clip(t, 0.0, T)


def angular_sample(model, shape, steps: int, method: str = "rk4", target: str = "x0_eps", T: int = 1000,
                   schedule: Schedule | None = None, integer_t: bool = False, eta_clip: float | None = None,
                   generator: torch.Generator | None = None, seed: int | None = None, device=None,
                   dtype=None, x_T: Tensor | None = None, return_trajectory: bool = False,
                   progress: bool = True):
    """Integrate the angular ODE from pure noise to data (Zhang et al.; chapter "angular").

    With x = cos(eta) x0 + sin(eta) eps (eq-angular-xt) the flow is (eq-angular-ode)

        dx/deta = -sin(eta) x0_hat(x, eta) + cos(eta) eps_hat(x, eta),

    integrated from eta = pi/2 (x = x_T ~ N(0, I)) to eta = 0 in ``steps`` equal angle steps
    h = -pi/(2 steps) with ``"euler"`` (x += h f, eq-angular-euler), ``"rk2"`` (Heun: the mean of
    the slopes at both ends of the Euler step) or ``"rk4"`` (classical Runge-Kutta). Model calls
    per step: 1, 2, 4.

    The adapter uses a = cos(eta), s = sin(eta) (alpha_bar = cos^2 eta). The model gets float
    times t (B,) on its 0..T scale: t = eta 2T/pi (the angular schedule, alpha_bar_t =
    cos^2(pi t / 2T)), or with ``schedule`` the t whose alpha_bar_t = cos^2(eta) (interpolated;
    angles above the schedule's last one map to T); ``integer_t`` rounds t to an int in 1..T.

    "eps" and "score" cannot give x0_hat at eta = pi/2, nor "x0" eps_hat at eta = 0; for these
    targets the model is evaluated at the angle clamped to [eta_clip, pi/2 - eta_clip] at that
    end (default eta_clip = pi/(2T), one step of the discrete chain). "x0_eps" and "v" need none.

    Returns:
        x at eta = 0, (B, ...); with ``return_trajectory`` also {"x_t", "x0_hat", "t", "eta"}, one
        entry per step (x and x0_hat at the step's start).
    """
    _check_target(target)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if schedule is not None:
        T = schedule.T
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    eta_clip = math.pi / (2 * T) if eta_clip is None else float(eta_clip)
    lo = eta_clip if target == "x0" else 0.0
    hi = math.pi / 2 - eta_clip if target in ("eps", "score") else math.pi / 2
    x, _ = _setup(model, shape, generator, seed, device, dtype, x_T)
    edges = [math.pi / 2 * (1 - k / steps) for k in range(steps + 1)]
    h = -math.pi / (2 * steps)
    offsets = {"euler": [0.0], "rk2": [0.0, 1.0], "rk4": [0.0, 0.5, 1.0]}[method]
    angles = sorted({min(max(e + o * h, lo), hi) for e in edges[:-1] for o in offsets}, reverse=True)
    t_of = {eta: torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)
            for eta, t in zip(angles, _model_time(angles, T, schedule, integer_t))}
    trajectory = dict(_new_trajectory(), eta=[]) if return_trajectory else None

    def slope(x, eta):
        eta = min(max(eta, lo), hi)
        c, sn = math.cos(eta), math.sin(eta)
        x0_hat, eps_hat = predictions_from_coeffs(c, sn, x, model(x, t_of[eta]), target)
        return x0_hat * (-sn) + eps_hat * c, x0_hat

    with torch.no_grad():
        for eta in tqdm(edges[:-1], desc=f"angular {method}", disable=not progress):
            k1, x0_hat = slope(x, eta)
            if trajectory is not None:
                _record(trajectory, x, x0_hat, float(t_of[min(max(eta, lo), hi)][0]))
                trajectory["eta"].append(eta)
            if method == "euler":
                x = x + h * k1
            elif method == "rk2":
                k2, _ = slope(x + h * k1, eta + h)
                x = x + (h / 2) * (k1 + k2)
            else:
                k2, _ = slope(x + (h / 2) * k1, eta + h / 2)
                k3, _ = slope(x + (h / 2) * k2, eta + h / 2)
                k4, _ = slope(x + h * k3, eta + h)
                x = x + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return (x, trajectory) if return_trajectory else x
