"""Noise schedules (book chapter "forward", equations ``eq-alpha-bar`` and ``eq-snr``).

Every schedule is a :class:`Schedule`: float64 tensors indexed by the timestep t = 0..T, so each
has length T+1 and index 0 is the clean data (beta_0 = 0, alpha_0 = 1, alpha_bar_0 = 1)::

    alpha_t     = 1 - beta_t                                   (eq-alpha-bar)
    alpha_bar_t = prod_{s=1..t} alpha_s                        (eq-alpha-bar)
    SNR(t)      = alpha_bar_t / (1 - alpha_bar_t)              (eq-snr)

Everything else the chapters derive from these arrays is computed once, in float64, when the
schedule is built (improved-diffusion does the same in its constructor), and read from there by
:mod:`dlib.diffusion`, :mod:`dlib.objectives`, :mod:`dlib.reverse` and :mod:`dlib.samplers`::

    beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t            (chapter "posterior", eq-beta-tilde)
    coef_x0[t]   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t)            (eq-posterior-mean)
    coef_xt[t]   = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)     (eq-posterior-mean)
    sigma_t^2    = beta_tilde_t or beta_t, the reverse variances               (chapter "ddpm", eq-ddpm-variance)

Constructors: :func:`linear` (Ho et al. 2020), :func:`cosine` (Nichol & Dhariwal 2021),
:func:`angular` (Zhang et al. 2023: alpha_bar_t = cos^2(pi t / 2T)), :func:`from_betas`,
:func:`from_alpha_bars`, and :func:`from_config` for the ``schedule:`` section of a training config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

Tensor = torch.Tensor

#: The reverse-process variances sigma_t^2 a sampler or the bound can use (chapter "ddpm", eq-ddpm-variance).
VARIANCES = ("beta_tilde", "beta")
#: Schedule kinds that :func:`from_config` builds, with the keyword arguments each accepts.
KINDS = {"linear": ("T", "beta_start", "beta_end"), "cosine": ("T", "s", "max_beta"), "angular": ("T", "max_beta")}


def _as_float64(values, name: str) -> Tensor:
    x = torch.as_tensor(values, dtype=torch.float64).detach().cpu().clone()
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


@dataclass(frozen=True)
class Schedule:
    """A discrete variance schedule with T steps (chapter "forward", eq-alpha-bar).

    Attributes (all float64 tensors of length T+1, index t = 0..T):
        betas: betas[0] = 0 and betas[t] in (0, 1) for t = 1..T.
        name: a label for plots.
        alphas, alpha_bars: 1 - beta_t and their running product (eq-alpha-bar).
        beta_tildes: the posterior variances (chapter "posterior", eq-beta-tilde); beta_tilde_0 = 0.
        coef_x0, coef_xt: the weights of x_0 and x_t in the posterior mean (eq-posterior-mean);
            index 0 is unused (nan).
    """

    betas: Tensor
    name: str = "custom"
    alphas: Tensor = field(init=False, repr=False)
    alpha_bars: Tensor = field(init=False, repr=False)
    beta_tildes: Tensor = field(init=False, repr=False)
    coef_x0: Tensor = field(init=False, repr=False)
    coef_xt: Tensor = field(init=False, repr=False)
    _reverse: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        betas = _as_float64(self.betas, "betas")
        if betas.numel() < 2:
            raise ValueError("a schedule needs T >= 1: betas must have length T+1 >= 2")
        if betas[0] != 0:
            raise ValueError(f"betas[0] must be 0 (index 0 is the clean data), got {betas[0].item()}")
        inner = betas[1:]
        if not ((inner > 0) & (inner < 1)).all():
            bad = int(torch.nonzero(~((inner > 0) & (inner < 1)))[0]) + 1
            raise ValueError(f"betas must lie in (0, 1) for t = 1..T; beta_{bad} = {betas[bad].item()}")
        alphas = 1.0 - betas
        a = torch.cumprod(alphas, dim=0)
        beta_tildes = torch.zeros_like(betas)
        beta_tildes[1:] = (1.0 - a[:-1]) / (1.0 - a[1:]) * betas[1:]                # eq-beta-tilde
        coef_x0 = torch.full_like(a, float("nan"))
        coef_xt = torch.full_like(a, float("nan"))
        coef_x0[1:] = a[:-1].sqrt() * betas[1:] / (1.0 - a[1:])                    # eq-posterior-mean
        coef_xt[1:] = alphas[1:].sqrt() * (1.0 - a[:-1]) / (1.0 - a[1:])
        # reverse variances sigma_t^2 (eq-ddpm-variance); at t = 1, beta_tilde_1 = 0 would make the
        # decoder p(x_0 | x_1) a point mass, so the "beta_tilde" choice uses beta_1 there.
        reverse = {"beta": betas.clone(), "beta_tilde": beta_tildes.clone()}
        reverse["beta_tilde"][1] = betas[1]
        for value in reverse.values():
            value[0] = float("nan")
        for name, value in (("betas", betas), ("alphas", alphas), ("alpha_bars", a), ("beta_tildes", beta_tildes),
                            ("coef_x0", coef_x0), ("coef_xt", coef_xt), ("_reverse", reverse)):
            object.__setattr__(self, name, value)

    def reverse_variances(self, variance: str = "beta_tilde") -> Tensor:
        """sigma_t^2 for t = 0..T (chapter "ddpm", eq-ddpm-variance); index 0 unused (nan).

        ``"beta"``: sigma_t^2 = beta_t, the variance of q(x_t | x_{t-1}). ``"beta_tilde"``:
        sigma_t^2 = beta_tilde_t (chapter "posterior", eq-beta-tilde) for t >= 2 and beta_1 at t = 1,
        where beta_tilde_1 = 0 would make the decoder p(x_0 | x_1) a point mass. float64, length T+1;
        a view of the schedule's own array (do not modify it).
        """
        if variance not in VARIANCES:
            raise ValueError(f"unknown variance {variance!r}; expected one of {VARIANCES}")
        return self._reverse[variance]

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.betas.numel() - 1

    def __len__(self) -> int:
        return self.T + 1

    def check_t(self, t, allow_zero: bool = False) -> Tensor:
        """Validate integer timesteps and return them as an int64 tensor.

        Args:
            t: int or integer tensor of any shape, each entry in 1..T (0..T with ``allow_zero``).
        Raises:
            ValueError: when a timestep is not an integer or lies outside the range.
        """
        tt = torch.as_tensor(t)
        if tt.is_floating_point() or tt.is_complex() or tt.dtype == torch.bool:
            raise ValueError(f"timesteps must be integers, got dtype {tt.dtype}")
        tt = tt.long()
        lo = 0 if allow_zero else 1
        if tt.numel() and (tt.min() < lo or tt.max() > self.T):
            raise ValueError(
                f"timestep t must lie in {lo}..{self.T} (T = {self.T}); got values in "
                f"{tt.min().item()}..{tt.max().item()}"
            )
        return tt

    def gather(self, values: Tensor, t, like: Tensor, allow_zero: bool = False) -> Tensor:
        """``values[t]`` reshaped to broadcast against ``like`` (shape (B, 1, ..., 1)).

        Args:
            values: a (T+1,) tensor of this schedule (e.g. ``self.alpha_bars``).
            t: int or int tensor of shape (B,) with B = like.shape[0].
            like: the batch the result multiplies; its dtype and device are used.
        """
        tt = self.check_t(t, allow_zero=allow_zero)
        if tt.ndim == 0:
            tt = tt.expand(like.shape[0])
        if tt.ndim != 1 or tt.shape[0] != like.shape[0]:
            raise ValueError(
                f"t must be a scalar or have shape (B,) with B = {like.shape[0]}, got shape {tuple(tt.shape)}"
            )
        out = values[tt.cpu()].to(device=like.device, dtype=like.dtype)
        return out.reshape(-1, *([1] * (like.ndim - 1)))

    def snr(self, t) -> Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (eq-snr); t in 0..T (SNR(0) = inf), float64."""
        a = self.alpha_bars[self.check_t(t, allow_zero=True)]
        return a / (1.0 - a)

    def log_snr(self, t) -> Tensor:
        """log SNR(t) = log alpha_bar_t - log(1 - alpha_bar_t) (eq-snr), computed stably, float64."""
        a = self.alpha_bars[self.check_t(t, allow_zero=True)]
        return torch.log(a) - torch.log1p(-a)

    def to_dict(self) -> dict:
        """A JSON-able description (name, T and the betas) for checkpoints and manifests."""
        return {"name": self.name, "T": self.T, "betas": self.betas[1:].tolist()}


