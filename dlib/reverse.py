"""The learned reverse process p_theta(x_{t-1} | x_t) as a Gaussian, from any trained network.

A network predicts one target (eps, x0, score, v or the joint x0_eps) at (x_t, t). DDPM turns that
prediction into a Gaussian reverse step (chapter "ddpm", eq-ddpm-mean and eq-ddpm-variance):

    mean     = posterior mean with x0_hat in place of x_0  (chapter "posterior", eq-posterior-mean)
    variance = sigma_t^2, fixed: beta_tilde_t (``"beta_tilde"``) or beta_t (``"beta"``).

:func:`reverse_gaussian` wraps a network into the callable ``(x_t, t) -> (mean, variance)`` that
:func:`dlib.diffusion.nll_bits_per_dim` evaluates the bound with. The ancestral sampler
:func:`dlib.samplers.ddpm_sample` takes the same step with a normal draw added.
"""
from __future__ import annotations

import torch

from .diffusion import q_posterior
from .objectives import predictions, resolve_target
from .schedules import Schedule


def reverse_gaussian(model, schedule: Schedule, target: str | None = None, variance: str = "beta_tilde",
                     clip_x0: float | None = None):
    """p_theta(x_{t-1} | x_t) = N(mean, sigma_t^2 I) of a network (chapter "ddpm", eq-ddpm-mean).

        x0_hat, eps_hat = the network's prediction turned into both forms (chapter "objectives")
        mean = coef_x0[t] x0_hat + coef_xt[t] x_t                       (eq-posterior-mean)
        sigma_t^2 = schedule.reverse_variances(variance)[t]               (eq-ddpm-variance)

    At t = 1 the mean is x0_hat itself (coef_x0 = 1, coef_xt = 0) and N(mean, sigma_1^2) is the
    decoder of the bound's L_0 term.

    Args:
        model: callable ``model(x_t (B, C, H, W), t int64 (B,)) -> output`` for ``target``.
        target: what the network predicts; default its ``target`` attribute (dlib U-Nets have one).
        variance: ``"beta_tilde"`` or ``"beta"``.
        clip_x0: clamp x0_hat to [-clip_x0, clip_x0] before taking the mean (None: no clamp).
    Returns:
        ``f(x_t, t) -> (mean (B, C, H, W), variance (B, 1, 1, 1))`` in x_t's dtype; t is an int or
        an int64 (B,) tensor in 1..T. It runs the network under ``torch.no_grad()``.
    """
    target = resolve_target(model, target, default=None)
    sigma2 = schedule.reverse_variances(variance)
    # a float32 network evaluated on float64 data: feed it its own dtype, return x_t's
    parameter = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    dtype = parameter.dtype if parameter is not None else None

    def p_mean_variance(x_t: torch.Tensor, t):
        tt = schedule.check_t(t)
        if tt.ndim > 1 or (tt.ndim == 1 and tt.shape[0] != x_t.shape[0]):
            raise ValueError(f"t must be an int or have shape (B,) with B = {x_t.shape[0]}, got {tuple(tt.shape)}")
        tt = tt.expand(x_t.shape[0]).to(x_t.device)
        with torch.no_grad():
            output = model(x_t.to(dtype or x_t.dtype), tt)
        output = output.to(x_t.dtype) if torch.is_tensor(output) else tuple(o.to(x_t.dtype) for o in output)
        x0_hat, _ = predictions(schedule, x_t, tt, output, target)
        if clip_x0 is not None:
            x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        mean, _ = q_posterior(schedule, x0_hat, x_t, tt)
        return mean, schedule.gather(sigma2, tt, x_t)

    return p_mean_variance
