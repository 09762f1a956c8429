"""DDIM: deterministic or partly stochastic sampling on a subsequence of timesteps, and its inversion (chapter "ddim").

Song, Meng & Ermon (2021). :func:`timesteps` picks the subsequence, :func:`ddim_sigma` the noise
level of a jump, :func:`ddim_step` takes one jump and :func:`ddim_sample` runs it; the loop calls
nothing else, so the source a chapter prints is the code that runs. :func:`ddim_invert_step` and
:func:`ddim_invert` run the deterministic jump the other way, from data to noise.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ..objectives import resolve_target, x0_from_eps
from ..schedules import Schedule
from .common import check_like, noise_like, predict, start

Tensor = torch.Tensor

#: Spacings of the DDIM subsequence (:func:`timesteps`).
SPACINGS = ("uniform", "quadratic")


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


def _pair(s: Schedule, t, t_prev):
    tt, tp = s.check_t(t), s.check_t(t_prev, allow_zero=True)
    if (tp >= tt).any():
        raise ValueError("t_prev must be smaller than t for every example")
    return tt, tp


def ddim_sigma(s: Schedule, t, t_prev, eta: float, like: Tensor | None = None) -> Tensor:
    """The noise level of a jump t -> t_prev (Song et al. 2021, their eq. 16; chapter "ddim", eq-ddim-sigma).

        sigma = eta sqrt((1 - alpha_bar_{t_prev}) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_{t_prev})

    eta = 0: deterministic; eta = 1 with t_prev = t - 1: sigma^2 = beta_tilde_t, the DDPM step.
    t: int or int64 (B,) in 1..T; t_prev likewise in 0..t-1. Returns float64 values shaped like t,
    or shaped (B, 1, ..., 1) in the dtype and device of ``like`` when it is given.
    """
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    tt, tp = _pair(s, t, t_prev)
    if like is None:
        a_bar, a_bar_prev = s.alpha_bars[tt], s.alpha_bars[tp]
    else:
        a_bar, a_bar_prev = s.gather(s.alpha_bars, tt, like), s.gather(s.alpha_bars, tp, like, allow_zero=True)
    return eta * ((1.0 - a_bar_prev) / (1.0 - a_bar) * (1.0 - a_bar / a_bar_prev)).sqrt()


def ddim_step(s: Schedule, x_t: Tensor, t, t_prev, eps_hat: Tensor, eta: float = 0.0,
              noise: Tensor | None = None, x0_hat: Tensor | None = None) -> Tensor:
    """One DDIM jump x_t -> x_{t_prev} (Song et al. 2021, their eq. 12; chapter "ddim", eq-ddim-step).

        x_{t_prev} = sqrt(alpha_bar_{t_prev}) x0_hat + sqrt(1 - alpha_bar_{t_prev} - sigma^2) eps_hat + sigma z

    with sigma = :func:`ddim_sigma`. x0_hat defaults to the one eps_hat implies,
    (x_t - sqrt(1 - alpha_bar_t) eps_hat)/sqrt(alpha_bar_t) (eq-x0-from-eps); pass it to use a
    separate estimate (target "x0_eps", or a clamped x0_hat). t_prev = 0 returns x0_hat.

    Args:
        x_t, eps_hat: (B, ...) float. t: int or int64 (B,) in 1..T; t_prev: same, in 0..t-1.
        eta: >= 0. noise: standard normal z like x_t, or None for no noise.
    """
    check_like(x_t, eps_hat, "eps_hat")
    check_like(x_t, noise, "noise")
    check_like(x_t, x0_hat, "x0_hat")
    sigma = ddim_sigma(s, t, t_prev, eta, like=x_t)
    tt, tp = _pair(s, t, t_prev)
    a_bar_prev = s.gather(s.alpha_bars, tp, x_t, allow_zero=True)
    if x0_hat is None:
        x0_hat = x0_from_eps(s, x_t, tt, eps_hat)
    out = a_bar_prev.sqrt() * x0_hat + (1.0 - a_bar_prev - sigma**2).clamp(min=0).sqrt() * eps_hat
    return out if noise is None else out + sigma * noise


def ddim_sample(model, s: Schedule, shape, steps: int, eta: float = 0.0, spacing: str = "uniform",
                target: str | None = None, generator: torch.Generator | None = None, seed: int | None = None,
                device=None, dtype=None, x_T: Tensor | None = None, clip_x0: float | None = None,
                callback=None, progress: bool = True, t_start: int | None = None):
    """DDIM sampling on a subsequence of timesteps (Song et al. 2021; chapter "ddim", eq-ddim-step).

    Calls the model at ``timesteps(t_start, steps, spacing)`` (t_start = T by default, down to 1)
    and jumps from each t to the next (to 0 after t = 1) with :func:`ddim_step`, eta scaling sigma.
    eta = 0 is a deterministic map of x_T; eta = 1 with steps = T is DDPM with sigma_t^2 = beta_tilde_t.
    ``t_start`` < T starts from a partly noised image ``x_T`` at that level (steps <= t_start).
    Other arguments and the return value as :func:`dlib.samplers.ddpm_sample`.
    """
    target = resolve_target(model, target)
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    t_start = s.T if t_start is None else int(s.check_t(t_start))
    ts = timesteps(t_start, steps, spacing)
    x, generator = start(model, shape, generator, seed, device, dtype, x_T)
    return ddim_chain(model, s, x, ts, 0, eta, generator, target, clip_x0, callback, progress)


def ddim_chain(model, s: Schedule, x: Tensor, ts, t_end: int = 0, eta: float = 0.0,
               generator: torch.Generator | None = None, target: str = "eps", clip_x0: float | None = None,
               callback=None, progress: bool = False, keep=()):
    """The DDIM loop itself (chapter "ddim", eq-ddim-step): from the state x at level ts[0], call the
    model at each level of ``ts`` (descending) and jump with :func:`ddim_step` to the next level, to
    ``t_end`` after the last. Noise (eta > 0) comes from ``generator``, else the global RNG.

    :func:`ddim_sample` runs it from x_T to 0; chapter "daed" runs it between any two levels.
    ``keep``: levels whose states to return as well. Returns x at t_end, or (x, {level: state}).
    """
    kept = {}
    with torch.no_grad():
        for t, t_prev in zip(tqdm(ts, desc=f"DDIM eta={eta}", disable=not progress), list(ts[1:]) + [t_end]):
            x0_hat, eps_hat = predict(model, s, x, t, target, clip_x0)
            if callback is not None:
                callback(t, x, x0_hat)
            draw = eta > 0 and float(ddim_sigma(s, t, t_prev, eta)) > 0
            noise = noise_like(x.shape, generator, x.device, x.dtype) if draw else None
            x = ddim_step(s, x, t, t_prev, eps_hat, eta, noise, x0_hat=x0_hat)
            if t_prev in keep:
                kept[t_prev] = x.clone()
    return (x, kept) if keep else x


def ddim_invert_step(s: Schedule, x_t: Tensor, t, t_next, eps_hat: Tensor, x0_hat: Tensor | None = None) -> Tensor:
    """One deterministic DDIM jump *up*, x_t -> x_{t_next} with t_next > t (chapter "ddim", eq-ddim-invert).

        x_{t_next} = sqrt(alpha_bar_{t_next}) x0_hat + sqrt(1 - alpha_bar_{t_next}) eps_hat

    the eta = 0 step of eq-ddim-step run towards the noise: in the rescaled variables x / sqrt(alpha_bar)
    and sqrt(1/alpha_bar - 1) both are Euler steps of one ODE (eq-ddim-ode), here taken from the lower
    end. x0_hat defaults to the one eps_hat implies at t (eq-x0-from-eps); at t = 0 that is x_t itself.

    Args:
        x_t, eps_hat: (B, ...) float. t: int or int64 (B,) in 0..T-1; t_next: same, in t+1..T.
    """
    check_like(x_t, eps_hat, "eps_hat")
    check_like(x_t, x0_hat, "x0_hat")
    tt, tn = s.check_t(t, allow_zero=True), s.check_t(t_next)
    if (tn <= tt).any():
        raise ValueError("t_next must be larger than t for every example")
    a_bar_next = s.gather(s.alpha_bars, tn, x_t)
    if x0_hat is None:
        a_bar = s.gather(s.alpha_bars, tt, x_t, allow_zero=True)
        x0_hat = (x_t - (1.0 - a_bar).sqrt() * eps_hat) / a_bar.sqrt()
    return a_bar_next.sqrt() * x0_hat + (1.0 - a_bar_next).sqrt() * eps_hat


def ddim_invert(model, s: Schedule, x0: Tensor, steps: int, spacing: str = "uniform", target: str | None = None,
                callback=None, progress: bool = True) -> Tensor:
    """DDIM inversion: encode x0 into the x_T that deterministic DDIM decodes back to about x0 (chapter "ddim").

    Visits the timesteps of :func:`ddim_sample` in reverse, 0 -> t_steps = 1 -> ... -> t_1 = T, with
    :func:`ddim_invert_step` (eq-ddim-invert), calling the model at the lower end of each jump (at t = 1
    for the jump that starts from the clean x0: the network is not trained at t = 0). Decoding the
    result with ``ddim_sample(model, s, shape, steps, eta=0, spacing=spacing, x_T=...)`` returns x0
    up to an error that shrinks with the number of steps: decoding evaluates the network at the
    upper end of each jump, inversion at the lower end (exact only in the limit of small steps).

    Args:
        x0: (B, ...) float, the data (images in [-1, 1]); its device and dtype are used.
        steps, spacing: as :func:`ddim_sample`; use the same values to decode.
        callback: ``callback(t, x_t, x0_hat)`` once per model call (t is the level the model is told).
    Returns:
        x_T, shaped like x0.
    """
    target = resolve_target(model, target)
    if not torch.is_tensor(x0) or not x0.is_floating_point():
        raise ValueError("x0 must be a floating-point tensor of shape (B, ...)")
    ts = timesteps(s.T, steps, spacing)[::-1]
    x = x0
    with torch.no_grad():
        for t, t_next in zip(tqdm([0] + ts[:-1], desc="DDIM inversion", disable=not progress), ts):
            x0_hat, eps_hat = predict(model, s, x, max(t, 1), target, None)
            if callback is not None:
                callback(max(t, 1), x, x0_hat)
            x = ddim_invert_step(s, x, t, t_next, eps_hat, x0_hat=x if t == 0 else x0_hat)
    return x
