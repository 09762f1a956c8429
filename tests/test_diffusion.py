"""dlib.diffusion against independent computations (chapters "forward", "posterior", "elbo").

q(x_t | x_0) against iterating the one-step kernel; the posterior against Gaussian conditioning and
Bayes' rule on a grid; the Gaussian KL against Monte Carlo; the discretized likelihood against
scipy's normal CDF; the bound against Monte Carlo of log q - log p on whole chains and against an
exact log-likelihood for Gaussian data. Expectations over x_t inside the bound are taken by
Gauss-Hermite quadrature, exact here because every integrand is a polynomial of degree 2.

Equations checked: eq-q-step, eq-q-xt-x0, eq-posterior, eq-posterior-mean, eq-beta-tilde, eq-kl-gauss,
eq-prior-term, eq-kl-term, eq-decoder-term, eq-elbo-posterior, eq-bits-per-dim, eq-stratified-bound.
"""
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from dlib import schedules
from dlib.diffusion import (discretized_gaussian_log_likelihood, nll_bits_per_dim, normal_kl,
                            prior_kl, q_posterior, q_sample, vlb_term)

N_MC = 200_000
F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def gauss_hermite(n=8):
    """Nodes z and weights w with sum_i w_i f(z_i) = E f(Z), Z ~ N(0, 1), exact for polynomials of degree < 2n."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return torch.as_tensor(z), torch.as_tensor(w / math.sqrt(2 * math.pi))


def log_normal(x, mean, var):
    return -0.5 * (math.log(2 * math.pi) + np.log(var) + (x - mean) ** 2 / var)


def eight_bit(shape, g):
    return torch.randint(0, 256, shape, generator=g).to(F64) / 127.5 - 1


# ---------------------------------------------------------------------------------------------
# chapter "forward"


def test_q_sample_matches_iterated_chain():
    s = schedules.cosine(50)
    x0 = 0.7
    g = gen(1)
    x = torch.full((N_MC,), x0, dtype=F64)
    checked = 0
    for t in range(1, s.T + 1):           # x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) z  (eq-q-step)
        x = s.alphas[t].sqrt() * x + s.betas[t].sqrt() * torch.randn(N_MC, generator=g, dtype=F64)
        if t in (1, 7, 25, 50):
            zero, one = torch.zeros(1, 1, dtype=F64), torch.ones(1, 1, dtype=F64)
            mean = q_sample(s, torch.full((1, 1), x0, dtype=F64), t, zero).item()
            var = (q_sample(s, torch.full((1, 1), x0, dtype=F64), t, one).item() - mean) ** 2
            se_mean, se_var = math.sqrt(var / N_MC), var * math.sqrt(2 / (N_MC - 1))
            assert abs(x.mean().item() - mean) < 5 * se_mean, t
            assert abs(x.var().item() - var) < 5 * se_var, t
            checked += 1
    assert checked == 4
    # t = 0 returns the data
    x0_batch = torch.randn(3, 2, generator=g, dtype=F64)
    assert torch.equal(q_sample(s, x0_batch, 0, torch.randn(3, 2, generator=g, dtype=F64)), x0_batch)


# ---------------------------------------------------------------------------------------------
# chapter "posterior"


def test_posterior_matches_gaussian_conditioning():
    s = schedules.linear(40, beta_start=1e-3, beta_end=0.1)
    a = np.cumprod(1 - s.betas.numpy())
    g = gen(2)
    t = torch.tensor([1, 2, 3, 17, 39, 40])
    x0 = torch.randn(len(t), 3, generator=g, dtype=F64)
    x_t = torch.randn(len(t), 3, generator=g, dtype=F64) * 2
    mean, var = q_posterior(s, x0, x_t, t)
    assert mean.shape == (6, 3) and var.shape == (6, 1)
    for i, ti in enumerate(t.tolist()):
        # joint of (x_{t-1}, x_t) given x_0 from the forward process
        mu1, mu2 = math.sqrt(a[ti - 1]) * x0[i].numpy(), math.sqrt(a[ti]) * x0[i].numpy()
        s11, s22 = 1 - a[ti - 1], 1 - a[ti]
        s12 = math.sqrt(1 - s.betas[ti].item()) * s11      # Cov(x_{t-1}, sqrt(alpha_t) x_{t-1} + noise)
        expected_mean = mu1 + s12 / s22 * (x_t[i].numpy() - mu2)
        expected_var = s11 - s12 ** 2 / s22
        assert np.allclose(mean[i].numpy(), expected_mean, rtol=1e-10, atol=1e-12), ti
        assert var[i, 0].item() == pytest.approx(expected_var, rel=1e-9, abs=1e-15), ti


@pytest.mark.parametrize("t", [2, 10, 49])
def test_posterior_matches_bayes_on_grid(t):
    s = schedules.cosine(50)
    a_prev, alpha = s.alpha_bars[t - 1].item(), s.alphas[t].item()
    x0_value, x_t_value = -0.4, 0.9
    # the posterior lies between the prior's mean and x_t / sqrt(alpha_t); cover both with 12 sd margins
    centres = (math.sqrt(a_prev) * x0_value, x_t_value / math.sqrt(alpha))
    margin = 12 * max(math.sqrt(1 - a_prev), math.sqrt((1 - alpha) / alpha))
    grid = np.linspace(min(centres) - margin, max(centres) + margin, 400_001)
    log_w = (log_normal(x_t_value, math.sqrt(alpha) * grid, 1 - alpha)         # q(x_t | x_{t-1})
             + log_normal(grid, math.sqrt(a_prev) * x0_value, 1 - a_prev))   # q(x_{t-1} | x_0)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    grid_mean = (w * grid).sum()
    grid_var = (w * (grid - grid_mean) ** 2).sum()
    mean, var = q_posterior(s, torch.tensor([[x0_value]], dtype=F64), torch.tensor([[x_t_value]], dtype=F64), t)
    assert mean.item() == pytest.approx(grid_mean, abs=1e-7)
    assert var.item() == pytest.approx(grid_var, rel=1e-5)


def test_posterior_coefficients():
    s = schedules.linear(20)
    coef_x0, coef_xt = s.coef_x0, s.coef_xt
    assert coef_x0.shape == coef_xt.shape == (21,) and coef_x0.dtype == F64
    assert math.isnan(coef_x0[0]) and math.isnan(coef_xt[0])
    assert coef_x0[1].item() == pytest.approx(1.0) and coef_xt[1].item() == pytest.approx(0.0, abs=1e-15)
    # the coefficients read off q_posterior with unit inputs
    t = torch.arange(1, 21)
    ones, zeros = torch.ones(20, 1, dtype=F64), torch.zeros(20, 1, dtype=F64)
    assert torch.allclose(q_posterior(s, ones, zeros, t)[0][:, 0], coef_x0[1:])
    assert torch.allclose(q_posterior(s, zeros, ones, t)[0][:, 0], coef_xt[1:])


def test_q_posterior_keeps_dtype():
    s = schedules.linear(10)
    x = torch.zeros(2, 1, 3, 3)
    mean, var = q_posterior(s, x, x, torch.tensor([2, 9]))
    assert mean.dtype == var.dtype == torch.float32 and var.shape == (2, 1, 1, 1)


# ---------------------------------------------------------------------------------------------
# chapter "elbo": the Gaussian KL and the decoder


@pytest.mark.parametrize("m1,v1,m2,v2", [(0.0, 1.0, 1.0, 2.0), (0.5, 0.1, -0.3, 0.05), (2.0, 3.0, 2.0, 1.0)])
def test_normal_kl_matches_monte_carlo(m1, v1, m2, v2):
    x = m1 + math.sqrt(v1) * torch.randn(N_MC, generator=gen(3), dtype=F64).numpy()
    log_ratio = stats.norm.logpdf(x, m1, math.sqrt(v1)) - stats.norm.logpdf(x, m2, math.sqrt(v2))
    se = log_ratio.std() / math.sqrt(N_MC)
    kl = normal_kl(m1, v1, m2, v2).item()
    assert abs(kl - log_ratio.mean()) < 5 * se
    assert kl > 0


def test_normal_kl_zero_broadcast_and_errors():
    m = torch.randn(4, 3, generator=gen(4), dtype=F64)
    v = torch.rand(4, 3, generator=gen(5), dtype=F64) + 0.1
    assert torch.equal(normal_kl(m, v, m, v), torch.zeros(4, 3, dtype=F64))
    out = normal_kl(m, v, 0.0, 1.0)
    assert out.shape == (4, 3) and out.dtype == F64 and (out > 0).all()
    assert normal_kl(0.0, 1.0, 0.0, 1.0).dtype == torch.get_default_dtype()
    for bad in [(0.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, -1.0), (m, -v, m, v)]:
        with pytest.raises(ValueError, match="variances"):
            normal_kl(*bad)


LEVELS = torch.arange(256, dtype=F64) / 127.5 - 1


@pytest.mark.parametrize("mean,log_scale", [(0.0, math.log(0.3)), (0.93, math.log(0.004)), (-1.4, math.log(2.0)),
                                            (0.5, math.log(1e-4)), (0.2, math.log(30.0))])
def test_discretized_likelihood_sums_to_one_and_matches_scipy(mean, log_scale):
    log_p = discretized_gaussian_log_likelihood(LEVELS, torch.tensor(mean, dtype=F64), log_scale)
    assert torch.isfinite(log_p).all()
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    x, sd, h = LEVELS.numpy(), math.exp(log_scale), 1 / 255
    expected = stats.norm.cdf(x + h, mean, sd) - stats.norm.cdf(x - h, mean, sd)
    expected[0] = stats.norm.cdf(-1 + h, mean, sd)
    expected[-1] = stats.norm.sf(1 - h, mean, sd)
    assert np.allclose(log_p.exp().numpy(), expected, rtol=1e-8, atol=1e-14)


def test_discretized_likelihood_far_tails_stable():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    mean, sd = -0.9, 0.01
    x = torch.tensor([-1.0, 0.2, 0.6, 1.0, -0.2], dtype=F64)
    log_p = discretized_gaussian_log_likelihood(x, mean, math.log(sd))
    assert torch.isfinite(log_p).all()
    h, mu, sigma = mpmath.mpf(1) / 255, mpmath.mpf(mean), mpmath.mpf(sd)

    def upper_tail(v):          # P(X > v), exact in mpmath's unbounded exponent range
        return mpmath.ncdf(-(v - mu) / sigma)

    def interior(v):
        return mpmath.log(upper_tail(mpmath.mpf(v) - h) - upper_tail(mpmath.mpf(v) + h))

    # x = -1 and x = 1 own the open outer bins
    expected = [mpmath.log(1 - upper_tail(-1 + h)), interior(0.2), interior(0.6), mpmath.log(upper_tail(1 - h)),
                interior(-0.2)]
    assert np.allclose(log_p.numpy(), [float(e) for e in expected], rtol=1e-9)
    assert log_p[3] < log_p[2] < log_p[1] < log_p[4] < 0
    # float32 inputs give float32 outputs with the same values
    log_p32 = discretized_gaussian_log_likelihood(x.float(), mean, math.log(sd))
    assert log_p32.dtype == torch.float32 and torch.allclose(log_p32.double(), log_p, rtol=1e-6)


def test_discretized_likelihood_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        discretized_gaussian_log_likelihood(torch.tensor([0.0, 1.2]), 0.0, 0.0)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        discretized_gaussian_log_likelihood(torch.tensor([-1.01]), 0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# chapter "elbo": the terms of the bound


def test_prior_kl_matches_quadrature():
    s = schedules.linear(30, beta_start=1e-3, beta_end=0.2)
    a = s.alpha_bars[-1].item()
    x0 = torch.tensor([[0.5, -1.0, 0.0], [1.0, 1.0, -0.25]], dtype=F64)
    got = prior_kl(s, x0)
    assert got.shape == (2,)
    for i in range(2):
        total = 0.0
        for value in x0[i].tolist():
            q = stats.norm(math.sqrt(a) * value, math.sqrt(1 - a))
            total += integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z)), -12, 12,
                                    epsabs=1e-13, epsrel=1e-11)[0]
        assert got[i].item() == pytest.approx(total, rel=1e-7, abs=1e-12)


def expected_term(s, x0, t, model, decoder, nodes=8):
    """E_{x_t ~ q(x_t | x_0)} vlb_term by Gauss-Hermite quadrature; x0 (B, 1); model(x_t, t) -> (mean, var)."""
    z, w = gauss_hermite(nodes)
    a = s.alpha_bars[t].item()
    B = x0.shape[0]
    x_t = math.sqrt(a) * x0[:, None, :] + math.sqrt(1 - a) * z[None, :, None]      # (B, n, 1)
    x_t = x_t.reshape(B * nodes, 1)
    x0_rep = x0.repeat_interleave(nodes, dim=0)
    mean, var = model(x_t, t)
    term = vlb_term(s, x0_rep, x_t, t, mean, var, decoder=decoder).reshape(B, nodes)
    return (term * w).sum(1)


def test_elbo_decomposition_matches_monte_carlo_of_whole_chains():
    s = schedules.from_betas([0.05, 0.1, 0.2, 0.3, 0.4])
    T = s.T
    a_coef = [None, 0.9, 0.8, 1.1, 0.6, 0.7]          # p(x_{t-1} | x_t) = N(a_t x_t, s_t^2)
    s2 = [None, 0.03, 0.08, 0.2, 0.3, 0.5]
    x0_value = 0.3

    def model(x_t, t):
        return a_coef[t] * x_t, s2[t]

    x0 = torch.tensor([[x0_value]], dtype=F64)
    bound = prior_kl(s, x0)
    for t in range(1, T + 1):
        bound = bound + expected_term(s, x0, t, model, decoder="gaussian")

    # Monte Carlo of E_q[log q(x_{1:T} | x_0) - log p(x_{0:T})] on forward chains
    g = gen(6)
    x = [np.full(N_MC, x0_value)]
    for t in range(1, T + 1):
        alpha = 1 - s.betas[t].item()
        x.append(math.sqrt(alpha) * x[-1] + math.sqrt(1 - alpha) * torch.randn(N_MC, generator=g, dtype=F64).numpy())
    log_q = sum(log_normal(x[t], math.sqrt(1 - s.betas[t].item()) * x[t - 1], s.betas[t].item())
                for t in range(1, T + 1))
    log_p = log_normal(x[T], 0.0, 1.0) + sum(log_normal(x[t - 1], a_coef[t] * x[t], s2[t]) for t in range(1, T + 1))
    sample = log_q - log_p
    se = sample.std() / math.sqrt(N_MC)
    assert abs(bound.item() - sample.mean()) < 5 * se, (bound.item(), sample.mean(), se)
    assert se < 0.01


def exact_reverse(s, m, v):
    """q(x_{t-1} | x_t) = N(A_t x_t + c_t, V_t) for data x_0 ~ N(m, v), by conditioning the joint Gaussian."""
    a_bar = s.alpha_bars.numpy()
    mu = np.sqrt(a_bar) * m
    var = a_bar * v + 1 - a_bar
    A, c, V = {}, {}, {}
    for t in range(1, s.T + 1):
        cov = math.sqrt(1 - s.betas[t].item()) * var[t - 1]
        A[t] = cov / var[t]
        c[t] = mu[t - 1] - A[t] * mu[t]
        V[t] = var[t - 1] - cov ** 2 / var[t]
    return A, c, V, mu[-1], var[-1]


def test_bound_for_gaussian_data_is_exact_and_above_log_likelihood():
    s = schedules.linear(12, beta_start=0.02, beta_end=0.5)
    m, v = 0.3, 0.2
    A, c, V, mu_T, var_T = exact_reverse(s, m, v)

    def model(x_t, t):
        return A[t] * x_t + c[t], V[t]

    x0 = torch.tensor([[-1.3], [-0.2], [0.3], [0.8], [2.0]], dtype=F64)
    terms = sum(expected_term(s, x0, t, model, decoder="gaussian") for t in range(1, s.T + 1))
    exact_nll = -log_normal(x0[:, 0].numpy(), m, v)

    # 1) with the exact prior p(x_T) = q(x_T) the model is the data distribution: no gap at all
    a_T = s.alpha_bars[-1].item()
    exact_prior = normal_kl(math.sqrt(a_T) * x0[:, 0], 1 - a_T, mu_T, var_T)
    assert np.allclose((exact_prior + terms).numpy(), exact_nll, rtol=1e-9, atol=1e-9)

    # 2) with p(x_T) = N(0, 1): bound >= -log p_model(x_0), p_model pushed exactly through the reverse chain
    bound = prior_kl(s, x0) + terms
    mean_model, var_model = 0.0, 1.0
    for t in range(s.T, 0, -1):
        mean_model, var_model = A[t] * mean_model + c[t], A[t] ** 2 * var_model + V[t]
    model_nll = -log_normal(x0[:, 0].numpy(), mean_model, var_model)
    assert (bound.numpy() - model_nll > -1e-12).all()
    assert (bound.numpy() - model_nll).max() < 0.05

    # 3) averaged over the data, bound - entropy = KL(q(x_T) || N(0, 1)) >= 0, small
    z, w = gauss_hermite(8)
    x0_data = (m + math.sqrt(v) * z)[:, None]
    avg_bound = ((prior_kl(s, x0_data) + sum(expected_term(s, x0_data, t, model, "gaussian")
                                             for t in range(1, s.T + 1))) * w).sum().item()
    entropy = 0.5 * math.log(2 * math.pi * math.e * v)
    q_T = stats.norm(mu_T, math.sqrt(var_T))
    kl_T = integrate.quad(lambda y: q_T.pdf(y) * (q_T.logpdf(y) - stats.norm.logpdf(y)), -15, 15,
                          epsabs=1e-14, epsrel=1e-12)[0]
    assert avg_bound - entropy == pytest.approx(kl_T, rel=1e-6, abs=1e-12)
    assert 0 < avg_bound - entropy < 0.01


def test_vlb_term_mixed_t_and_discretized_decoder():
    s = schedules.linear(10)
    g = gen(7)
    x0 = eight_bit((3, 1, 2, 2), g)
    x_t = torch.randn(3, 1, 2, 2, generator=g, dtype=F64)
    model_mean = x0 + torch.randn(3, 1, 2, 2, generator=g, dtype=F64) * 0.1
    model_var = torch.tensor([0.01, 0.02, 0.03], dtype=F64).view(3, 1, 1, 1)
    t = torch.tensor([1, 5, 10])
    mixed = vlb_term(s, x0, x_t, t, model_mean, model_var)
    for i in range(3):
        alone = vlb_term(s, x0[i:i + 1], x_t[i:i + 1], int(t[i]), model_mean[i:i + 1], model_var[i:i + 1])
        assert mixed[i].item() == pytest.approx(alone.item(), rel=1e-12)
    # t = 1: minus the log of the discretized Gaussian's bin masses (scipy)
    sd = math.sqrt(0.01)
    x, mu = x0[0].flatten().numpy(), model_mean[0].flatten().numpy()
    upper = np.where(x > 1 - 1e-3, 1.0, stats.norm.cdf(x + 1 / 255, mu, sd))
    lower = np.where(x < -1 + 1e-3, 0.0, stats.norm.cdf(x - 1 / 255, mu, sd))
    assert mixed[0].item() == pytest.approx(-np.log(upper - lower).sum(), rel=1e-8)


# ---------------------------------------------------------------------------------------------
# chapter "elbo": the bound in bits per dimension


def oracle_model(s, x0_true):
    """p(x_{t-1} | x_t) = q(x_{t-1} | x_t, x0_hat = x0_true); decoder variance beta_1 at t = 1."""
    def model(x_t, t):
        mean, var = q_posterior(s, x0_true, x_t, t)
        return mean, torch.where(t.reshape(var.shape) == 1, s.betas[1].item(), var)
    return model


def test_nll_bits_per_dim_oracle_and_bad_model():
    s = schedules.cosine(20)
    x0 = eight_bit((4, 1, 4, 4), gen(8))
    out = nll_bits_per_dim(oracle_model(s, x0), s, x0, generator=gen(9), progress=False)
    assert set(out) == {"total", "prior", "terms", "decoder"}
    assert out["terms"].shape == (4, 20) and out["total"].shape == out["prior"].shape == (4,)
    assert torch.isfinite(out["terms"]).all() and (out["total"] > 0).all()
    assert torch.allclose(out["total"], out["prior"] + out["terms"].sum(1), rtol=1e-12)
    assert torch.equal(out["decoder"], out["terms"][:, 0])
    # the oracle's KL terms vanish; the decoder is N(x0, beta_1) discretized, computed here with scipy
    assert out["terms"][:, 1:].abs().max() < 1e-9
    x, sd, h = x0.flatten(1).numpy(), math.sqrt(s.betas[1].item()), 1 / 255
    mass = np.where(np.abs(x) > 1 - 1e-3, stats.norm.cdf(h / sd), stats.norm.cdf(h / sd) - stats.norm.cdf(-h / sd))
    assert np.allclose(out["decoder"].numpy(), -np.log2(mass).mean(1), rtol=1e-9)
    a_T = s.alpha_bars[-1].item()
    prior_bits = 0.5 * (a_T * x ** 2 + (1 - a_T) - 1 - math.log(1 - a_T)).sum(1) / (16 * math.log(2))
    assert np.allclose(out["prior"].numpy(), prior_bits, rtol=1e-6, atol=1e-15)

    def bad(x_t, t):
        return torch.zeros_like(x_t), 1.0
    worse = nll_bits_per_dim(bad, s, x0, generator=gen(9), batch_size=3, progress=False)
    assert worse["terms"].shape == (4, 20)
    assert (worse["total"] > out["total"] + 1).all()


def test_nll_bits_per_dim_stride_is_unbiased():
    """Stratified estimate (one t per block, counted block-length times) vs evaluating every t."""
    s = schedules.linear(40, beta_start=1e-3, beta_end=0.2)
    x0 = eight_bit((400, 1, 2, 2), gen(11))

    def shrunk(x_t, t):                       # a model that is wrong by a t-dependent amount
        mean, var = q_posterior(s, 0.8 * x0, x_t, t)
        return mean, torch.where(t.reshape(var.shape) == 1, s.betas[1].item(), var)
    full = nll_bits_per_dim(shrunk, s, x0, generator=gen(12), progress=False)
    est = nll_bits_per_dim(shrunk, s, x0, generator=gen(13), progress=False, stride=6)
    evaluated = ~torch.isnan(est["terms"])
    assert evaluated[:, 0].all() and (evaluated.sum(1) == 1 + math.ceil(39 / 6)).all()  # t = 1, one t per block
    blocks = evaluated[:, 1:37].reshape(-1, 6, 6).sum(2)          # t = 2..37 in blocks of 6 (then t = 38..40)
    assert (blocks == 1).all() and (evaluated[:, 37:].sum(1) == 1).all()
    assert len({tuple(row.nonzero().flatten().tolist()) for row in evaluated}) > 1   # draws differ per example
    n = x0.shape[0]
    se = math.sqrt(full["total"].var().item() / n + est["total"].var().item() / n)
    assert abs(est["total"].mean().item() - full["total"].mean().item()) < 5 * se
    # negative control: forgetting the block lengths (each term counted once) is far off
    uncounted = est["prior"] + est["terms"].nansum(1)
    assert abs(uncounted.mean().item() - full["total"].mean().item()) > 5 * se
    with pytest.raises(ValueError, match="stride"):
        nll_bits_per_dim(shrunk, s, x0, progress=False, stride=0)


def test_nll_bits_per_dim_batches_and_errors():
    s = schedules.linear(5)
    x0 = eight_bit((5, 2, 2), gen(10))     # any (B, ...) shape: here (B, H, W)
    model = oracle_model(s, x0)            # uses the whole batch: only valid with batch_size = B
    out = nll_bits_per_dim(lambda x_t, t: (torch.zeros_like(x_t), 0.5), s, x0, batch_size=2, progress=False)
    assert out["total"].shape == (5,)
    with pytest.raises(ValueError, match="model mean"):
        nll_bits_per_dim(lambda x_t, t: (x_t[:, :1], 1.0), s, x0, progress=False)
    with pytest.raises(ValueError, match="model_variance"):
        nll_bits_per_dim(lambda x_t, t: (x_t, 0.0), s, x0, progress=False)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        nll_bits_per_dim(model, s, x0 * 1.5, progress=False)


def test_vlb_term_and_posterior_errors():
    s = schedules.linear(10)
    x0 = torch.zeros(4, 1, 2, 2, dtype=F64)
    ok = dict(x_t=x0.clone(), t=torch.full((4,), 3), model_mean=x0.clone(), model_variance=0.1)
    assert vlb_term(s, x0, **ok).shape == (4,)
    for t in (0, 11, torch.tensor([1, 2, 3, 11])):
        with pytest.raises(ValueError, match="1..10"):
            vlb_term(s, x0, **{**ok, "t": t})
    with pytest.raises(ValueError, match="batch"):
        vlb_term(s, x0, **{**ok, "t": torch.tensor([1, 2, 3])})
    with pytest.raises(ValueError, match="x_t"):
        vlb_term(s, x0, **{**ok, "x_t": torch.zeros(4, 1, 2, 3, dtype=F64)})
    with pytest.raises(ValueError, match="model_mean"):
        vlb_term(s, x0, **{**ok, "model_mean": torch.zeros(4, 2, 2, dtype=F64)})
    for bad in (0.0, -1.0, torch.tensor([0.1, 0.1, 0.0, 0.1]).view(4, 1, 1, 1)):
        with pytest.raises(ValueError, match="model_variance"):
            vlb_term(s, x0, **{**ok, "model_variance": bad})
    with pytest.raises(ValueError, match="decoder"):
        vlb_term(s, x0, **ok, decoder="laplace")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        vlb_term(s, x0 + 2, **{**ok, "t": 1})
    with pytest.raises(ValueError, match="x_t"):
        q_posterior(s, x0, torch.zeros(4, 1, 2, 3), 2)
    with pytest.raises(ValueError, match="1..10"):
        q_posterior(s, x0, x0, 0)
    with pytest.raises(ValueError, match="shape"):
        q_posterior(s, x0, x0, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="eps"):
        q_sample(s, x0, 2, torch.zeros(4, 1, 2, 3))
