"""The Gaussian forward process, its posterior and the variational bound.

Chapter "forward":    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)     (eq-q-xt-x0)
Chapter "posterior":  q(x_{t-1} | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, beta_tilde_t) (eq-posterior-mean)
Chapter "elbo":       -log p(x_0) <= L_T + sum_{t=2..T} L_{t-1} + L_0                    (eq-elbo-posterior)

Timesteps are t = 1..T; schedule arrays have length T+1 with index 0 the clean data.
"""
from __future__ import annotations

import math

import torch

from .schedules import Schedule

Tensor = torch.Tensor


def _as_tensor(value, dtype: torch.dtype, device) -> Tensor:
    """A tensor in ``dtype`` on ``device``; Python numbers are converted straight to ``dtype`` (no float32 detour)."""
    if isinstance(value, Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.tensor(value, dtype=dtype, device=device)


def _check_pair(x0: Tensor, other: Tensor, name: str) -> None:
    if other.shape != x0.shape:
        raise ValueError(f"{name} must have the shape of x0 {tuple(x0.shape)}, got {tuple(other.shape)}")


def q_sample(schedule: Schedule, x0: Tensor, t, eps: Tensor) -> Tensor:
    """Sample x_t ~ q(x_t | x_0) by reparameterization (chapter "forward", eq-q-xt-x0).

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps

    Args:
        schedule: the noise schedule.
        x0: clean data, shape (B, ...) (images: (B, C, H, W) in [-1, 1]).
        t: int or int64 tensor (B,), values in 1..T (0 returns x0).
        eps: standard normal noise with the shape of ``x0``.
    Returns:
        x_t, shape and dtype of ``x0``.
    """
    _check_pair(x0, eps, "eps")
    a = schedule.gather(schedule.alpha_bars, t, x0, allow_zero=True)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * eps


def q_posterior(schedule: Schedule, x0: Tensor, x_t: Tensor, t) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) (chapter "posterior", eq-posterior-mean, eq-beta-tilde).

    mean = coef_x0[t] x_0 + coef_xt[t] x_t,  variance = beta_tilde_t, with

    coef_x0[t] = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t),
    coef_xt[t] = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t),

    computed once by the schedule (``schedule.coef_x0``, ``schedule.coef_xt``, ``schedule.beta_tildes``).

    Args:
        schedule: the noise schedule.
        x0, x_t: (B, ...) tensors of the same shape and dtype.
        t: int or int64 tensor (B,), values in 1..T.
    Returns:
        mean (B, ...) and variance of shape (B, 1, ..., 1) (broadcastable), in x0's dtype.
    """
    _check_pair(x0, x_t, "x_t")
    mean = schedule.gather(schedule.coef_x0, t, x0) * x0 + schedule.gather(schedule.coef_xt, t, x0) * x_t
    return mean, schedule.gather(schedule.beta_tildes, t, x0)


def normal_kl(mean1, var1, mean2, var2) -> Tensor:
    """Elementwise KL(N(mean1, var1) || N(mean2, var2)) in nats (chapter "elbo", eq-kl-gauss).

    KL = 0.5 (log(var2 / var1) + (var1 + (mean1 - mean2)^2) / var2 - 1)

    Arguments are tensors or floats that broadcast together; variances must be > 0 (ValueError
    otherwise). The result has the broadcast shape and the promoted floating dtype (at least the
    default dtype).
    """
    # Python numbers adopt the tensors' dtype; numpy values count as tensors
    args = [v if isinstance(v, (int, float)) else torch.as_tensor(v) for v in (mean1, var1, mean2, var2)]
    dtype, device = torch.get_default_dtype(), None
    for v in args:
        if isinstance(v, Tensor):
            device = v.device if device is None or v.ndim > 0 else device
            if v.is_floating_point():
                dtype = torch.promote_types(dtype, v.dtype)
    mean1, var1, mean2, var2 = (_as_tensor(v, dtype, device) for v in args)
    if (var1 <= 0).any() or (var2 <= 0).any():
        raise ValueError("normal_kl: variances must be > 0")
    return 0.5 * (torch.log(var2) - torch.log(var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1.0)


def prior_kl(schedule: Schedule, x0: Tensor) -> Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, in nats (chapter "elbo", eq-prior-term).

    q(x_T | x_0) = N(sqrt(alpha_bar_T) x_0, (1 - alpha_bar_T) I) (eq-q-xt-x0); the elementwise KLs
    (eq-kl-gauss) are summed over the non-batch dims. x0: (B, ...). Returns (B,) in x0's dtype.
    """
    a = schedule.alpha_bars[-1].item()
    return _per_example(normal_kl(math.sqrt(a) * x0, 1.0 - a, 0.0, 1.0))


