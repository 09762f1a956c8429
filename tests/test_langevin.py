"""dlib.langevin against independent computations: the exact stationary law of the discretised
Langevin chain for a Gaussian (a discrete Lyapunov equation), and the mode weights of a mixture
whose score is obtained by autograd of its log-density.

Equations checked: eq-langevin.
"""
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from dlib.langevin import annealed_langevin, langevin




MU = torch.tensor([0.5, -1.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
PRECISION = torch.linalg.inv(SIGMA)


def gaussian_score(x):
    return -(x - MU) @ PRECISION  # the precision matrix is symmetric


def _check_moments(x, mean, cov, extra=0.0):
    """Sample mean and covariance of x (n, d) within 5 standard errors (+ ``extra``) of (mean, cov)."""
    n = x.shape[0]
    m = x.mean(0)
    se_mean = torch.sqrt(torch.diag(cov) / n)
    assert ((m - mean).abs() < 5 * se_mean).all(), (m, mean)
    c = torch.cov(x.T)
    se_cov = torch.sqrt((torch.outer(torch.diag(cov), torch.diag(cov)) + cov**2) / n)
    assert ((c - cov).abs() < 5 * se_cov + extra).all(), (c, cov)


def test_langevin_matches_the_exact_stationary_law_of_the_discrete_chain():
    # With a Gaussian target the chain is linear: x' = A x + b + sqrt(delta) z, A = I - delta/2 SIGMA^-1.
    # Its stationary covariance V solves V = A V A^T + delta I (not SIGMA: the step adds an O(delta) bias),
    # and its stationary mean is MU. scipy solves the Lyapunov equation independently of dlib.
    delta, n = 0.3, 20_000
    A = np.eye(2) - 0.5 * delta * np.linalg.inv(SIGMA.numpy())
    V = torch.tensor(linalg.solve_discrete_lyapunov(A, delta * np.eye(2)))
    assert not torch.allclose(V, SIGMA, atol=0.05), "the test should see the discretisation bias"
    g = torch.Generator().manual_seed(0)
    x = langevin(gaussian_score, torch.zeros(n, 2, dtype=torch.float64) + 4.0, delta, 150, generator=g)
    _check_moments(x, MU, V)


def test_langevin_with_a_small_step_samples_the_target():
    delta, n = 0.01, 10_000
    g = torch.Generator().manual_seed(1)
    x0 = 3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = langevin(gaussian_score, x0, delta, 1_500, generator=g)
    # stationary covariance differs from SIGMA by O(delta): allow that on top of the MC error
    A = np.eye(2) - 0.5 * delta * np.linalg.inv(SIGMA.numpy())
    bias = np.abs(linalg.solve_discrete_lyapunov(A, delta * np.eye(2)) - SIGMA.numpy()).max()
    assert bias < 0.01
    _check_moments(x, MU, SIGMA, extra=bias)


def test_langevin_one_dimensional_and_reproducible():
    s2, delta, n = 0.25, 0.02, 20_000
    g = torch.Generator().manual_seed(2)
    x = langevin(lambda x: -(x - 1.0) / s2, torch.zeros(n, 1), delta, 600, generator=g)
    v = s2 / (1 - delta / (4 * s2))  # stationary variance of the discrete chain, solved by hand
    assert abs(x.mean().item() - 1.0) < 5 * math.sqrt(v / n)
    assert abs(x.var().item() - v) < 5 * v * math.sqrt(2 / n)
    a = langevin(lambda x: -x, torch.zeros(5, 3), 0.1, 10, generator=torch.Generator().manual_seed(7))
    b = langevin(lambda x: -x, torch.zeros(5, 3), 0.1, 10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert a.dtype == torch.float32 and a.shape == (5, 3)


# A two-mode mixture in 2-D with unequal weights, far-apart modes.
WEIGHTS = torch.tensor([0.75, 0.25], dtype=torch.float64)
MEANS = torch.tensor([[-3.0, 0.0], [3.0, 1.0]], dtype=torch.float64)
STD = 0.4


def mixture_score(x, sigma):
    """Score of the mixture blurred by N(0, sigma^2 I), by autograd of its log-density."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        var = STD**2 + sigma[:, None] ** 2                                        # (B, 1)
        sq = ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)                         # (B, K)
        log_p = torch.logsumexp(WEIGHTS.log() - sq / (2 * var) - torch.log(2 * math.pi * var), dim=1)
        (grad,) = torch.autograd.grad(log_p.sum(), x)
    return grad


@pytest.mark.slow
def test_annealed_langevin_recovers_both_mode_weights():
    n = 4_000
    g = torch.Generator().manual_seed(3)
    sigmas = torch.exp(torch.linspace(math.log(8.0), math.log(0.05), 20))
    x_init = 8.0 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    x = annealed_langevin(mixture_score, sigmas, x_init, 100, eps=1e-3, generator=g, progress=False)
    left = x[:, 0] < 0
    p = left.double().mean().item()
    assert abs(p - 0.75) < 5 * math.sqrt(0.75 * 0.25 / n), p
    for k, side in enumerate((left, ~left)):
        assert torch.allclose(x[side].mean(0), MEANS[k], atol=0.05)
        assert torch.allclose(x[side].std(0), torch.full((2,), STD, dtype=torch.float64), rtol=0.1)


def test_plain_langevin_gets_the_weights_wrong():
    # The failure mode annealing fixes: small steps cannot cross between far-apart modes, so the
    # weights reflect where the chains started (half on each side), not 0.75 / 0.25.
    n = 4_000
    g = torch.Generator().manual_seed(4)
    x_init = torch.rand(n, 2, generator=g, dtype=torch.float64) * 16 - 8
    score = lambda x: mixture_score(x, torch.full((x.shape[0],), 1e-3, dtype=x.dtype))
    x = langevin(score, x_init, 0.01, 500, generator=g)
    p = (x[:, 0] < 0).double().mean().item()
    assert abs(p - 0.5) < 0.05, p


def test_bad_input():
    x = torch.zeros(4, 2)
    score = lambda x: -x
    model = lambda x, sigma: -x / sigma[:, None] ** 2
    with pytest.raises(ValueError, match="step_size"):
        langevin(score, x, 0.0, 10)
    with pytest.raises(ValueError, match="step_size"):
        langevin(score, x, float("nan"), 10)
    with pytest.raises(ValueError, match="n_steps"):
        langevin(score, x, 0.1, -1)
    with pytest.raises(ValueError, match="n_steps"):
        langevin(score, x, 0.1, 2.5)
    with pytest.raises(ValueError, match="x_init"):
        langevin(score, torch.zeros(4, 2, dtype=torch.long), 0.1, 3)
    with pytest.raises(ValueError, match="shape"):
        langevin(lambda x: x[:, :1], x, 0.1, 3)
    with pytest.raises(ValueError, match="decreasing"):
        annealed_langevin(model, [0.1, 1.0], x, 3, progress=False)
    with pytest.raises(ValueError, match="positive"):
        annealed_langevin(model, [1.0, -0.1], x, 3, progress=False)
    with pytest.raises(ValueError, match="1-D"):
        annealed_langevin(model, [[1.0, 0.1]], x, 3, progress=False)
    with pytest.raises(ValueError, match="steps_per_level"):
        annealed_langevin(model, [1.0, 0.1], x, 0, progress=False)
    with pytest.raises(ValueError, match="eps"):
        annealed_langevin(model, [1.0, 0.1], x, 3, eps=0, progress=False)
    with pytest.raises(ValueError, match="shape"):
        annealed_langevin(lambda x, s: x.sum(1), [1.0, 0.1], x, 3, progress=False)
    assert torch.equal(langevin(score, x, 0.1, 0), x)
