"""dlib.objectives (and dlib.exact's posterior means): each formula against an independent computation.

Equations checked: eq-x0-from-eps, eq-score-from-eps, eq-v, eq-loss-eps, eq-loss-x0, eq-loss-score, eq-loss-v,
eq-loss-joint, eq-elbo-weights, eq-min-snr, eq-tweedie.
"""
import math

import pytest
import torch

from dlib import gaussian_mixture as gm, schedules
from dlib import objectives as ob

TARGETS4 = ("eps", "x0", "score", "v")




def _batch(T=100, B=16, shape=(3, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    s = schedules.cosine(T)
    x0 = torch.rand(B, *shape, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(B, *shape, generator=g, dtype=torch.float64)
    t = torch.randint(1, T + 1, (B,), generator=g)
    a_bar = s.alpha_bars[t].reshape(B, 1, 1, 1)
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    return s, x0, eps, t, x_t, a_bar


# ----------------------------------------------------------------------------- conversions
def test_round_trips():
    s, x0, eps, t, x_t, _ = _batch()
    torch.testing.assert_close(ob.x0_from_eps(s, x_t, t, eps), x0)
    torch.testing.assert_close(ob.eps_from_x0(s, x_t, t, x0), eps)
    torch.testing.assert_close(ob.eps_from_x0(s, x_t, t, ob.x0_from_eps(s, x_t, t, eps)), eps)
    torch.testing.assert_close(ob.eps_from_score(s, t, ob.score_from_eps(s, t, eps)), eps)
    v = ob.v_from_x0_eps(s, x0, t, eps)
    torch.testing.assert_close(ob.x0_from_v(s, x_t, t, v), x0)
    torch.testing.assert_close(ob.eps_from_v(s, x_t, t, v), eps)
    torch.testing.assert_close(ob.score_from_x0(s, x_t, t, x0), ob.score_from_eps(s, t, eps))


def test_score_is_gradient_of_gaussian_log_density():
    s, x0, eps, t, x_t, a_bar = _batch()
    x = x_t.clone().requires_grad_(True)
    log_q = torch.distributions.Normal(a_bar.sqrt() * x0, (1 - a_bar).sqrt()).log_prob(x).sum()
    (grad,) = torch.autograd.grad(log_q, x)
    torch.testing.assert_close(ob.score_from_eps(s, t, eps), grad)


def test_v_is_velocity_on_the_quarter_circle():
    # x(eta) = cos(eta) x0 + sin(eta) eps; dx/deta at cos^2(eta) = alpha_bar_t is v.
    s, x0, eps, t, _, a_bar = _batch()
    eta = torch.arccos(a_bar.sqrt()).expand_as(x0).clone().requires_grad_(True)  # one angle per element
    (dx,) = torch.autograd.grad((torch.cos(eta) * x0 + torch.sin(eta) * eps).sum(), eta)
    torch.testing.assert_close(ob.training_target(s, x0, eps, t, "v"), dx)


def test_tweedie_posterior_mean_matches_grid_bayes_1d():
    mix = gm.GaussianMixture([0.2, 0.5, 0.3], [[-1.5], [0.3], [2.0]], [0.04, 0.25, 0.09])
    grid = torch.linspace(-6, 6, 40001, dtype=torch.float64)
    prior = mix.log_prob(grid[:, None])
    for a_bar in (0.95, 0.5, 0.05):
        a, sd = math.sqrt(a_bar), math.sqrt(1 - a_bar)
        x_t = torch.tensor([-2.0, -0.4, 0.1, 1.2, 2.7], dtype=torch.float64)
        log_post = prior[None, :] - 0.5 * (x_t[:, None] - a * grid[None, :]) ** 2 / sd**2
        w = torch.softmax(log_post, dim=1)
        x0_mean = (w * grid).sum(1)
        d = mix.denoise(x_t[:, None], a, sd)
        torch.testing.assert_close(d.x0_hat[:, 0], x0_mean, atol=1e-7, rtol=0)
        torch.testing.assert_close(d.eps_hat[:, 0], (x_t - a * x0_mean) / sd, atol=1e-6, rtol=0)
        # the score of the noised mixture, by autograd of its log density
        x = x_t[:, None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(mix.noised(a, sd).log_prob(x).sum(), x)
        torch.testing.assert_close(d.score, grad)


def test_mixture_moments_and_score():
    mix = gm.GaussianMixture([1, 3], [[-1.0, 0.5], [1.0, -0.5]], [[0.05, 0.2], [0.1, 0.1]])
    x = mix.sample(200_000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(x.mean(0), mix.mean(), atol=5 * 1.0 / math.sqrt(2e5), rtol=0)
    torch.testing.assert_close(torch.cov(x.T), mix.covariance(), atol=0.01, rtol=0)
    y = x[:50].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(y).sum(), y)
    torch.testing.assert_close(mix.score(x[:50]), grad)


# ----------------------------------------------------------------------------- the adapter
@pytest.mark.parametrize("target", ob.TARGETS)
def test_predictions_recover_x0_and_eps(target):
    s, x0, eps, t, x_t, a_bar = _batch()
    a, sd = a_bar.sqrt(), (1 - a_bar).sqrt()
    output = {"eps": eps, "x0": x0, "score": -(x_t - a * x0) / (1 - a_bar), "v": a * eps - sd * x0,
              "x0_eps": torch.cat([x0, eps], 1)}[target]
    x0_hat, eps_hat = ob.predictions(s, x_t, t, output, target)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)


def test_joint_output_as_tuple_and_channel_halves():
    s, x0, eps, t, x_t, _ = _batch()
    a = ob.predictions(s, x_t, t, (x0, eps), "x0_eps")
    b = ob.predictions(s, x_t, t, torch.cat([x0, eps], 1), "x0_eps")
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    torch.testing.assert_close(b[0], x0)


# ----------------------------------------------------------------------------- losses
def _outputs_from_x0_hat(x0_hat, x_t, a_bar):
    """Each target's output for the prediction x0_hat, from x_t = a x0 + s eps (written out here)."""
    a, sd = a_bar.sqrt(), (1 - a_bar).sqrt()
    eps_hat = (x_t - a * x0_hat) / sd
    return {"x0": x0_hat, "eps": eps_hat, "score": -eps_hat / sd, "v": a * eps_hat - sd * x0_hat}


def _posterior_mean_bayes(s, x_t, x0, t):
    """Mean of q(x_{t-1} | x_t, x0) from precision-weighted Bayes: q(x_t|x_{t-1}) q(x_{t-1}|x0)."""
    alpha, beta = s.alphas[t].reshape(-1, 1, 1, 1), s.betas[t].reshape(-1, 1, 1, 1)
    a_prev = s.alpha_bars[t - 1].reshape(-1, 1, 1, 1)
    precision = alpha / beta + 1 / (1 - a_prev)
    return (alpha.sqrt() * x_t / beta + a_prev.sqrt() * x0 / (1 - a_prev)) / precision, 1 / precision


def _kl_diag(mu_q, var_q, mu_p, var_p):
    """KL(N(mu_q, var_q I) || N(mu_p, var_p I)) summed over the dimensions of each example."""
    var_q, var_p = var_q.expand_as(mu_q), var_p.expand_as(mu_q)
    kl = 0.5 * (var_q / var_p + (mu_p - mu_q) ** 2 / var_p - 1 + torch.log(var_p / var_q))
    return kl.flatten(1).sum(1)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_elbo_weighted_losses_equal_the_kl_term(variance):
    s, x0, eps, t, x_t, a_bar = _batch(B=32, seed=3)
    t = t.clamp(min=2)
    a_bar = s.alpha_bars[t].reshape(-1, 1, 1, 1)
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(4), dtype=x0.dtype)
    mu_q, var_q = _posterior_mean_bayes(s, x_t, x0, t)
    mu_p, _ = _posterior_mean_bayes(s, x_t, x0_hat, t)
    var_p = var_q if variance == "beta_tilde" else s.betas[t].reshape(-1, 1, 1, 1)
    kl = _kl_diag(mu_q, var_q, mu_p, var_p) - _kl_diag(mu_q, var_q, mu_q, var_p)  # drop the variance part
    D = x0[0].numel()
    outputs = _outputs_from_x0_hat(x0_hat, x_t, a_bar)
    for target in TARGETS4:
        per = ob.loss_per_example(s, outputs[target], x0, eps, t, target, "elbo", variance=variance)
        torch.testing.assert_close(per * D, kl, rtol=1e-8, atol=1e-10, msg=f"target {target}")


def test_elbo_weight_at_t1_is_the_gaussian_decoder():
    s, x0, eps, _, _, _ = _batch(B=8, seed=5)
    t = torch.ones(8, dtype=torch.long)
    a_bar = s.alpha_bars[1]
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    x0_hat = x0 + 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(6), dtype=x0.dtype)
    decoder = torch.distributions.Normal(x0_hat, s.betas[1].sqrt())
    nll = -(decoder.log_prob(x0) - torch.distributions.Normal(x0, s.betas[1].sqrt()).log_prob(x0)).flatten(1).sum(1)
    outputs = _outputs_from_x0_hat(x0_hat, x_t, a_bar.reshape(1, 1, 1, 1))
    for target in TARGETS4:
        per = ob.loss_per_example(s, outputs[target], x0, eps, t, target, "elbo")
        torch.testing.assert_close(per * x0[0].numel(), nll, msg=f"target {target}")


@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_losses_agree_across_targets(gamma):
    s, x0, eps, t, x_t, a_bar = _batch(B=64, seed=7)
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(8), dtype=x0.dtype)
    snr = (a_bar / (1 - a_bar)).flatten()
    expected = torch.minimum(snr, torch.full_like(snr, gamma)) * (x0_hat - x0).pow(2).flatten(1).mean(1)
    outputs = _outputs_from_x0_hat(x0_hat, x_t, a_bar)
    assert (snr > gamma).any() and (snr < gamma).any()
    for target in TARGETS4:
        per = ob.loss_per_example(s, outputs[target], x0, eps, t, target, "min_snr", gamma=gamma)
        torch.testing.assert_close(per, expected, msg=f"target {target}")


