"""dlib.diffusion against independent computations: Bayes on a grid, covariance algebra, Monte
Carlo, scipy's normal CDF, and the iterated chain."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dlib import diffusion, schedules

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_q_sample_matches_the_iterated_chain():
    g = torch.Generator().manual_seed(0)
    s, n = schedules.linear(50, 1e-3, 0.1), 200_000
    x0 = torch.full((n,), 0.6, dtype=F64)
    x = x0.clone()
    for t in range(1, s.T + 1):
        x = s.alphas[t].sqrt() * x + s.betas[t].sqrt() * torch.randn(n, generator=g, dtype=F64)
        if t in (1, 7, 30, 50):
            a = s.alpha_bars[t].item()
            closed = diffusion.q_sample(s, x0[:, None], t, torch.randn(n, 1, generator=g, dtype=F64))[:, 0]
            for sample in (x, closed):
                assert abs(sample.mean().item() - math.sqrt(a) * 0.6) < 5 * math.sqrt((1 - a) / n)
                assert abs(sample.var().item() - (1 - a)) < 5 * (1 - a) * math.sqrt(2 / n)


@pytest.mark.parametrize("t", [2, 5, 40, 100])
def test_posterior_against_grid_bayes_and_conditioning(t):
    s = schedules.cosine(100)
    x0, x_t = torch.tensor([[0.3]], dtype=F64), torch.tensor([[-0.2]], dtype=F64)
    mean, var = diffusion.q_posterior(s, x0, x_t, torch.tensor([t]))
    # Bayes' rule on a grid: q(x_t | x_{t-1}) q(x_{t-1} | x0), normalized numerically
    grid = np.linspace(-8, 8, 400_001)
    a, ab_prev, beta = s.alphas[t].item(), s.alpha_bars[t - 1].item(), s.betas[t].item()
    logw = stats.norm.logpdf(-0.2, math.sqrt(a) * grid, math.sqrt(beta)) + \
        stats.norm.logpdf(grid, math.sqrt(ab_prev) * 0.3, math.sqrt(1 - ab_prev))
    w = np.exp(logw - logw.max())
    w /= w.sum()
    g_mean = (w * grid).sum()
    g_var = (w * (grid - g_mean) ** 2).sum()
    assert abs(mean.item() - g_mean) < 1e-7 and abs(var.item() - g_var) < 1e-6 * g_var + 1e-12
    # Gaussian conditioning of the joint (x_{t-1}, x_t | x0) by covariance algebra
    S11, S12, S22 = 1 - ab_prev, math.sqrt(a) * (1 - ab_prev), 1 - s.alpha_bars[t].item()
    mu1, mu2 = math.sqrt(ab_prev) * 0.3, math.sqrt(s.alpha_bars[t].item()) * 0.3
    assert abs(mean.item() - (mu1 + S12 / S22 * (-0.2 - mu2))) < 1e-12
    assert abs(var.item() - (S11 - S12**2 / S22)) < 1e-12


def test_normal_kl_against_monte_carlo():
    g = torch.Generator().manual_seed(1)
    n = 400_000
    for m1, v1, m2, v2 in ((0.0, 1.0, 0.5, 2.0), (1.0, 0.1, -1.0, 0.3)):
        x = m1 + math.sqrt(v1) * torch.randn(n, generator=g, dtype=F64)
        ratio = torch.tensor(stats.norm.logpdf(x.numpy(), m1, math.sqrt(v1)) - stats.norm.logpdf(x.numpy(), m2, math.sqrt(v2)))
        kl = diffusion.normal_kl(m1, v1, m2, v2).item()
        assert abs(kl - ratio.mean().item()) < 5 * ratio.std().item() / math.sqrt(n)
    assert diffusion.normal_kl(0.2, 0.5, 0.2, 0.5).item() == 0
    with pytest.raises(ValueError, match="variances"):
        diffusion.normal_kl(0.0, 0.0, 0.0, 1.0)


def test_discretized_likelihood_against_scipy():
    levels = torch.arange(256, dtype=F64) / 127.5 - 1
    for mean, std in ((0.0, 0.1), (0.95, 0.05), (-1.0, 0.4)):
        lp = diffusion.discretized_gaussian_log_likelihood(levels, torch.tensor(mean), torch.tensor(math.log(std)))
        assert abs(lp.exp().sum().item() - 1) < 1e-9
        edges = np.concatenate([[-np.inf], (levels[:-1].numpy() + levels[1:].numpy()) / 2, [np.inf]])
        want = np.diff(stats.norm.cdf(edges, mean, std))
        np.testing.assert_allclose(lp.exp().numpy(), want, atol=1e-12)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        diffusion.discretized_gaussian_log_likelihood(torch.tensor([1.5]), torch.tensor(0.0), torch.tensor(0.0))


def test_prior_kl_and_vlb_terms():
    s = schedules.linear(20, 1e-3, 0.3)
    x0 = torch.rand(3, 1, 2, 2, dtype=F64) * 2 - 1
    a = s.alpha_bars[-1].item()
    want = (0.5 * (-math.log(1 - a) + (1 - a) + a * x0**2 - 1)).flatten(1).sum(1)
    assert torch.allclose(diffusion.prior_kl(s, x0), want)
    x_t = diffusion.q_sample(s, x0, torch.tensor([1, 2, 9]), torch.randn_like(x0))
    mean, var = diffusion.q_posterior(s, x0, x_t, torch.tensor([1, 2, 9]))
    terms = diffusion.vlb_term(s, x0, x_t, torch.tensor([1, 2, 9]), mean, torch.full_like(x0, 0.01), decoder="gaussian")
    # t >= 2 with the posterior mean: only the variance mismatch is left
    bt = s.beta_tildes()[torch.tensor([2, 9])]
    kl_var = 0.5 * (math.log(0.01) - torch.log(bt) + bt / 0.01 - 1) * 4
    assert torch.allclose(terms[1:], kl_var)
    # t = 1: a Gaussian log density of x0
    nll = -stats.norm.logpdf(x0[0].numpy(), mean[0].numpy(), 0.1).sum()
    assert abs(terms[0].item() - nll) < 1e-9
    with pytest.raises(ValueError, match="1..20"):
        diffusion.vlb_term(s, x0, x_t, torch.tensor([0, 2, 9]), mean, 0.01)


def test_nll_bits_per_dim_oracle_beats_a_bad_model():
    g = torch.Generator().manual_seed(3)
    s = schedules.linear(20, 1e-3, 0.3)
    x0 = torch.randint(0, 256, (4, 1, 4, 4), generator=g).to(F64) / 127.5 - 1
    var = s.beta_tildes().clone()
    var[1] = s.betas[1]

    def oracle(x_t, t):  # the true posterior, with x0 known
        return diffusion.q_posterior(s, x0, x_t, t)[0], var[t].reshape(-1, 1, 1, 1)

    def bad(x_t, t):
        return torch.zeros_like(x_t), torch.ones(1, dtype=F64)

    good = diffusion.nll_bits_per_dim(oracle, s, x0, generator=g, progress=False)
    worse = diffusion.nll_bits_per_dim(bad, s, x0, generator=g, progress=False)
    assert good["terms"].shape == (4, 20) and torch.isfinite(good["total"]).all()
    assert torch.allclose(good["total"], good["prior"] + good["terms"].sum(1))
    assert (good["terms"][:, 1:].abs() < 1e-9).all()  # the oracle matches every posterior exactly
    assert (worse["total"] > good["total"]).all()


def test_bad_input_is_named():
    s = schedules.linear(10)
    x0 = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match="1..10"):
        diffusion.q_posterior(s, x0, x0, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="shape"):
        diffusion.q_posterior(s, x0, torch.zeros(2, 1, 2, 3), torch.tensor([1, 3]))
    with pytest.raises(ValueError, match="B = 2"):
        diffusion.q_sample(s, x0, torch.tensor([1, 2, 3]), torch.zeros_like(x0))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        schedules.from_betas([0.1, 1.2])
    with pytest.raises(ValueError, match="decreasing"):
        schedules.from_alpha_bars([1.0, 0.5, 0.7])
