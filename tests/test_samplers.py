"""dlib.samplers: single steps against independent formulas, loops against known data laws (no network).

Equations checked: eq-ddpm-step, eq-ddpm-variance, eq-posterior-mean, eq-x0-from-eps, eq-eps-from-x0, eq-ddim-step, eq-ddim-sigma, eq-ddim-invert, eq-ddim-ode.
"""
import math

import numpy as np
import pytest
import torch

from dlib import gaussian_mixture as gm, objectives, schedules
from dlib import samplers as sp




GAUSS = gm.GaussianMixture([1.0], [[0.8, -0.4]], [[0.3, 0.05]])
GMM = gm.GaussianMixture([0.3, 0.7], [[-1.0, 0.6], [1.0, -0.4]], [[0.05, 0.1], [0.1, 0.03]])
ANGULAR = schedules.angular(1000)


def _case(T=50, B=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = schedules.linear(T, 1e-4, 0.2)
    x0 = torch.randn(B, 2, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(B, 2, 3, generator=g, dtype=torch.float64)
    t = torch.randint(1, T + 1, (B,), generator=g)
    a_bar = s.alpha_bars[t].reshape(B, 1, 1)
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    return s, x0, eps, t, x_t, g


def _bayes_posterior(s, x_t, x0, t):
    """q(x_{t-1} | x_t, x0) by completing the square in q(x_t | x_{t-1}) q(x_{t-1} | x0)."""
    shape = (-1,) + (1,) * (x_t.ndim - 1)
    alpha, beta = s.alphas[t].reshape(shape), s.betas[t].reshape(shape)
    a_prev = s.alpha_bars[t - 1].reshape(shape)
    precision = alpha / beta + 1 / (1 - a_prev)
    return (alpha.sqrt() * x_t / beta + a_prev.sqrt() * x0 / (1 - a_prev)) / precision, 1 / precision


# ----------------------------------------------------------------------------- timesteps
@pytest.mark.parametrize("spacing", sp.SPACINGS)
@pytest.mark.parametrize("T,steps", [(1000, 50), (100, 100), (10, 9), (7, 1), (1000, 999), (20, 2)])
def test_timesteps(T, steps, spacing):
    ts = sp.timesteps(T, steps, spacing)
    assert len(ts) == steps and ts[0] == T and ts[-1] == (1 if steps > 1 else T)
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_timesteps_spacings():
    assert sp.timesteps(5, 5) == [5, 4, 3, 2, 1]
    assert sp.timesteps(1000, 5) == [1000, 750, 500, 251, 1]
    gaps = -np.diff(sp.timesteps(1000, 20, "quadratic"))
    assert gaps[0] > 5 * gaps[-1]  # quadratic: long jumps at large t, short ones near the data


# ----------------------------------------------------------------------------- single steps
def test_ddpm_step_mean_is_the_posterior_mean():
    s, x0, eps, t, _, _ = _case()
    t[0] = 1
    a_bar = s.alpha_bars[t].reshape(-1, 1, 1)
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    eps_hat = eps + 0.1  # an imperfect prediction; x0_hat is the x0 it implies
    x0_hat = (x_t - (1 - a_bar).sqrt() * eps_hat) / a_bar.sqrt()
    mean, _ = _bayes_posterior(s, x_t, x0_hat, t)
    mean = torch.where((t == 1).reshape(-1, 1, 1), x0_hat, mean)  # at t = 1 the posterior is x0 itself
    torch.testing.assert_close(sp.ddpm_step(s, x_t, t, eps_hat, None), mean)
    torch.testing.assert_close(sp.ddpm_step(s, x_t, t, eps_hat, None, x0_hat=x0_hat), mean)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_step_noise_scale(variance):
    s, x0, eps, _, x_t, g = _case()
    t = torch.tensor([1, 2, 5, 50, 1, 3, 10, 49])
    z = torch.randn(x_t.shape, generator=g, dtype=x_t.dtype)
    diff = sp.ddpm_step(s, x_t, t, eps, z, variance) - sp.ddpm_step(s, x_t, t, eps, None, variance)
    _, beta_tilde = _bayes_posterior(s, x_t, x0, t)
    var = beta_tilde if variance == "beta_tilde" else s.betas[t].reshape(-1, 1, 1)
    want = var.sqrt() * z * (t > 1).reshape(-1, 1, 1)
    torch.testing.assert_close(diff, want)
    assert (diff[t == 1] == 0).all()


def test_ddim_eta1_one_step_is_ddpm():
    s, x0, eps, t, x_t, g = _case(seed=1)
    t = t.clamp(min=2)
    a_bar = s.alpha_bars[t].reshape(-1, 1, 1)
    x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
    z = torch.randn(x_t.shape, generator=g, dtype=x_t.dtype)
    with_noise = sp.ddim_step(s, x_t, t, t - 1, eps + 0.2, eta=1.0, noise=z)
    mean = sp.ddim_step(s, x_t, t, t - 1, eps + 0.2, eta=1.0, noise=None)
    x0_hat = (x_t - (1 - a_bar).sqrt() * (eps + 0.2)) / a_bar.sqrt()
    post_mean, beta_tilde = _bayes_posterior(s, x_t, x0_hat, t)
    torch.testing.assert_close(mean, post_mean)
    torch.testing.assert_close((with_noise - mean) / z, beta_tilde.sqrt().expand_as(z))


def test_ddim_eta0_is_deterministic_and_lands_on_x0_hat():
    s, x0, eps, t, x_t, g = _case(seed=2)
    z1, z2 = (torch.randn(x_t.shape, generator=g, dtype=x_t.dtype) for _ in range(2))
    t_prev = (t // 2)
    a = sp.ddim_step(s, x_t, t, t_prev, eps, eta=0.0, noise=z1)
    b = sp.ddim_step(s, x_t, t, t_prev, eps, eta=0.0, noise=z2)
    assert torch.equal(a, b)
    # with the true eps, a deterministic jump lands on q(x_{t_prev} | x0)'s point with the same eps
    a_prev = s.alpha_bars[t_prev].reshape(-1, 1, 1)
    torch.testing.assert_close(a, a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps)
    c = sp.ddim_step(s, x_t, t, torch.zeros_like(t), eps, eta=1.0, noise=z1)
    torch.testing.assert_close(c, x0)


# ----------------------------------------------------------------------------- loops vs data laws
def _mmd_pvalue(x, y, bandwidth=0.5, permutations=200):
    """Permutation p-value of the (biased) Gaussian-kernel MMD^2 between samples x and y (n, D)."""
    z = torch.cat([x, y]).double()
    k = torch.exp(-torch.cdist(z, z).pow(2) / (2 * bandwidth**2))
    n, m = x.shape[0], y.shape[0]
    labels = torch.cat([torch.full((n,), 1.0 / n), torch.full((m,), -1.0 / m)]).double()
    g = torch.Generator().manual_seed(123)
    perms = torch.stack([labels] + [labels[torch.randperm(n + m, generator=g)] for _ in range(permutations)], 1)
    stats = ((k @ perms) * perms).sum(0)  # l^T K l = MMD^2 for each labelling l
    return ((stats[1:] >= stats[0]).sum().item() + 1) / (permutations + 1)


def _check_moments(x, mix, rel=0.0):
    """Means within 5 standard errors; covariance entries within 5 standard errors + rel |cov|."""
    n = x.shape[0]
    cov = mix.covariance()
    se_mean = (cov.diag() / n).sqrt()
    assert ((x.mean(0) - mix.mean()).abs() < 5 * se_mean).all(), (x.mean(0), mix.mean())
    se_cov = ((cov.diag()[:, None] * cov.diag()[None, :] + cov**2) / n).sqrt()
    assert ((torch.cov(x.T) - cov).abs() < 5 * se_cov + rel * cov.abs()).all(), (torch.cov(x.T), cov)


def _gaussian_chain_law(mix, s, ts, eta):
    """Exact mean and variance (per dimension) of the DDIM/DDPM output for Gaussian data, by iterating
    the chain: with the exact denoiser every step is x' = c + A x + sigma z, so m' = c + A m and
    V' = A^2 V + sigma^2, starting from m = 0, V = 1. ``eta=None`` means the DDPM step (beta_tilde)."""
    mu, var = mix.means[0], mix.variances[0]
    m, V = torch.zeros_like(mu), torch.ones_like(var)
    for t, t_prev in zip(ts, ts[1:] + [0]):
        ab, ab_prev = s.alpha_bars[t], s.alpha_bars[t_prev]
        a, sd = ab.sqrt(), (1 - ab).sqrt()
        gain = 1 / (ab * var + sd**2)              # x0_hat = mu + a var gain (x - a mu)
        x0_c, x0_A = mu - a * var * gain * a * mu, a * var * gain
        eps_c, eps_A = -sd * gain * a * mu, sd * gain  # eps_hat = sd gain (x - a mu)
        if eta is None and t == 1:  # q(x_0 | x_1, x0_hat) is a point mass at x0_hat
            p, q, r, sig2 = 1.0, 0.0, 0.0, 0.0
        elif eta is None:  # q(x_{t-1} | x_t, x0_hat): precision-weighted Bayes, as in _bayes_posterior
            alpha, beta = s.alphas[t], s.betas[t]
            prec = alpha / beta + 1 / (1 - ab_prev)
            p, q, r = ab_prev.sqrt() / (1 - ab_prev) / prec, alpha.sqrt() / beta / prec, 0.0
            sig2 = 1 / prec
        else:
            sig2 = eta**2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
            p, q, r = ab_prev.sqrt(), 0.0, (1 - ab_prev - sig2).sqrt()
        c = p * x0_c + r * eps_c
        A = p * x0_A + q + r * eps_A
        m, V = c + A * m, A**2 * V + sig2
    return m, V


@pytest.mark.parametrize("eta", [None, 0.0, 1.0])
def test_loops_follow_the_exact_gaussian_chain(eta):
    # Even a perfect denoiser gives a slightly narrower law at finite T (x0_hat is a posterior mean);
    # here the sampler must match the law of its own chain, computed exactly, within 5 standard errors.
    n = 20_000
    if eta is None:
        s = schedules.linear(200, 1e-4, 0.1)
        x = sp.ddpm_sample(gm.exact_model(GAUSS, s, "eps"), s, (n, 2), seed=0, dtype=torch.float64,
                           progress=False)
        ts = list(range(200, 0, -1))
    else:
        s = schedules.cosine(200)
        x = sp.ddim_sample(gm.exact_model(GAUSS, s, "x0"), s, (n, 2), 25, eta, target="x0", seed=0,
                           dtype=torch.float64, progress=False)
        ts = sp.timesteps(200, 25)
    m, V = _gaussian_chain_law(GAUSS, s, ts, eta)
    assert ((x.mean(0) - m).abs() < 5 * (V / n).sqrt()).all(), (x.mean(0), m)
    assert ((x.var(0) - V).abs() < 5 * V * math.sqrt(2 / n)).all(), (x.var(0), V)
    assert ((V - GAUSS.variances[0]).abs() > 5 * V * math.sqrt(2 / n)).any()  # the check can tell


# (sampler, schedule, target for Gaussian data, target for the mixture, allowed relative shrinkage of
# the covariance: the finite-step bias measured with 50k samples is about 3 % (DDPM), 5 % (DDIM eta=0)
# and 10 % (DDIM eta=1) on the narrowest direction (variance 0.03-0.05))
LOOPS = {
    "ddpm linear T=1000": (lambda m, s, n, tg: sp.ddpm_sample(m, s, (n, 2), tg, seed=0, dtype=torch.float64,
                                                              progress=False), schedules.linear(1000),
                           "eps", "x0_eps", 0.05),
    "ddim 100 eta=0": (lambda m, s, n, tg: sp.ddim_sample(m, s, (n, 2), 100, 0.0, "quadratic", tg, seed=0,
                                                          dtype=torch.float64, progress=False),
                       schedules.cosine(1000), "v", "score", 0.07),
    "ddim 100 eta=1": (lambda m, s, n, tg: sp.ddim_sample(m, s, (n, 2), 100, 1.0, "quadratic", tg, seed=0,
                                                          dtype=torch.float64, progress=False),
                       schedules.cosine(1000), "x0", "eps", 0.12),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOOPS))
@pytest.mark.parametrize("data", ["gauss", "gmm"])
def test_discrete_samplers_reproduce_the_data(name, data):
    run, s, target_gauss, target_gmm, rel = LOOPS[name]
    mix, target = (GAUSS, target_gauss) if data == "gauss" else (GMM, target_gmm)
    x = run(gm.exact_model(mix, s, target), s, 3000, target)
    _check_moments(x, mix, rel)
    if data == "gmm":  # MMD permutation test against fresh data: p > 0.01
        assert _mmd_pvalue(x, mix.sample(3000, torch.Generator().manual_seed(7))) > 0.01


@pytest.mark.slow
@pytest.mark.parametrize("data", ["gauss", "gmm"])
def test_angular_rk4_reproduces_the_data(data):
    mix = {"gauss": GAUSS, "gmm": GMM}[data]
    x = sp.angular_sample(gm.exact_angular_model(mix, 1000, "x0_eps"), ANGULAR, (3000, 2), 20, "rk4", seed=1,
                          dtype=torch.float64, progress=False)
    _check_moments(x, mix)  # no allowance: RK4 with 20 steps is within 0.5 % of the data covariance
    assert _mmd_pvalue(x, mix.sample(3000, torch.Generator().manual_seed(8))) > 0.01


@pytest.mark.slow
def test_the_mmd_check_has_power():
    # negative control: a badly discretized sampler (5 DDPM steps with sigma^2 = beta) is rejected
    s = schedules.linear(5, 0.05, 0.9)
    x = sp.ddpm_sample(gm.exact_model(GMM, s, "eps"), s, (3000, 2), variance="beta", seed=0,
                       dtype=torch.float64, progress=False)
    assert _mmd_pvalue(x, GMM.sample(3000, torch.Generator().manual_seed(7))) < 0.01


def test_ddim_all_steps_eta1_equals_ddpm():
    s = schedules.cosine(40)
    model = gm.exact_model(GMM, s, "eps")
    a = sp.ddpm_sample(model, s, (500, 2), seed=3, dtype=torch.float64, progress=False)
    b = sp.ddim_sample(model, s, (500, 2), 40, eta=1.0, seed=3, dtype=torch.float64, progress=False)
    torch.testing.assert_close(a, b)


def test_ddim_eta0_ignores_the_seed_given_x_T():
    s = schedules.cosine(100)
    model = gm.exact_model(GMM, s, "eps")
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    a = sp.ddim_sample(model, s, None, 10, x_T=x_T, seed=1, progress=False)
    b = sp.ddim_sample(model, s, None, 10, x_T=x_T, seed=2, progress=False)
    assert torch.equal(a, b)
    c = sp.ddim_sample(model, s, None, 10, eta=1.0, x_T=x_T, seed=1, progress=False)
    assert not torch.allclose(a, c)


def test_seed_reproducibility_and_trajectory():
    s = schedules.cosine(30)
    model = gm.exact_model(GMM, s, "x0_eps")
    traj = sp.Trajectory()
    a = sp.ddpm_sample(model, s, (8, 2), seed=5, callback=traj, progress=False)
    b = sp.ddpm_sample(model, s, (8, 2), "x0_eps", generator=torch.Generator().manual_seed(5), progress=False)
    assert torch.equal(a, b)
    assert traj.t == list(range(30, 0, -1))
    assert len(traj) == len(traj.x_t) == len(traj.x0_hat) == 30 and traj.x_t[0].shape == (8, 2)
    # at t = 1 the last step returns coef_x0 x0_hat with coef_x0 = 1 (no noise)
    torch.testing.assert_close(a, traj.x0_hat[-1])


# ----------------------------------------------------------------------------- loops = iterated steps
def _noise_stream(seed, shape):
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.randn(shape, generator=g, dtype=torch.float64)


def test_ddpm_loop_is_its_step_iterated_bit_for_bit():
    s = schedules.linear(40, 1e-3, 0.3)
    model = gm.exact_model(GMM, s, "v")
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sp.ddpm_sample(model, s, None, x_T=x_T, generator=torch.Generator().manual_seed(1), progress=False)
    draw, x = _noise_stream(1, x_T.shape), x_T.clone()
    for t in range(s.T, 0, -1):
        tt = torch.full((16,), t)
        x0_hat, eps_hat = objectives.predictions(s, x, t, model(x, tt), "v")
        x = sp.ddpm_step(s, x, t, eps_hat, draw() if t > 1 else None, x0_hat=x0_hat)
    assert torch.equal(out, x)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_loop_is_its_step_iterated_bit_for_bit(eta):
    s = schedules.cosine(100)
    model = gm.exact_model(GMM, s, "eps")
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sp.ddim_sample(model, s, None, 12, eta=eta, x_T=x_T, generator=torch.Generator().manual_seed(1),
                         progress=False)
    draw, x, ts = _noise_stream(1, x_T.shape), x_T.clone(), sp.timesteps(100, 12)
    for t, t_prev in zip(ts, ts[1:] + [0]):
        x0_hat, eps_hat = objectives.predictions(s, x, t, model(x, torch.full((16,), t)), "eps")
        noise = draw() if eta > 0 and float(sp.ddim_sigma(s, t, t_prev, eta)) > 0 else None
        x = sp.ddim_step(s, x, t, t_prev, eps_hat, eta, noise, x0_hat=x0_hat)
    assert torch.equal(out, x)


@pytest.mark.parametrize("method", sp.METHODS)
def test_angular_loop_is_its_rk_step_iterated_bit_for_bit(method):
    model = gm.exact_angular_model(GMM, 1000, "x0_eps")
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sp.angular_sample(model, ANGULAR, None, 6, method, x_T=x_T, progress=False)

    def velocity(x, phi):
        t = torch.full((16,), float(sp.model_time([phi], ANGULAR)[0]), dtype=torch.float64)
        x0_hat, eps_hat = objectives.predictions_from_coeffs(math.cos(phi), math.sin(phi), x, model(x, t), "x0_eps")
        return objectives.target_from_coeffs(math.cos(phi), math.sin(phi), x0_hat, eps_hat, "v"), x0_hat

    x, h = x_T.clone(), -math.pi / 12
    for k in range(6):
        x, _ = sp.rk_step(velocity, x, math.pi / 2 + k * h, h, method)
    assert torch.equal(out, x)


def test_rotation_step_is_the_ddim_eta0_jump_on_the_angular_schedule():
    s = schedules.angular(200)
    g = torch.Generator().manual_seed(3)
    x0_hat, eps_hat = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(2))
    t, t_prev = 150, 90
    phi, phi_prev = (math.acos(math.sqrt(float(s.alpha_bars[k]))) for k in (t, t_prev))
    x_t = math.cos(phi) * x0_hat + math.sin(phi) * eps_hat
    torch.testing.assert_close(sp.rotation_step(x0_hat, eps_hat, phi_prev),
                               sp.ddim_step(s, x_t, t, t_prev, eps_hat, x0_hat=x0_hat), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- the target a model declares
def test_a_contradicting_target_is_refused_and_the_declared_one_used():
    s = schedules.cosine(50)
    v_model = gm.exact_model(GMM, s, "v")       # declares target "v"
    for run in (lambda **k: sp.ddpm_sample(v_model, s, (4, 2), seed=0, progress=False, **k),
                lambda **k: sp.ddim_sample(v_model, s, (4, 2), 5, seed=0, progress=False, **k),
                lambda **k: sp.angular_sample(v_model, s, (4, 2), 5, integer_t=True, seed=0, progress=False, **k)):
        with pytest.raises(ValueError, match="contradicts"):
            run(target="eps")
        torch.testing.assert_close(run(), run(target="v"))
    plain = lambda x, t: torch.zeros_like(x)  # noqa: E731  declares nothing: read as eps
    assert sp.ddim_sample(plain, s, (4, 2), 5, seed=0, progress=False).shape == (4, 2)


# ----------------------------------------------------------------------------- the front door
class _Tiny(torch.nn.Module):
    """A stand-in image network (B, 1, 4, 4) with the attributes a dlib U-Net has."""

    in_channels, image_size, target = 1, 4, "eps"

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, t):
        return self.w * x + t.to(x.dtype).reshape(-1, 1, 1, 1) * 1e-4


@pytest.mark.parametrize("sampler", sp.SAMPLERS)
def test_sample_front_door(sampler):
    s, net = schedules.cosine(20), _Tiny().train()
    state = torch.get_rng_state()
    x = sp.sample(net, s, 10, sampler=sampler, steps=4, batch_size=4, seed=3)
    assert x.shape == (10, 1, 4, 4) and x.dtype == torch.float32 and x.abs().max() <= 1
    assert torch.equal(torch.get_rng_state(), state) and net.training        # nothing disturbed
    assert torch.equal(x, sp.sample(net, s, 10, sampler=sampler, steps=4, batch_size=4, seed=3))
    # batch by batch: the first batch is the loop run alone with the same generator
    first = {"ddpm": lambda g: sp.ddpm_sample(net, s, (4, 1, 4, 4), generator=g, progress=False),
             "ddim": lambda g: sp.ddim_sample(net, s, (4, 1, 4, 4), 4, generator=g, progress=False),
             "angular": lambda g: sp.angular_sample(net, s, (4, 1, 4, 4), 4, "rk2", generator=g, progress=False)}
    with torch.no_grad():
        torch.testing.assert_close(x[:4], first[sampler](torch.Generator().manual_seed(3)).clamp(-1, 1))
    with pytest.raises(ValueError, match="contradicts"):
        sp.sample(net, s, 2, sampler=sampler, target="x0")
    with pytest.raises(ValueError, match="unknown sampler"):
        sp.sample(net, s, 2, sampler="euler")
    with pytest.raises(ValueError, match="n must be"):
        sp.sample(net, s, 0)


def test_clip_x0_clamps_the_prediction():
    s = schedules.cosine(20)
    far = lambda x, t: torch.full_like(x, 5.0)  # noqa: E731  a model claiming x0 = 5 everywhere
    a = sp.ddpm_sample(far, s, (4, 2), "x0", seed=0, clip_x0=1.0, progress=False)
    b = sp.ddim_sample(far, s, (4, 2), 5, target="x0", seed=0, clip_x0=1.0, progress=False)
    assert torch.equal(a, torch.ones(4, 2)) and torch.allclose(b, torch.ones(4, 2))
    assert torch.allclose(sp.ddpm_sample(far, s, (4, 2), "x0", seed=0, progress=False), torch.full((4, 2), 5.0))


def test_angular_model_time_and_trajectory():
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.cat([torch.zeros_like(x), x], 1)  # x0_hat = 0, eps_hat = x

    traj = sp.Trajectory()
    sp.angular_sample(model, schedules.angular(100), (3, 2), 4, "euler", target="x0_eps", seed=0, callback=traj,
                      progress=False)
    assert [round(float(t[0]), 6) for t in seen] == [100.0, 75.0, 50.0, 25.0]
    assert traj.t == pytest.approx([100.0, 75.0, 50.0, 25.0])
    phis = [math.pi / 2 * (1 - k / 4) for k in range(4)]
    # with the cosine schedule, t is where alpha_bar_t = cos^2(phi): check by interpolating alpha_bar
    s, seen[:] = schedules.cosine(100), []
    sp.angular_sample(model, s, (3, 2), 4, "euler", target="x0_eps", seed=0, progress=False)
    for t, phi in zip(seen, phis):
        t0 = int(float(t[0]))
        if t0 < 100:
            a_bar = s.alpha_bars[t0] + (float(t[0]) - t0) * (s.alpha_bars[t0 + 1] - s.alpha_bars[t0])
            assert abs(math.acos(math.sqrt(a_bar)) - phi) < 0.02


# ----------------------------------------------------------------------------- angular convergence order
@pytest.mark.parametrize("method,steps,lo,hi", [("euler", [16, 32, 64, 128], 0.8, 1.3),
                                                ("rk2", [8, 16, 32, 64], 1.7, 2.4),
                                                ("rk4", [8, 16, 32, 64], 3.5, 6.0)])
def test_angular_convergence_order(method, steps, lo, hi):
    # Gaussian data N(mu, diag var): the flow from x at phi = pi/2 ends at mu + sqrt(var) x exactly
    # (x(phi) = cos(phi) mu + sqrt(cos^2(phi) var + sin^2(phi)) x solves the ODE).
    mu, var = GAUSS.means[0], GAUSS.variances[0]
    model = gm.exact_angular_model(GAUSS, 1000, "x0_eps")
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact_end = mu + var.sqrt() * x_T
    errors = [(sp.angular_sample(model, ANGULAR, None, n, method, x_T=x_T, dtype=torch.float64, progress=False)
               - exact_end).abs().max().item() for n in steps]
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert lo <= order <= hi, (method, errors, order)


@pytest.mark.parametrize("target", ["eps", "x0", "score", "v"])
def test_angular_other_targets_agree_with_joint(target):
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref = sp.angular_sample(gm.exact_angular_model(GMM, 1000, "x0_eps"), ANGULAR, None, 40, "rk4", x_T=x_T,
                            dtype=torch.float64, progress=False)
    x = sp.angular_sample(gm.exact_angular_model(GMM, 1000, target), ANGULAR, None, 40, "rk4", target=target,
                          x_T=x_T, dtype=torch.float64, progress=False)
    tol = 1e-9 if target == "v" else 0.05  # clamping at the singular end costs O(phi_clip)
    assert (x - ref).abs().max() < tol


def test_ddim_from_an_intermediate_level_is_the_tail_of_the_full_loop():
    # started at t_start with the state the full loop has there, the loop continues it step for step
    s = schedules.cosine(100)
    model = gm.exact_model(GMM, s, "eps")
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    traj = sp.Trajectory()
    full = sp.ddim_sample(model, s, None, 100, x_T=x_T, callback=traj, progress=False)
    mid = traj.t.index(40)
    tail = sp.ddim_sample(model, s, None, 40, x_T=traj.x_t[mid], t_start=40, progress=False)
    torch.testing.assert_close(tail, full)
    with pytest.raises(ValueError, match="1..100"):
        sp.ddim_sample(model, s, None, 5, x_T=x_T, t_start=101, progress=False)


# ----------------------------------------------------------------------------- DDIM inversion
def _gauss_eps(mix, s, x, t):
    """The exact eps_hat of Gaussian data, E[eps | x_t] = sd (x_t - a mu) / (a^2 var + sd^2), by hand."""
    a, sd = s.alpha_bars[t].sqrt(), (1 - s.alpha_bars[t]).sqrt()
    return sd * (x - a * mix.means[0]) / (a**2 * mix.variances[0] + sd**2)


def test_ddim_invert_step_undoes_the_eta0_step_when_eps_is_held_fixed():
    s, x0, eps, t, x_t, g = _case(seed=4)
    t_prev = t // 2
    eps_hat = eps + 0.3 * torch.randn(x_t.shape, generator=g, dtype=x_t.dtype)
    down = sp.ddim_step(s, x_t, t, t_prev, eps_hat, eta=0.0)
    torch.testing.assert_close(sp.ddim_invert_step(s, down, t_prev, t, eps_hat), x_t)
    # from t = 0 the clean image itself is x0_hat: one jump lands on q(x_t | x0)'s point for that eps
    a = s.alpha_bars[t].reshape(-1, 1, 1)
    torch.testing.assert_close(sp.ddim_invert_step(s, x0, torch.zeros_like(t), t, eps), x_t)
    torch.testing.assert_close(sp.ddim_invert_step(s, x0, 0, t, eps), a.sqrt() * x0 + (1 - a).sqrt() * eps)


def test_ddim_invert_is_the_iterated_affine_map_for_gaussian_data():
    # independent computation: with the exact eps_hat of Gaussian data every jump is affine in x,
    # x' = sqrt(ab') (x - sd eps_hat(x)) / a + sqrt(1 - ab') eps_hat(x), the model called at the lower end
    s = schedules.cosine(200)
    x0 = GAUSS.sample(64, torch.Generator().manual_seed(1))
    ts = sp.timesteps(200, 17)[::-1]
    x = x0.clone()
    for t, t_next in zip([0] + ts[:-1], ts):
        e = _gauss_eps(GAUSS, s, x, max(t, 1))
        x0_hat = x if t == 0 else (x - (1 - s.alpha_bars[t]).sqrt() * e) / s.alpha_bars[t].sqrt()
        x = s.alpha_bars[t_next].sqrt() * x0_hat + (1 - s.alpha_bars[t_next]).sqrt() * e
    traj = sp.Trajectory()
    got = sp.ddim_invert(gm.exact_model(GAUSS, s, "eps"), s, x0, 17, callback=traj, progress=False)
    torch.testing.assert_close(got, x, rtol=1e-10, atol=1e-10)
    assert traj.t == [1] + ts[:-1] and len(traj) == 17


def test_ddim_inversion_converges_to_the_probability_flow_map():
    # For Gaussian data N(mu, v) the probability-flow ODE keeps (x_t - mean_t) / std_t fixed, so the exact
    # code is x_T = sqrt(ab_T) mu + sqrt((ab_T v + 1 - ab_T) / v) (x0 - mu); DDIM inversion is a first-order
    # discretization of that ODE, and decoding with the same steps comes back to x0 as the steps grow.
    s = schedules.linear(1000)
    model = gm.exact_model(GAUSS, s, "eps")
    x0 = GAUSS.sample(256, torch.Generator().manual_seed(2))
    mu, v, ab = GAUSS.means[0], GAUSS.variances[0], s.alpha_bars[-1]
    exact = ab.sqrt() * mu + ((ab * v + 1 - ab) / v).sqrt() * (x0 - mu)
    code_err, trip_err = [], []
    for steps in (10, 100, 1000):
        x_T = sp.ddim_invert(model, s, x0, steps, progress=False)
        back = sp.ddim_sample(model, s, None, steps, x_T=x_T, progress=False)
        code_err.append((x_T - exact).abs().max().item())
        trip_err.append((back - x0).abs().max().item())
    assert code_err[0] > 5 * code_err[1] > 25 * code_err[2] and code_err[2] < 0.03, code_err   # ~ 1 / steps
    assert trip_err[0] > 5 * trip_err[1] > 25 * trip_err[2] and trip_err[2] < 0.02, trip_err
    # negative controls: the code of other data is not this map; decoding with fresh noise (eta = 1) or
    # with another model's denoiser does not come back
    wrong_v = ab.sqrt() * mu + ((ab * 2 * v + 1 - ab) / (2 * v)).sqrt() * (x0 - mu)
    assert (x_T - wrong_v).abs().max() > 20 * code_err[2]
    noisy = sp.ddim_sample(model, s, None, 1000, eta=1.0, x_T=x_T, seed=0, progress=False)
    other = sp.ddim_sample(gm.exact_model(GMM, s, "eps"), s, None, 1000, x_T=x_T, progress=False)
    assert (noisy - x0).abs().mean() > 0.1 and (other - x0).abs().mean() > 0.1


def test_ddim_inversion_round_trip_on_a_mixture():
    s = schedules.linear(1000)
    model = gm.exact_model(GMM, s, "v")
    x0 = GMM.sample(256, torch.Generator().manual_seed(3))
    errs = []
    for steps in (20, 200):
        x_T = sp.ddim_invert(model, s, x0, steps, spacing="quadratic", target="v", progress=False)
        errs.append((sp.ddim_sample(model, s, None, steps, spacing="quadratic", target="v", x_T=x_T,
                                    progress=False) - x0).abs().mean().item())
    assert errs[0] > 5 * errs[1] and errs[1] < 0.01, errs
    assert abs(x_T.var().item() - 1) < 0.2   # the code of data looks like standard normal noise


# ----------------------------------------------------------------------------- errors
def test_value_errors():
    s, x0, eps, t, x_t, _ = _case()
    with pytest.raises(ValueError, match="1..50"):
        sp.ddpm_step(s, x_t, t * 0, eps, None)
    with pytest.raises(ValueError, match="1..50"):
        sp.ddim_step(s, x_t, t + 50, t, eps)
    with pytest.raises(ValueError, match="t_prev"):
        sp.ddim_step(s, x_t, t, t, eps)
    with pytest.raises(ValueError, match="t_next"):
        sp.ddim_invert_step(s, x_t, t, t, eps)
    with pytest.raises(ValueError, match="x0 must be"):
        sp.ddim_invert(lambda x, t: x, s, torch.zeros(4, 2, dtype=torch.long), 5, progress=False)
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        sp.ddpm_step(s, x_t, t[:3], eps, None)
    with pytest.raises(ValueError, match="eps_hat"):
        sp.ddpm_step(s, x_t, t, eps[:, :1], None)
    bad_model = lambda x, t: x[:, :1]  # noqa: E731
    with pytest.raises(ValueError, match="model output"):
        sp.ddpm_sample(bad_model, s, (4, 2, 3), progress=False)
    with pytest.raises(ValueError, match="x0_eps"):
        sp.ddim_sample(lambda x, t: x, s, (4, 2, 3), 5, target="x0_eps", progress=False)
    with pytest.raises(ValueError, match="unknown target"):
        sp.ddpm_sample(lambda x, t: x, s, (4, 2), target="noise", progress=False)
    with pytest.raises(ValueError, match="unknown method"):
        sp.angular_sample(lambda x, t: x, ANGULAR, (4, 2), 5, method="rk3", progress=False)
    with pytest.raises(ValueError, match="unknown spacing"):
        sp.timesteps(100, 10, "cubic")
    with pytest.raises(ValueError, match="steps"):
        sp.timesteps(100, 101)
    with pytest.raises(ValueError, match="variance"):
        sp.ddpm_sample(lambda x, t: x, s, (4, 2), variance="large", progress=False)
