"""dlib.gaussian_chain against independent computations (regression on samples, scipy densities).

Equations checked: eq-elbo, eq-elbo-forward, eq-elbo-posterior.
"""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dlib import gaussian_chain as gc
from dlib import schedules

SCHEDULE = schedules.from_betas(torch.tensor([0.1, 0.3, 0.2, 0.5]))


def test_exact_reverse_matches_least_squares_on_samples():
    g = torch.Generator().manual_seed(0)
    n, m, s2 = 400_000, 0.4, 0.25
    x0 = m + math.sqrt(s2) * torch.randn(n, generator=g, dtype=torch.float64)
    chain = gc.sample_chain(SCHEDULE, x0, g)
    model = gc.exact_reverse(SCHEDULE, m, s2)
    for t in range(1, SCHEDULE.T + 1):
        x_prev, x_t = chain[:, t - 1].numpy(), chain[:, t].numpy()
        slope, intercept = np.polyfit(x_t, x_prev, 1)
        resid = (x_prev - slope * x_t - intercept).var()
        assert abs(slope - model.a[t].item()) < 0.01 and abs(intercept - model.b[t].item()) < 0.01
        assert abs(resid - model.v[t].item()) < 0.01 * model.v[t].item() + 1e-3


def test_model_marginal_matches_ancestral_sampling():
    g = torch.Generator().manual_seed(1)
    model = gc.ReverseModel(a=torch.tensor([float("nan"), 0.8, 1.1, 0.7, 0.9], dtype=torch.float64),
                            b=torch.tensor([float("nan"), 0.1, -0.2, 0.0, 0.3], dtype=torch.float64),
                            v=torch.tensor([float("nan"), 0.05, 0.2, 0.1, 0.3], dtype=torch.float64),
                            prior_mean=0.2, prior_var=1.3)
    n = 400_000
    x = model.prior_mean + math.sqrt(model.prior_var) * torch.randn(n, generator=g, dtype=torch.float64)
    for t in range(model.T, 0, -1):
        x = model.a[t] * x + model.b[t] + model.v[t].sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
    mean, var = gc.model_marginal(model)
    assert abs(x.mean().item() - mean) < 5 * math.sqrt(var / n)
    assert abs(x.var().item() - var) < 5 * var * math.sqrt(2 / n)


def test_log_weight_against_scipy_and_tightness():
    g = torch.Generator().manual_seed(2)
    model = gc.exact_reverse(SCHEDULE, 0.4, 0.25)
    chain = gc.sample_chain(SCHEDULE, torch.full((6,), 0.9, dtype=torch.float64), g)
    got = gc.log_weight(SCHEDULE, model, chain).numpy()
    c = chain.numpy()
    want = stats.norm.logpdf(c[:, -1], model.prior_mean, math.sqrt(model.prior_var))
    for t in range(1, SCHEDULE.T + 1):
        want += stats.norm.logpdf(c[:, t - 1], model.a[t].item() * c[:, t] + model.b[t].item(), math.sqrt(model.v[t].item()))
        want -= stats.norm.logpdf(c[:, t], math.sqrt(SCHEDULE.alphas[t].item()) * c[:, t - 1], math.sqrt(SCHEDULE.betas[t].item()))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # exact reverse model: the weight is the same for every chain and equals log p(x0) = log N(0.9; 0.4, 0.25)
    np.testing.assert_allclose(got, stats.norm.logpdf(0.9, 0.4, 0.5), rtol=1e-10)


def test_bad_input():
    with pytest.raises(ValueError):
        gc.exact_reverse(SCHEDULE, 0.0, -1.0)
    with pytest.raises(ValueError, match="shape"):
        gc.log_weight(SCHEDULE, gc.exact_reverse(SCHEDULE, 0.0, 1.0), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="> 0"):
        gc.ReverseModel(torch.ones(3), torch.ones(3), torch.tensor([0.0, -1.0, 1.0]), 0.0, 1.0)
