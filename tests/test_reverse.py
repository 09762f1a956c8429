"""dlib.reverse: a network's prediction as the Gaussian reverse step of DDPM (chapter "ddpm").

Equations checked: eq-ddpm-mean, eq-ddpm-variance, eq-posterior-mean.
"""
import math

import pytest
import torch

from dlib import gaussian_mixture as gm, objectives, schedules
from dlib.diffusion import nll_bits_per_dim, q_sample
from dlib.reverse import reverse_gaussian

F64 = torch.float64


def _setup(T=50, B=64, seed=0):
    s = schedules.linear(T, beta_start=1e-3, beta_end=0.2)
    g = torch.Generator().manual_seed(seed)
    mixture = gm.GaussianMixture(weights=[0.5, 0.5], means=[[-1.0, 0.5], [1.0, -0.5]], variances=0.05)
    x0 = mixture.sample(B, g)
    t = torch.randint(1, T + 1, (B,), generator=g)
    x_t = q_sample(s, x0, t, torch.randn(x0.shape, generator=g, dtype=F64))
    return s, mixture, x_t, t


@pytest.mark.parametrize("target", ["eps", "x0", "score", "v"])
def test_mean_is_algorithm_2_in_eps_form(target):
    """mean = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_t), whatever the target."""
    s, mixture, x_t, t = _setup()
    network = gm.exact_model(mixture, s, target)               # the Bayes-optimal output for `target`
    eps_hat = gm.exact_model(mixture, s, "eps")(x_t, t)        # the same ideal denoiser, as eps
    mean, var = reverse_gaussian(network, s, target=target)(x_t, t)
    beta, alpha, alpha_bar = (s.gather(v, t, x_t) for v in (s.betas, s.alphas, s.alpha_bars))
    algorithm_2 = (x_t - beta / (1 - alpha_bar).sqrt() * eps_hat) / alpha.sqrt()
    assert torch.allclose(mean, algorithm_2, rtol=1e-9, atol=1e-9)
    assert var.shape == (x_t.shape[0], 1)


def test_variances():
    s = schedules.cosine(30)
    tilde, beta = s.reverse_variances("beta_tilde"), s.reverse_variances("beta")
    assert math.isnan(tilde[0]) and math.isnan(beta[0])
    # beta_tilde_t from its definition, independently of Schedule.beta_tildes
    a = s.alpha_bars
    for t in range(2, 31):
        assert tilde[t].item() == pytest.approx((1 - a[t - 1].item()) / (1 - a[t].item()) * s.betas[t].item(), rel=1e-12)
    assert tilde[1] == beta[1] == s.betas[1]       # the decoder's variance: beta_1 in both
    assert torch.equal(beta[1:], s.betas[1:])
    assert (tilde[2:] < beta[2:]).all()            # beta_tilde_t < beta_t for t >= 2
    with pytest.raises(ValueError, match="variance"):
        s.reverse_variances("learned")


def test_bound_of_the_exact_model_beats_a_wrong_one():
    """Through nll_bits_per_dim: a perturbed x0_hat makes every KL term, hence the bound, larger."""
    s = schedules.linear(20, beta_start=1e-3, beta_end=0.3)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 256, (16, 1, 2, 2), generator=g).to(F64) / 127.5 - 1
    truth = lambda x_t, t: objectives.eps_from_x0(s, x_t, t, x0)        # noqa: E731  knows x0: KL terms vanish
    wrong = lambda x_t, t: objectives.eps_from_x0(s, x_t, t, 0.7 * x0)  # noqa: E731
    good = nll_bits_per_dim(reverse_gaussian(truth, s, "eps"), s, x0, generator=torch.Generator().manual_seed(4),
                            progress=False)
    bad = nll_bits_per_dim(reverse_gaussian(wrong, s, "eps"), s, x0, generator=torch.Generator().manual_seed(4),
                           progress=False)
    assert good["terms"][:, 1:].abs().max() < 1e-9
    assert (bad["terms"][:, 1:] > 1e-6).all()
    assert (bad["total"] > good["total"]).all()


def test_errors():
    s, mixture, x_t, t = _setup(B=4)
    p = reverse_gaussian(gm.exact_model(mixture, s, "eps"), s, target="eps")
    with pytest.raises(ValueError, match="timestep"):
        p(x_t, s.T + 1)
    with pytest.raises(ValueError, match="shape"):
        p(x_t, torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="target"):
        reverse_gaussian(lambda x, t: x, s)
    mean, _ = p(x_t, 7)                       # an int t is used for every example
    assert mean.shape == x_t.shape