def _per_example(values: Tensor) -> Tensor:
    """Sum over every dim but the first: (B, ...) -> (B,)."""
    return values.reshape(values.shape[0], -1).sum(1)


def _log_normal_mass(lo: Tensor, hi: Tensor) -> Tensor:
    """log(Phi(hi) - Phi(lo)) for standardized bounds lo < hi, stable in both tails.

    On the upper side (lo > 0) the symmetric form Phi(-lo) - Phi(-hi) is used, so the two
    log-CDFs never round to the same number; lo = -inf or hi = +inf gives an open bin.
    """
    upper = lo > 0
    a = torch.where(upper, -hi, lo)
    b = torch.where(upper, -lo, hi)
    log_b = torch.special.log_ndtr(b)
    log_a = torch.special.log_ndtr(a)
    # log(e^log_b - e^log_a) = log_b + log(1 - e^(log_a - log_b)), with log_a < log_b
    diff = (log_a - log_b).clamp(max=-1e-300)
    return log_b + torch.log(-torch.expm1(diff)).clamp(min=-1e4)


def discretized_gaussian_log_likelihood(x0: Tensor, mean, log_scale) -> Tensor:
    """log P(x0) under a Gaussian discretized to the 256 levels of 8-bit data (chapter "elbo", eq-decoder-term).

    The levels are x = k / 127.5 - 1 (k = 0..255) and each owns the bin [x - 1/255, x + 1/255]:

        P(x0) = Phi((x0 + 1/255 - mean) / sigma) - Phi((x0 - 1/255 - mean) / sigma),  sigma = exp(log_scale),

    with the outer bins open: x0 = -1 takes all the mass below -1 + 1/255 and x0 = 1 all the mass
    above 1 - 1/255, so the 256 probabilities sum to 1. Computed from log-CDFs in float64, so
    bins far in a tail give large finite negative numbers instead of -inf.

    Args:
        x0: data in [-1, 1] on the 8-bit grid, shape (B, ...).
        mean, log_scale: tensors or floats broadcastable to x0 (log_scale is the log of the std).
    Returns:
        elementwise log-probabilities in nats, shape of x0, dtype of x0.
    Raises:
        ValueError: when x0 has values outside [-1, 1].
    """
    if x0.numel() and (x0.min() < -1 - 1e-6 or x0.max() > 1 + 1e-6):
        raise ValueError(f"discretized_gaussian_log_likelihood: x0 must lie in [-1, 1], got values in "
                         f"[{x0.min().item():.4g}, {x0.max().item():.4g}]")
    x = x0.to(torch.float64)
    m = _as_tensor(mean, torch.float64, x0.device)
    inv_std = torch.exp(-_as_tensor(log_scale, torch.float64, x0.device))
    half = 1.0 / 255.0
    lo = torch.where(x < -1 + half, torch.full_like(x, -math.inf), x - half)
    hi = torch.where(x > 1 - half, torch.full_like(x, math.inf), x + half)
    lo, hi = (lo - m) * inv_std, (hi - m) * inv_std
    return _log_normal_mass(lo, hi).to(x0.dtype)


def gaussian_log_likelihood(x0: Tensor, mean, variance) -> Tensor:
    """Elementwise log N(x0; mean, variance) in nats: the continuous decoder of eq-decoder-term (chapter "elbo").

    Args:
        x0: (B, ...) any real values. mean, variance: broadcastable to x0, variance > 0.
    """
    var = _as_tensor(variance, x0.dtype, x0.device)
    if (var <= 0).any():
        raise ValueError("gaussian_log_likelihood: variance must be > 0")
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x0 - mean) ** 2 / var)


