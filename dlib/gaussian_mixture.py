"""Gaussian-mixture data and its exact denoisers: every prediction a network could learn, in closed form.

If x_0 ~ sum_k w_k N(mu_k, diag(var_k)) and x_t = a x_0 + s eps (a = sqrt(alpha_bar_t),
s = sqrt(1 - alpha_bar_t), chapter "forward", eq-q-xt-x0), then x_t is again a mixture,
sum_k w_k N(a mu_k, diag(a^2 var_k + s^2)), and within component k the pair (x_0, x_t) is jointly
Gaussian. With the responsibilities r_k(x_t) = P(k | x_t) and V_k = a^2 var_k + s^2:

    E[x_0 | x_t] = sum_k r_k (mu_k + a var_k (x_t - a mu_k) / V_k)       (the ideal x0_hat)
    E[eps | x_t] = sum_k r_k s (x_t - a mu_k) / V_k                       (the ideal eps_hat)
    grad log q_t(x_t) = -sum_k r_k (x_t - a mu_k) / V_k                   (the exact score)

so that score = -E[eps | x_t] / s (Tweedie, chapter "objectives", eq-score-from-eps). These are the
minimizers of the training losses, so samplers driven by them show what a perfect network would do.
The formulas stay finite at a = 0 (pure noise) and at s = 0 (clean data) when every var_k > 0.

:class:`GaussianMixture` holds the data law (sample, log_prob, score, :meth:`GaussianMixture.noised`,
:meth:`GaussianMixture.denoise`); :func:`exact_model` and :func:`exact_angular_model` wrap it as a
``model(x_t, t)`` for :mod:`dlib.samplers`. Data are points (N, D), or (N, ...) with D elements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .objectives import check_target, target_from_coeffs
from .schedules import Schedule

Tensor = torch.Tensor

__all__ = ["GaussianMixture", "Denoised", "gmm_sample", "exact_model", "exact_angular_model"]


class Denoised(NamedTuple):
    """Posterior means and score at x_t, each shaped like x_t."""

    x0_hat: Tensor
    eps_hat: Tensor
    score: Tensor


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A mixture of K diagonal Gaussians in D dimensions (float64, CPU).

    Args:
        weights: (K,) non-negative, normalized to sum to 1.
        means: (K, D) (a (D,) vector is one component).
        variances: positive; a scalar (isotropic, shared), (K,) (isotropic per component) or (K, D).
    """

    weights: Tensor
    means: Tensor
    variances: Tensor

    def __post_init__(self):
        means = torch.as_tensor(self.means, dtype=torch.float64).detach().cpu()
        if means.ndim == 1:
            means = means[None]
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        K, D = means.shape
        weights = torch.as_tensor(self.weights, dtype=torch.float64).detach().cpu().reshape(-1)
        if weights.numel() != K or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {K} non-negative numbers with a positive sum, got {weights.tolist()}")
        variances = torch.as_tensor(self.variances, dtype=torch.float64).detach().cpu()
        if variances.ndim == 1 and variances.numel() == K:
            variances = variances[:, None]
        try:
            variances = variances.expand(K, D).clone()
        except RuntimeError:
            raise ValueError(f"variances must be a scalar, (K,) or (K, D) = ({K}, {D}), "
                             f"got shape {tuple(variances.shape)}") from None
        if not (variances > 0).all() or not torch.isfinite(variances).all():
            raise ValueError("variances must be positive and finite")
        object.__setattr__(self, "weights", weights / weights.sum())
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "variances", variances)

    @property
    def K(self) -> int:
        """Number of components."""
        return self.means.shape[0]

    @property
    def D(self) -> int:
        """Dimension of a data point."""
        return self.means.shape[1]

    def mean(self) -> Tensor:
        """E[x_0], float64 (D,)."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """Cov[x_0] = sum_k w_k (diag(var_k) + mu_k mu_k^T) - E[x_0] E[x_0]^T, float64 (D, D)."""
        m = self.mean()
        second = torch.einsum("k,ki,kj->ij", self.weights, self.means, self.means)
        return second + torch.diag(self.weights @ self.variances) - torch.outer(m, m)

    def noised(self, scale: float, noise_std: float) -> "GaussianMixture":
        """The law of scale x_0 + noise_std eps: components N(scale mu_k, scale^2 var_k + noise_std^2).

        (scale, noise_std) = (sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) gives q_t (eq-q-xt-x0);
        (1, sigma) the data blurred by N(0, sigma^2 I) (chapter "scores", eq-dsm).
        """
        return GaussianMixture(self.weights, scale * self.means, scale**2 * self.variances + noise_std**2)

    def sample(self, n: int, generator: torch.Generator | None = None, dtype=torch.float64,
               device=None) -> Tensor:
        """n independent draws, shape (n, D): a component k ~ w, then mu_k + sqrt(var_k) z."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        x = self.means[k] + self.variances[k].sqrt() * z
        return x.to(device=device, dtype=dtype)

    def _flat(self, x: Tensor) -> Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 1:
            raise ValueError("x must be a floating-point tensor of shape (N, ...)")
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.D:
            raise ValueError(f"x must have D = {self.D} elements per example, got shape {tuple(x.shape)}")
        return flat

    def _component_terms(self, flat: Tensor):
        """Per component: log w_k + log N(x; mu_k, var_k) (N, K) and (x - mu_k)/var_k (N, K, D)."""
        mu = self.means.to(flat)
        var = self.variances.to(flat)
        diff = flat[:, None, :] - mu[None]
        log_norm = -0.5 * (diff**2 / var + torch.log(2 * math.pi * var)).sum(-1)
        return self.weights.to(flat).log() + log_norm, diff / var

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), shape (N,), for x (N, ...) with D elements per example."""
        log_joint, _ = self._component_terms(self._flat(x))
        return torch.logsumexp(log_joint, dim=1)

    def score(self, x: Tensor) -> Tensor:
        """grad_x log p(x) = -sum_k r_k(x) (x - mu_k)/var_k, shaped like x (chapter "scores")."""
        log_joint, slope = self._component_terms(self._flat(x))
        r = torch.softmax(log_joint, dim=1)
        return -(r[:, :, None] * slope).sum(1).reshape(x.shape)

    def denoise(self, x_t: Tensor, scale, noise_std) -> Denoised:
        """E[x_0 | x_t], E[eps | x_t] and grad log q_t(x_t) for x_t = scale x_0 + noise_std eps.

        Implements the module docstring's formulas (the ideal x0_hat, eps_hat and score; chapter
        "objectives", eq-score-from-eps). ``scale``, ``noise_std``: floats, or tensors with one
        entry per example (B,) or (B, 1, ..., 1); x_t (B, ...) with D elements per example.
        """
        flat = self._flat(x_t)
        a = torch.as_tensor(scale, dtype=flat.dtype, device=flat.device).reshape(-1, 1, 1)
        sd = torch.as_tensor(noise_std, dtype=flat.dtype, device=flat.device).reshape(-1, 1, 1)
        if a.shape[0] not in (1, flat.shape[0]) or sd.shape[0] not in (1, flat.shape[0]):
            raise ValueError(f"scale and noise_std need 1 or B = {flat.shape[0]} entries")
        mu = self.means.to(flat)[None]          # (1, K, D)
        var = self.variances.to(flat)[None]
        v = a**2 * var + sd**2                   # (B or 1, K, D): variance of x_t given k
        diff = flat[:, None, :] - a * mu         # (B, K, D)
        log_joint = self.weights.to(flat).log() - 0.5 * (diff**2 / v + torch.log(2 * math.pi * v)).sum(-1)
        r = torch.softmax(log_joint, dim=1)[:, :, None]
        slope = diff / v
        x0_hat = (r * (mu + a * var * slope)).sum(1)
        eps_hat = (r * sd * slope).sum(1)
        score = -(r * slope).sum(1)
        return Denoised(x0_hat.reshape(x_t.shape), eps_hat.reshape(x_t.shape), score.reshape(x_t.shape))


def gmm_sample(n: int, weights, means, variances, generator: torch.Generator | None = None,
               dtype=torch.float64, device=None) -> Tensor:
    """n draws (n, D) from the mixture sum_k w_k N(mu_k, diag(var_k)) (see :class:`GaussianMixture`)."""
    return GaussianMixture(weights, means, variances).sample(n, generator, dtype, device)


def _output(d: Denoised, a, sd, target: str) -> Tensor:
    """The exact output for ``target``: the mixture's own score (finite even where sd = 0), else
    :func:`dlib.objectives.target_from_coeffs` of the exact (x0_hat, eps_hat)."""
    return d.score if target == "score" else target_from_coeffs(a, sd, d.x0_hat, d.eps_hat, target)


def exact_model(mixture: GaussianMixture, schedule: Schedule, target: str = "eps"):
    """The ideal network for discrete timesteps: ``model(x_t, t)`` -> output for ``target``.

    x_t: (B, ...) float with D elements per example; t: int or int64 (B,) in 1..T. Returns the
    exact E[eps | x_t] ("eps"), E[x_0 | x_t] ("x0"), score ("score"), v = a eps_hat - s x0_hat
    ("v") or cat([x0_hat, eps_hat], dim=1) ("x0_eps"), for q(x_t | x_0) of ``schedule``
    (:func:`dlib.objectives.target_from_coeffs` of the exact pair). The function's ``target``
    attribute declares it, as a trained network's does.
    """
    check_target(target)

    def model(x_t: Tensor, t) -> Tensor:
        alpha_bar = schedule.gather(schedule.alpha_bars, t, x_t)
        a, sd = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
        d = mixture.denoise(x_t, a, sd)
        return _output(d, a, sd, target)

    model.target = target
    return model


def exact_angular_model(mixture: GaussianMixture, T: int = 1000, target: str = "x0_eps"):
    """The ideal network in angle time (chapter "angular", eq-angular-x): ``model(x, t)``.

    t: float (or int) tensor (B,) or scalar on the 0..T scale, read as phi = t pi / (2T), and x
    as cos(phi) x_0 + sin(phi) eps; this matches :func:`dlib.samplers.angular_sample` on
    ``schedules.angular(T)``. Outputs as in :func:`exact_model`, with a = cos(phi), s = sin(phi).
    """
    check_target(target)
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")

    def model(x: Tensor, t) -> Tensor:
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if tt.ndim == 0:
            tt = tt.expand(x.shape[0])
        if tt.ndim != 1 or tt.shape[0] != x.shape[0]:
            raise ValueError(f"t must be a scalar or have shape (B,) with B = {x.shape[0]}, got {tuple(tt.shape)}")
        if (tt < 0).any() or (tt > T).any():
            raise ValueError(f"t must lie in [0, T] = [0, {T}]")
        phi = (tt * (math.pi / (2 * T))).reshape(-1, *([1] * (x.ndim - 1)))
        a, sd = torch.cos(phi), torch.sin(phi)
        d = mixture.denoise(x, a, sd)
        return _output(d, a, sd, target)

    model.target = target
    return model
