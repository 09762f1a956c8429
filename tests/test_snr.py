"""The data-dependent SNR of chapter "forward" (eq-snr) against a Monte Carlo estimate.

Equations checked: eq-snr.
"""

import pytest
import torch

from dlib import schedules
from dlib.diffusion import q_sample


def test_data_log_snr_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    s = schedules.cosine(200)
    x0 = torch.rand(3, 1, 8, 8, generator=g, dtype=torch.float64) * 2 - 1
    got = schedules.data_log_snr(s, x0)
    n = 4000
    for t in (1, 50, 120, 160):
        eps = torch.randn((n,) + x0.shape, generator=g, dtype=torch.float64)
        x_t = q_sample(s, x0.expand(n, *x0.shape).reshape(-1, 1, 8, 8), t, eps.reshape(-1, 1, 8, 8)).reshape(eps.shape)
        # noise power: the variance of x_t over the noise draws; signal power: its squared mean,
        # minus the var/n bias of a squared sample mean
        noise = x_t.var(0)
        signal = (x_t.mean(0).pow(2) - noise / n).flatten(1).mean(1)
        noise = noise.flatten(1).mean(1)
        mc = (signal / noise).log()
        assert torch.allclose(mc, got[:, t], atol=0.1), (t, mc, got[:, t])
    assert torch.isinf(got[:, 0]).all()
    assert (got[:, 1:].diff(dim=1) < 0).all()


def test_data_log_snr_rejects_bad_input():
    with pytest.raises(ValueError):
        schedules.data_log_snr(schedules.linear(10), torch.zeros(4))
    with pytest.raises(ValueError, match="all zeros"):
        schedules.data_log_snr(schedules.linear(10), torch.zeros(2, 3))
