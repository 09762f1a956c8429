"""Which timesteps training draws: uniform on t_min..T, or a normal law on log SNR.

Drawing t from a law p instead of uniformly is, in expectation, the uniform draw with the per-step
weight T' p(t) on the loss, T' = T - t_min + 1 the number of steps drawn from (chapter
"objectives", eq-t-sampling). A weight changes the size of each step's gradient; a draw changes how
often each step is seen, which for a short run is what decides which noise levels the network learns.

``logsnr_normal`` is the discrete form of Karras et al. (2022)'s training law: log SNR ~ N(mean, std^2),
each draw sent to the step whose log SNR is nearest. Their noise level sigma is that of x_t / sqrt(alpha_bar_t)
= x0 + sigma eps, so SNR(t) = 1 / sigma^2, and their ln(sigma) ~ N(-1.2, 1.2^2) (for data in [-1, 1], as
ours) is log SNR = -2 ln(sigma) ~ N(2.4, 2.4^2), the defaults here.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .schedules import Schedule

#: The laws :func:`probabilities` knows.
KINDS = ("uniform", "logsnr_normal")


def probabilities(s: Schedule, kind: str = "uniform", mean: float = 2.4, std: float = 2.4,
                  t_min: int = 1) -> Tensor:
    """p(t) for t = 0..T (chapter "objectives", eq-t-sampling): float64, shape (T+1,), sums to 1.

    Index 0 (the clean data) and every t < t_min get 0. ``uniform``: 1/T' on t_min..T.
    ``logsnr_normal``: the mass of N(mean, std^2) on the interval of log SNR nearest to step t, i.e.
    Phi((u_t - mean)/std) - Phi((l_t - mean)/std) with u_t, l_t the midpoints of log SNR between t and
    its neighbours (+inf above t_min, -inf below T); log SNR is clamped to [-40, 40] so that a schedule
    reaching alpha_bar_T = 0 still has finite midpoints.

    Raises:
        ValueError: an unknown kind, std <= 0, a non-finite mean, or t_min outside 1..T.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown timestep law {kind!r}; expected one of {KINDS}")
    T = s.T
    if not (isinstance(t_min, int) and 1 <= t_min <= T):
        raise ValueError(f"t_min must be an integer in 1..T = 1..{T}, got {t_min!r}")
    p = torch.zeros(T + 1, dtype=torch.float64)
    if kind == "uniform":
        p[t_min:] = 1.0 / (T - t_min + 1)
        return p
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"std (of log SNR) must be positive and finite, got {std!r}")
    if not math.isfinite(mean):
        raise ValueError(f"mean (of log SNR) must be finite, got {mean!r}")
    log_snr = s.log_snr(torch.arange(t_min, T + 1)).clamp(-40.0, 40.0)   # decreasing in t
    mid = (log_snr[:-1] + log_snr[1:]) / 2
    inf = torch.tensor([math.inf], dtype=torch.float64)
    upper, lower = torch.cat([inf, mid]), torch.cat([mid, -inf])
    law = torch.distributions.Normal(torch.tensor(float(mean), dtype=torch.float64),
                                     torch.tensor(float(std), dtype=torch.float64))
    p[t_min:] = law.cdf(upper) - law.cdf(lower)
    return p / p.sum()


def implied_weight(p: Tensor, t_min: int = 1) -> Tensor:
    """T' p(t) for t = t_min..T (chapter "objectives", eq-t-sampling): the weight on the loss that the
    uniform draw would need to match the draw from ``p`` in expectation; 1 everywhere for uniform."""
    return (p.numel() - t_min) * p[t_min:]


def draw(p: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n timesteps from the law p (shape (T+1,), from :func:`probabilities`): int64 in 1..T, shape (n,),
    on the generator's device (p's without one)."""
    device = generator.device if generator is not None else p.device
    return torch.multinomial(p.to(device=device, dtype=torch.float32), n, replacement=True, generator=generator)
