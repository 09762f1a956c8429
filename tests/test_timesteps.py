"""dlib.timesteps: the law training draws t from.

Equations checked: eq-t-sampling.
"""
import math

import pytest
import torch

from dlib import schedules, timesteps

SCHEDULES = [schedules.linear(200), schedules.cosine(200), schedules.angular(200)]


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
@pytest.mark.parametrize("t_min", [1, 37])
def test_the_log_snr_law_is_the_nearest_step_of_normal_draws(s, t_min):
    """The CDF-difference formula against its definition: draw log SNR, take the nearest step of t_min..T."""
    gen = torch.Generator().manual_seed(1)
    mean, std = 1.0, 3.0
    p = timesteps.probabilities(s, "logsnr_normal", mean=mean, std=std, t_min=t_min)
    assert p.shape == (s.T + 1,) and p.dtype == torch.float64
    assert p[:t_min].abs().sum() == 0 and math.isclose(p.sum().item(), 1.0, rel_tol=1e-12)
    t = torch.arange(t_min, s.T + 1)
    log_snr = torch.log(s.alpha_bars[t]) - torch.log1p(-s.alpha_bars[t])
    draws = mean + std * torch.randn(200_000, generator=gen, dtype=torch.float64)
    nearest = (draws[:, None] - log_snr[None, :].clamp(-40, 40)).abs().argmin(dim=1) + t_min
    freq = torch.bincount(nearest, minlength=s.T + 1).double() / len(draws)
    sd = (p * (1 - p) / len(draws)).sqrt()
    assert ((freq - p).abs() <= 5 * sd + 1e-6).all()


def test_uniform_is_flat_and_draws_follow_the_law():
    s = schedules.linear(100)
    p = timesteps.probabilities(s, "uniform", t_min=11)
    assert torch.equal(p[:11], torch.zeros(11)) and torch.allclose(p[11:], torch.full((90,), 1 / 90, dtype=torch.float64))
    assert torch.allclose(timesteps.implied_weight(p, t_min=11), torch.ones(90, dtype=torch.float64))
    law = timesteps.probabilities(s, "logsnr_normal", mean=0.0, std=1.5)
    t = timesteps.draw(law, 200_000, generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.int64 and t.shape == (200_000,) and t.min() >= 1 and t.max() <= s.T
    freq = torch.bincount(t, minlength=s.T + 1).double() / len(t)
    assert ((freq - law).abs() <= 5 * (law * (1 - law) / len(t)).sqrt() + 1e-6).all()


def test_drawing_from_the_law_equals_the_weighted_uniform_draw():
    """eq-t-sampling by Monte Carlo: E_{t~p} l_t against E_{t~U}[T' p(t) l_t], both from draws."""
    s, t_min = schedules.cosine(300), 5
    p = timesteps.probabilities(s, "logsnr_normal", t_min=t_min)
    loss_t = torch.rand(s.T + 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)   # any per-step loss
    gen = torch.Generator().manual_seed(4)
    from_law = loss_t[timesteps.draw(p, 400_000, generator=gen)]
    u = torch.randint(t_min, s.T + 1, (400_000,), generator=gen)
    weighted = timesteps.implied_weight(p, t_min)[u - t_min] * loss_t[u]
    se = (from_law.var() / len(from_law) + weighted.var() / len(weighted)).sqrt()
    assert abs(from_law.mean() - weighted.mean()) < 5 * se
    assert math.isclose((p * loss_t).sum().item(), from_law.mean().item(), rel_tol=0.01)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "lognormal"}, "unknown timestep law"),
    ({"kind": "logsnr_normal", "std": 0.0}, "std"),
    ({"kind": "logsnr_normal", "mean": float("nan")}, "mean"),
    ({"kind": "uniform", "t_min": 0}, "t_min"),
    ({"kind": "logsnr_normal", "t_min": 101}, "t_min"),
])
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timesteps.probabilities(schedules.linear(100), **kwargs)
