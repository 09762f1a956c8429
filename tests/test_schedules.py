"""Noise schedules of chapter "forward" (eq-alpha-bar, eq-snr) against hand computations in numpy.

Equations checked: eq-alpha-bar, eq-snr, eq-beta-tilde, eq-posterior-mean.
"""
import math

import numpy as np
import pytest
import torch

from dlib import schedules


@pytest.mark.parametrize("make", [schedules.linear, schedules.cosine, schedules.angular])
def test_lengths_and_index_zero(make):
    s = make(37)
    assert s.T == 37 and len(s) == 38
    for name in ("betas", "alphas", "alpha_bars"):
        values = getattr(s, name)
        assert values.shape == (38,) and values.dtype == torch.float64, name
    assert s.betas[0] == 0 and s.alphas[0] == 1 and s.alpha_bars[0] == 1
    assert s.beta_tildes[0] == 0
    assert ((s.betas[1:] > 0) & (s.betas[1:] < 1)).all()
    assert (np.diff(s.alpha_bars.numpy()) < 0).all()


def test_linear_endpoints():
    s = schedules.linear(1000)
    assert s.betas[1].item() == pytest.approx(1e-4, abs=1e-15)
    assert s.betas[1000].item() == pytest.approx(0.02, abs=1e-15)
    steps = np.diff(s.betas[1:].numpy())
    assert np.allclose(steps, (0.02 - 1e-4) / 999, rtol=1e-9)
    s = schedules.linear(10, beta_start=0.1, beta_end=0.3)
    assert np.allclose(s.betas.numpy(), [0.0] + list(np.linspace(0.1, 0.3, 10)), atol=1e-15)


@pytest.mark.parametrize("T", [10, 1000])
def test_cosine_alpha_bar_matches_formula(T):
    s_off, max_beta = 0.008, 0.999
    s = schedules.cosine(T, s=s_off, max_beta=max_beta)
    f = [math.cos((t / T + s_off) / (1 + s_off) * math.pi / 2) ** 2 for t in range(T + 1)]
    expected_betas = [0.0] + [min(1 - f[t] / f[t - 1], max_beta) for t in range(1, T + 1)]
    assert np.allclose(s.betas.numpy(), expected_betas, rtol=1e-10, atol=1e-14)
    assert s.betas.max().item() <= max_beta
    # away from the clipped tail the product of (1 - beta) is f(t)/f(0)
    unclipped = np.array(expected_betas[1:]) < max_beta
    last = int(np.argmin(unclipped)) if not unclipped.all() else T
    ratio = np.array(f) / f[0]
    assert np.allclose(s.alpha_bars.numpy()[: last + 1], ratio[: last + 1], rtol=1e-9)


def test_cosine_clips_large_betas():
    s = schedules.cosine(1000, max_beta=0.5)
    assert s.betas.max().item() == pytest.approx(0.5)
    assert (s.betas[-3:] == 0.5).all()     # the unclipped last betas reach ~1


def test_angular_alpha_bar_and_endpoint():
    T, max_beta = 50, 0.999
    s = schedules.angular(T, max_beta=max_beta)
    t = np.arange(T)
    assert np.allclose(s.alpha_bars.numpy()[:T], np.cos(np.pi * t / (2 * T)) ** 2, rtol=1e-10, atol=1e-15)
    assert s.betas[T].item() == pytest.approx(max_beta)
    assert s.alpha_bars[T].item() == pytest.approx((1 - max_beta) * math.cos(math.pi * (T - 1) / (2 * T)) ** 2)
    assert s.alpha_bars[T].item() > 0


@pytest.mark.parametrize("make", [schedules.linear, schedules.cosine, schedules.angular])
def test_alpha_bar_is_running_product(make):
    s = make(100)
    product, expected = 1.0, [1.0]
    for beta in s.betas[1:].tolist():
        product *= 1.0 - beta
        expected.append(product)
    assert np.allclose(s.alpha_bars.numpy(), expected, rtol=1e-12)
    assert np.allclose(s.alphas.numpy(), [1.0 - b for b in s.betas.tolist()], rtol=0, atol=0)


def test_snr_and_log_snr_against_numpy():
    s = schedules.cosine(200)
    a = np.cumprod(1.0 - s.betas.numpy())
    t = np.array([0, 1, 7, 100, 199, 200])
    snr = s.snr(torch.as_tensor(t)).numpy()
    assert np.isinf(snr[0])
    assert np.allclose(snr[1:], a[t[1:]] / (1 - a[t[1:]]), rtol=1e-10)
    log_snr = s.log_snr(torch.as_tensor(t[1:])).numpy()
    assert np.allclose(log_snr, np.log(a[t[1:]] / (1 - a[t[1:]])), rtol=1e-9)
    assert s.log_snr(3).item() == pytest.approx(math.log(a[3] / (1 - a[3])))
    assert (np.diff(s.log_snr(torch.arange(1, 201)).numpy()) < 0).all()