def test_simple_losses_and_scalar_mean():
    s, x0, eps, t, x_t, a_bar = _batch()
    noise = 0.3 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(9), dtype=x0.dtype)
    per = ob.loss_per_example(s, eps + noise, x0, eps, t, "eps")
    torch.testing.assert_close(per, noise.pow(2).mean((1, 2, 3)))
    torch.testing.assert_close(ob.loss(s, eps + noise, x0, eps, t, "eps"), per.mean())
    assert ob.loss(s, ob.training_target(s, x0, eps, t, "score"), x0, eps, t, "score").item() == 0.0


def test_joint_loss_with_gradient_term():
    s, x0, eps, t, x_t, a_bar = _batch(seed=10)
    g = torch.Generator().manual_seed(11)
    x0_hat = x0 + 0.2 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    eps_hat = eps + 0.2 * torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    eta = torch.atan(((1 - a_bar) / a_bar).sqrt())
    xdot = -torch.sin(eta) * x0 + torch.cos(eta) * eps
    xdot_hat = -torch.sin(eta) * x0_hat + torch.cos(eta) * eps_hat
    mse = lambda u, w: (u - w).pow(2).mean((1, 2, 3))  # noqa: E731
    for gamma in (0.0, 0.5):
        want = mse(x0_hat, x0) + mse(eps_hat, eps) + gamma * mse(xdot_hat, xdot)
        got_tuple = ob.loss_per_example(s, (x0_hat, eps_hat), x0, eps, t, "x0_eps", joint_gamma=gamma)
        got_cat = ob.loss_per_example(s, torch.cat([x0_hat, eps_hat], 1), x0, eps, t, "x0_eps", joint_gamma=gamma)
        torch.testing.assert_close(got_tuple, want)
        torch.testing.assert_close(got_cat, want)