def from_betas(betas, name: str = "custom") -> Schedule:
    """A schedule from beta_1..beta_T (length T) or beta_0..beta_T (length T+1 with beta_0 = 0)."""
    b = _as_float64(betas, "betas")
    if b.numel() >= 1 and b[0] != 0:
        b = torch.cat([torch.zeros(1, dtype=torch.float64), b])
    return Schedule(b, name)


def from_alpha_bars(alpha_bars, name: str = "custom", max_beta: float = 0.999) -> Schedule:
    """A schedule from alpha_bar_0..alpha_bar_T (alpha_bar_0 = 1, strictly decreasing).

    beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} (eq-alpha-bar inverted), clipped at ``max_beta``
    so that a schedule ending at alpha_bar_T = 0 stays valid.
    """
    a = _as_float64(alpha_bars, "alpha_bars")
    if a.numel() < 2 or abs(a[0].item() - 1.0) > 1e-12:
        raise ValueError("alpha_bars must have length T+1 >= 2 and start at alpha_bar_0 = 1")
    if (a[1:] >= a[:-1]).any() or (a < 0).any():
        raise ValueError("alpha_bars must be non-negative and strictly decreasing in t")
    betas = torch.zeros_like(a)
    betas[1:] = (1.0 - a[1:] / a[:-1]).clamp(max=max_beta)
    return Schedule(betas, name)


def linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """Ho et al. (2020): beta_t linear from ``beta_start`` (t=1) to ``beta_end`` (t=T).

    For T other than 1000 the endpoints are used as given (no rescaling).
    """
    _check_T(T)
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return from_betas(betas, name=f"linear(T={T})")


def cosine(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal (2021): alpha_bar_t = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2).

    beta_t = 1 - alpha_bar_t/alpha_bar_{t-1} is clipped at ``max_beta`` (near t = T it would reach 1).
    """
    _check_T(T)
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    return from_alpha_bars(f / f[0], name=f"cosine(T={T})", max_beta=max_beta)


def angular_phi(T: int) -> Tensor:
    """The angles phi_t = (t / T) pi/2, t = 0..T (Zhang et al. 2023, eq. 9, who call it eta), float64 (T+1,)."""
    _check_T(T)
    return torch.arange(T + 1, dtype=torch.float64) / T * (math.pi / 2)


def angular(T: int = 1000, max_beta: float = 0.999) -> Schedule:
    """Zhang et al. (2023): x_t = cos(phi_t) x_0 + sin(phi_t) eps, so alpha_bar_t = cos^2(phi_t) (chapter "angular", eq-angular-schedule).

    The endpoint: at t = T the angle is pi/2 and alpha_bar_T = 0, which would need beta_T = 1
    (outside (0, 1)). As for the cosine schedule, beta_T is clipped at ``max_beta``; the discrete
    schedule then ends at alpha_bar_T = (1 - max_beta) alpha_bar_{T-1} > 0 instead of 0. The
    angular sampler works with the angles (:func:`angular_phi`) and starts from phi = pi/2 exactly.
    """
    a = torch.cos(angular_phi(T)) ** 2
    a[-1] = 0.0
    return from_alpha_bars(a, name=f"angular(T={T})", max_beta=max_beta)


def from_config(spec: dict) -> Schedule:
    """The schedule of a training config's ``schedule:`` section, e.g. ``{"kind": "linear", "T": 1000}``.

    ``kind`` is one of :data:`KINDS` (default ``"linear"``); the other keys are that constructor's
    arguments. An unknown kind or key is a ValueError listing the known ones.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"a schedule spec must be a mapping like {{'kind': 'linear', 'T': 1000}}, got {spec!r}")
    spec = dict(spec)
    kind = spec.pop("kind", "linear")
    if kind not in KINDS:
        raise ValueError(f"schedule kind must be one of {sorted(KINDS)}, got {kind!r}")
    unknown = sorted(set(spec) - set(KINDS[kind]))
    if unknown:
        raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join('schedule.' + k for k in unknown)} "
                         f"for a {kind} schedule; its keys are: kind, {', '.join(KINDS[kind])}")
    return {"linear": linear, "cosine": cosine, "angular": angular}[kind](**spec)


def _check_T(T) -> None:
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")


def data_log_snr(schedule: Schedule, x0: Tensor) -> Tensor:
    """Per-example log SNR(x_0, t) for t = 0..T (chapter "forward", eq-snr).

    SNR(x_0, t) = alpha_bar_t * mean(x_0^2) / (1 - alpha_bar_t): the power of the signal part of
    x_t over the variance of its noise part, with the signal power averaged over the pixels of
    each example (Deja et al. 2022, their eq. 10, averaged over pixels).

    Args:
        x0: data of shape (N, ...), any float dtype.
    Returns:
        float64 tensor (N, T+1); column 0 is +inf (no noise at t = 0).
    """
    if x0.ndim < 2:
        raise ValueError(f"x0 must have shape (N, ...) with at least 2 dims, got {tuple(x0.shape)}")
    power = x0.detach().to(device="cpu", dtype=torch.float64).flatten(1).pow(2).mean(1)
    if (power <= 0).any():
        raise ValueError("an example of x0 is all zeros: its SNR is 0 and its log SNR undefined")
    t = torch.arange(schedule.T + 1)
    return power.log()[:, None] + schedule.log_snr(t)[None, :]
