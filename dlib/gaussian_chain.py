"""Scalar linear-Gaussian diffusion chains, where every quantity of the bound is exact.

Used by chapter "elbo" to check the variational bound against a known log-likelihood. The data
are x_0 ~ N(data_mean, data_var) (one scalar per example) and a reverse model is *linear
Gaussian*:

    p(x_T) = N(prior_mean, prior_var),   p(x_{t-1} | x_t) = N(a_t x_t + b_t, v_t),   t = 1..T.

A :class:`ReverseModel` holds (a, b, v) as float64 tensors of length T+1 (index 0 unused, set to
nan). Its marginal p(x_0) is again Gaussian (:func:`model_marginal`), so log p(x_0) is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .schedules import Schedule

Tensor = torch.Tensor
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class ReverseModel:
    """p(x_T) = N(prior_mean, prior_var); p(x_{t-1}|x_t) = N(a[t] x_t + b[t], v[t]) for t = 1..T."""

    a: Tensor
    b: Tensor
    v: Tensor
    prior_mean: float
    prior_var: float

    def __post_init__(self):
        if not (self.a.shape == self.b.shape == self.v.shape) or self.a.ndim != 1:
            raise ValueError("a, b and v must be 1-D tensors of the same length T+1")
        if (self.v[1:] <= 0).any() or self.prior_var <= 0:
            raise ValueError("reverse variances v_t (t >= 1) and prior_var must be > 0")

    @property
    def T(self) -> int:
        return self.a.numel() - 1


def log_normal(x: Tensor, mean, var) -> Tensor:
    """Elementwise log N(x; mean, var) in nats."""
    var = torch.as_tensor(var, dtype=x.dtype)
    return -0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


def forward_marginals(schedule: Schedule, data_mean: float, data_var: float) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_t) for t = 0..T when x_0 ~ N(data_mean, data_var) (chapter "forward",
    eq-q-xt-x0 averaged over the data): mean_t = sqrt(alpha_bar_t) m, var_t = alpha_bar_t s^2 + 1 - alpha_bar_t."""
    a_bar = schedule.alpha_bars
    return a_bar.sqrt() * data_mean, a_bar * data_var + 1 - a_bar


def exact_reverse(schedule: Schedule, data_mean: float, data_var: float) -> ReverseModel:
    """The true reverse process q(x_{t-1} | x_t) for Gaussian data, by Gaussian conditioning.

    Cov(x_{t-1}, x_t) = sqrt(alpha_t) Var(x_{t-1}), so a_t = sqrt(alpha_t) V_{t-1} / V_t,
    b_t = mu_{t-1} - a_t mu_t and v_t = V_{t-1} - alpha_t V_{t-1}^2 / V_t (chapter "elbo", the
    check of eq-elbo-posterior). With p(x_T) = q(x_T) this model's marginal is exactly the data distribution.
    """
    if data_var <= 0:
        raise ValueError(f"data_var must be > 0, got {data_var}")
    mu, V = forward_marginals(schedule, data_mean, data_var)
    a, b, v = (torch.full_like(mu, float("nan")) for _ in range(3))
    alpha = schedule.alphas[1:]
    a[1:] = alpha.sqrt() * V[:-1] / V[1:]
    b[1:] = mu[:-1] - a[1:] * mu[1:]
    v[1:] = V[:-1] - alpha * V[:-1] ** 2 / V[1:]
    return ReverseModel(a, b, v, float(mu[-1]), float(V[-1]))


def model_marginal(model: ReverseModel) -> tuple[float, float]:
    """Mean and variance of the model's p(x_0), by pushing p(x_T) through the reverse steps."""
    mean, var = model.prior_mean, model.prior_var
    for t in range(model.T, 0, -1):
        mean = model.a[t].item() * mean + model.b[t].item()
        var = model.a[t].item() ** 2 * var + model.v[t].item()
    return mean, var


def sample_chain(schedule: Schedule, x0: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Run the forward chain eq-q-step from scalar data x0 of shape (n,): returns (n, T+1), column t = x_t."""
    xs = [x0.to(torch.float64)]
    for t in range(1, schedule.T + 1):
        noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        xs.append(schedule.alphas[t].sqrt() * xs[-1] + schedule.betas[t].sqrt() * noise)
    return torch.stack(xs, dim=1)


def log_weight(schedule: Schedule, model: ReverseModel, chain: Tensor) -> Tensor:
    """log p(x_{0:T}) - log q(x_{1:T} | x_0) for each sampled chain (n, T+1) (chapter "elbo", eq-elbo).

    Its mean over chains drawn from q is the ELBO; one chain gives the single-sample estimator.
    """
    if chain.ndim != 2 or chain.shape[1] != schedule.T + 1 or model.T != schedule.T:
        raise ValueError(f"chain must have shape (n, T+1) = (n, {schedule.T + 1}) and match the model's T")
    out = log_normal(chain[:, -1], model.prior_mean, model.prior_var)
    for t in range(1, schedule.T + 1):
        out = out + log_normal(chain[:, t - 1], model.a[t] * chain[:, t] + model.b[t], model.v[t])
        out = out - log_normal(chain[:, t], schedule.alphas[t].sqrt() * chain[:, t - 1], schedule.betas[t])
    return out