def _batch_t(schedule: Schedule, t, x0: Tensor) -> Tensor:
    """t as an int64 (B,) tensor on x0's device, checked against 1..T and the batch size of x0."""
    tt = schedule.check_t(t)
    if tt.ndim == 0:
        tt = tt.expand(x0.shape[0])
    if tt.ndim != 1 or tt.shape[0] != x0.shape[0]:
        raise ValueError(f"t must be a scalar or have shape (B,) with B = {x0.shape[0]} (the batch of x0), "
                         f"got shape {tuple(tt.shape)}")
    return tt.to(x0.device)


def vlb_term(schedule: Schedule, x0: Tensor, x_t: Tensor, t, model_mean: Tensor, model_variance,
             decoder: str = "discretized") -> Tensor:
    """One term of the bound per example, in nats (chapter "elbo", eq-kl-term and eq-decoder-term).

    For t >= 2:  L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || N(model_mean, model_variance))   (eq-kl-term, eq-kl-gauss),
    summed over the non-batch dims. For t = 1:  L_0 = -log p(x_0 | x_1)   (eq-decoder-term), where p(x_0 | x_1) is
    the discretized Gaussian of :func:`discretized_gaussian_log_likelihood` with
    log_scale = 0.5 log(model_variance) (``decoder="discretized"``, 8-bit data in [-1, 1]) or the
    continuous density N(x_0; model_mean, model_variance) (``decoder="gaussian"``).

    Args:
        x0, x_t, model_mean: (B, ...) tensors of the same shape.
        t: int or int64 tensor (B,) in 1..T; a batch may mix t = 1 and t >= 2.
        model_variance: tensor or float broadcastable to x0 (e.g. (B, 1, ..., 1)), > 0.
        decoder: "discretized" or "gaussian".
    Returns:
        (B,) tensor in nats, dtype of x0.
    """
    if decoder not in ("discretized", "gaussian"):
        raise ValueError(f"decoder must be 'discretized' or 'gaussian', got {decoder!r}")
    _check_pair(x0, x_t, "x_t")
    _check_pair(x0, model_mean, "model_mean")
    tt = _batch_t(schedule, t, x0)
    var = _as_tensor(model_variance, x0.dtype, x0.device)
    if (var <= 0).any() or torch.isnan(var).any():
        raise ValueError("model_variance must be > 0")
    var = var.expand_as(x0)
    mean, post_var = q_posterior(schedule, x0, x_t, tt)
    # beta_tilde_1 = 0: the KL is undefined at t = 1 and replaced by the decoder term below
    first = (tt == 1).reshape(post_var.shape)
    post_var = torch.where(first, torch.ones_like(post_var), post_var)
    kl = _per_example(normal_kl(mean, post_var.expand_as(x0), model_mean, var))
    if decoder == "discretized":
        log_p = discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * torch.log(var))
    else:
        log_p = gaussian_log_likelihood(x0, model_mean, var)
    nll = -_per_example(log_p)
    return torch.where(tt == 1, nll.to(kl.dtype), kl).to(x0.dtype)


def block_draws(schedule: Schedule, x0: Tensor, blocks, generator: torch.Generator | None = None):
    """The draws of the stratified bound estimate (chapter "ddpm", eq-stratified-bound), block by block.

    For each block ``(lo, hi)`` of timesteps (hi exclusive) yields ``(t, x_t, hi - lo)``: t (b,) int64,
    equal to lo for a one-step block and otherwise drawn uniformly in lo..hi-1 for each example,
    then x_t ~ q(x_t | x_0) (eq-q-xt-x0) with fresh noise. The draws come from ``generator`` (on its
    device) in this order, so two estimators that walk the same blocks draw the same t and x_t.
    x0: (b, ...).
    """
    noise_device = generator.device if generator is not None else x0.device
    for lo, hi in blocks:
        if hi - lo == 1:
            t = torch.full((x0.shape[0],), lo, dtype=torch.long, device=x0.device)
        else:   # one t per example, uniform in the block
            t = lo + torch.randint(hi - lo, (x0.shape[0],), generator=generator, device=noise_device).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=noise_device).to(x0.device)
        yield t, q_sample(schedule, x0, t, eps), hi - lo