def test_beta_tilde_by_hand():
    s = schedules.linear(30)
    b = s.betas.numpy()
    a = np.cumprod(1 - b)
    for t in (1, 2, 15, 30):
        assert s.beta_tildes[t].item() == pytest.approx((1 - a[t - 1]) / (1 - a[t]) * b[t], rel=1e-12)


def test_gather_shape_dtype():
    s = schedules.linear(10)
    like = torch.zeros(3, 2, 4, 4, dtype=torch.float32)
    g = s.gather(s.alpha_bars, torch.tensor([1, 5, 10]), like)
    assert g.shape == (3, 1, 1, 1) and g.dtype == torch.float32
    assert torch.allclose(g.flatten(), s.alpha_bars[[1, 5, 10]].float())
    assert s.gather(s.alpha_bars, 4, like).shape == (3, 1, 1, 1)
    with pytest.raises(ValueError, match="shape"):
        s.gather(s.alpha_bars, torch.tensor([1, 2]), like)


def test_bad_betas_rejected():
    with pytest.raises(ValueError, match="betas must lie"):
        schedules.from_betas([0.1, 1.0, 0.2])
    with pytest.raises(ValueError, match="betas must lie"):
        schedules.from_betas([0.1, -0.2])
    with pytest.raises(ValueError, match="betas must lie"):
        schedules.Schedule(torch.tensor([0.0, 0.1, 0.0]))
    with pytest.raises(ValueError, match="betas\\[0\\]"):
        schedules.Schedule(torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="T >= 1"):
        schedules.Schedule(torch.tensor([0.0]))
    with pytest.raises(ValueError, match="NaN"):
        schedules.from_betas([0.1, float("nan")])
    # a leading zero is taken as beta_0, so this stays valid
    assert schedules.from_betas([0.0, 0.1, 0.2]).T == 2


def test_bad_alpha_bars_rejected():
    with pytest.raises(ValueError, match="decreasing"):
        schedules.from_alpha_bars([1.0, 0.5, 0.7])
    with pytest.raises(ValueError, match="decreasing"):
        schedules.from_alpha_bars([1.0, 0.5, 0.5])
    with pytest.raises(ValueError, match="alpha_bar_0 = 1"):
        schedules.from_alpha_bars([0.9, 0.5])


@pytest.mark.parametrize("make", [schedules.linear, schedules.cosine, schedules.angular])
def test_bad_T_rejected(make):
    for T in (0, -3, 2.5):
        with pytest.raises(ValueError, match="T must be"):
            make(T)


def test_check_t():
    s = schedules.linear(10)
    assert s.check_t(1).item() == 1 and s.check_t(torch.tensor([1, 10])).tolist() == [1, 10]
    assert s.check_t(0, allow_zero=True).item() == 0
    assert s.check_t(torch.tensor([3], dtype=torch.int32)).dtype == torch.int64
    for bad in (0, 11, -1, torch.tensor([1, 11]), torch.tensor([0, 5])):
        with pytest.raises(ValueError, match="1..10"):
            s.check_t(bad)
    with pytest.raises(ValueError, match="0..10"):
        s.check_t(11, allow_zero=True)
    for bad in (1.0, torch.tensor([2.0]), torch.tensor([True])):
        with pytest.raises(ValueError, match="integers"):
            s.check_t(bad)


@pytest.mark.parametrize("make", [lambda: schedules.linear(50, 1e-3, 0.3), lambda: schedules.cosine(80),
                                  lambda: schedules.angular(60)])
def test_posterior_coefficients_by_completing_the_square(make):
    # q(x_{t-1} | x_t, x_0) ~ q(x_t | x_{t-1}) q(x_{t-1} | x_0): precisions add (eq-posterior-mean, eq-beta-tilde)
    s = make()
    t = torch.arange(2, s.T + 1)
    alpha, beta, a_prev = s.alphas[t], s.betas[t], s.alpha_bars[t - 1]
    precision = alpha / beta + 1 / (1 - a_prev)
    torch.testing.assert_close(s.beta_tildes[t], 1 / precision, rtol=1e-10, atol=0)
    torch.testing.assert_close(s.coef_xt[t], alpha.sqrt() / beta / precision, rtol=1e-10, atol=0)
    torch.testing.assert_close(s.coef_x0[t], a_prev.sqrt() / (1 - a_prev) / precision, rtol=1e-10, atol=0)
    assert s.coef_x0[1] == pytest.approx(1.0, abs=1e-12) and s.coef_xt[1] == 0     # t = 1: the mean is x_0


def test_from_config_builds_each_kind_and_names_unknown_keys():
    assert schedules.from_config({"kind": "linear", "T": 300, "beta_end": 0.02}).T == 300
    assert schedules.from_config({"kind": "cosine", "T": 10}).name == "cosine(T=10)"
    assert schedules.from_config({"T": 20}).name == "linear(T=20)"
    with pytest.raises(ValueError, match="schedule.TT"):
        schedules.from_config({"kind": "linear", "TT": 10})
    with pytest.raises(ValueError, match="kind"):
        schedules.from_config({"kind": "sigmoid"})