# ----------------------------------------------------------------------------- errors
def test_value_errors():
    s, x0, eps, t, x_t, _ = _batch(B=4)
    with pytest.raises(ValueError, match="1..100"):
        ob.predictions(s, x_t, torch.tensor([0, 1, 2, 3]), eps, "eps")
    with pytest.raises(ValueError, match="1..100"):
        ob.loss(s, eps, x0, eps, torch.tensor([1, 2, 3, 101]))
    with pytest.raises(ValueError, match="shape"):
        ob.predictions(s, x_t, torch.tensor([1, 2, 3]), eps, "eps")
    with pytest.raises(ValueError, match="shape"):
        ob.loss(s, eps, x0, eps, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="model output"):
        ob.predictions(s, x_t, t, eps[:, :2], "x0")
    with pytest.raises(ValueError, match="x0_eps"):
        ob.predictions(s, x_t, t, eps, "x0_eps")
    with pytest.raises(ValueError, match="model output"):
        ob.loss(s, eps[:, :1], x0, eps, t, "v")
    with pytest.raises(ValueError, match="unknown target"):
        ob.predictions(s, x_t, t, eps, "noise")
    with pytest.raises(ValueError, match="unknown target"):
        ob.training_target(s, x0, eps, t, "velocity")
    with pytest.raises(ValueError, match="unknown weighting"):
        ob.loss(s, eps, x0, eps, t, weighting="snr")
    with pytest.raises(ValueError, match="simple"):
        ob.loss(s, (x0, eps), x0, eps, t, "x0_eps", weighting="elbo")
    with pytest.raises(ValueError, match="integers"):
        ob.predictions(s, x_t, t.double(), eps, "eps")