def nll_bits_per_dim(model, schedule: Schedule, x0: Tensor, generator: torch.Generator | None = None,
                     batch_size: int | None = None, decoder: str = "discretized",
                     progress: bool = True, stride: int = 1) -> dict:
    """The variational bound on -log p(x_0) in bits per dimension, term by term (chapter "ddpm", eq-bits-per-dim).

    bound(x_0) = L_T + sum_{t=2..T} L_{t-1} + L_0   (eq-elbo-posterior), every t = 1..T evaluated at a
    single draw x_t ~ q(x_t | x_0) (an unbiased one-sample estimate of each expectation), then
    divided by D log 2 with D the number of dims per example.

    The model contract: ``model(x_t, t) -> (mean, variance)`` with x_t of shape (b, ...) and t an
    int64 (b,) tensor (equal entries unless ``stride`` > 1); ``mean`` (b, ...) and ``variance``
    (broadcastable, > 0) are the parameters of p(x_{t-1} | x_t) (at t = 1, of the decoder p(x_0 | x_1)).
    :func:`dlib.reverse.reverse_gaussian` turns an eps/x0/score/v network into this form. It is called
    under ``torch.no_grad()``.

    Args:
        x0: 8-bit data in [-1, 1], (B, ...).
        generator: torch.Generator for the noise draws (its device is used for drawing).
        batch_size: examples per model call (default: all B at once).
        decoder: "discretized" (8-bit data) or "gaussian", see :func:`vlb_term`.
        progress: show a tqdm bar over the timesteps.
        stride: 1 evaluates every t. k > 1 estimates the sum of the KL terms from about T/k of them
            (chapter "ddpm", eq-stratified-bound): t = 2..T is cut into blocks of k consecutive steps,
            one t is drawn uniformly in each block for each example (from ``generator``) and its term
            counts (block length) times; L_0 (t = 1) is always evaluated. The estimate is unbiased.
    Returns:
        dict of float64 tensors in bits/dim: ``total`` (B,), ``prior`` (B,) = L_T, ``decoder`` (B,) = L_0,
        and ``terms`` (B, T) whose column j is L_j (j = 0 the decoder, j >= 1 the KL term L_j at t = j+1);
        with stride 1, ``total = prior + terms.sum(1)``. With stride k > 1, unevaluated columns are nan and
        ``total = prior + decoder + sum over evaluated t of (block length) x term``.
    """
    from tqdm.auto import tqdm

    if x0.ndim < 1 or x0.shape[0] == 0:
        raise ValueError(f"x0 must have shape (B, ...) with B >= 1, got {tuple(x0.shape)}")
    B, D = x0.shape[0], x0[0].numel()
    batch_size = B if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if decoder == "discretized" and (x0.min() < -1 - 1e-6 or x0.max() > 1 + 1e-6):
        raise ValueError(f"nll_bits_per_dim: 8-bit data x0 must lie in [-1, 1], got values in "
                         f"[{x0.min().item():.4g}, {x0.max().item():.4g}]")
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    scale = 1.0 / (D * math.log(2.0))
    terms = torch.full((B, schedule.T), 0.0 if stride == 1 else float("nan"), dtype=torch.float64, device=x0.device)
    counts = torch.zeros(B, schedule.T, dtype=torch.float64, device=x0.device)
    blocks = [(lo, min(lo + stride, schedule.T + 1)) for lo in range(2, schedule.T + 1, stride)]
    bar = tqdm(total=(1 + len(blocks)) * math.ceil(B / batch_size), desc="bound", disable=not progress)
    for start in range(0, B, batch_size):
        xb = x0[start:start + batch_size]
        rows = torch.arange(start, start + xb.shape[0], device=x0.device)
        for t, x_t, count in block_draws(schedule, xb, [(1, 2)] + blocks, generator):
            with torch.no_grad():
                mean, var = model(x_t, t)
            if mean.shape != xb.shape:
                raise ValueError(f"model mean must have the shape of x_t {tuple(xb.shape)}, got {tuple(mean.shape)}")
            term = vlb_term(schedule, xb, x_t, t, mean, var, decoder=decoder)
            terms[rows, t - 1] = term.to(torch.float64) * scale
            counts[rows, t - 1] = count
            bar.update(1)
    bar.close()
    prior = prior_kl(schedule, x0).to(torch.float64) * scale
    total = prior + (terms.nan_to_num() * counts).sum(1)
    return {"total": total, "prior": prior, "decoder": terms[:, 0].clone(), "terms": terms}
