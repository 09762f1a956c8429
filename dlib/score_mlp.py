"""A small noise-conditioned score network for 2-D data, trained by denoising score matching.

Chapter "scores": :class:`ToyScoreMLP` maps a point x (B, 2) and a noise level sigma (B,) to an
estimate of the score grad_x log q_sigma(x) of the data blurred by N(0, sigma^2 I);
:func:`train_dsm` fits it with the denoising score-matching loss (eq-dsm) over several noise
levels, weighted by sigma^2 as in Song & Ermon (2019); its settings are a :class:`DSMConfig`.
Sample from it with :func:`dlib.langevin.annealed_langevin`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import Config, number

Tensor = torch.Tensor

__all__ = ["DSMConfig", "ToyScoreMLP", "train_dsm"]


@dataclass
class DSMConfig(Config):
    """Settings of :func:`train_dsm` (a :class:`dlib.config.Config`: typed, range-checked, YAML-able).

    ``steps``: optimisation steps (>= 1); ``batch``: batch size (>= 1); ``lr``: peak Adam learning
    rate (> 0). Numeric strings such as ``"3e-3"`` are accepted; anything else out of range is a
    :class:`dlib.config.ConfigError` (a ValueError) naming the field.
    """

    steps: int = number(2000, low=1, doc="optimisation steps")
    batch: int = number(256, low=1, doc="batch size")
    lr: float = number(2e-3, low=0, low_open=True, doc="peak Adam learning rate")


class ToyScoreMLP(nn.Module):
    """A noise-conditioned MLP score model s_theta(x, sigma) for low-dimensional data.

    The noise level enters through Fourier features of log(sigma), added (after a linear map) to
    every hidden layer. With ``divide_by_sigma=True`` (the default) the network's raw output is
    divided by sigma, so the network itself predicts a unit-scale quantity (minus the noise, -eps)
    while the model returns a score of size about 1/sigma; chapter "scores" (section on training
    near t -> 0) explains why this matters.

    Args:
        dim: data dimension (2 for the book's toy sets).
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        n_freqs: number of Fourier frequencies for log(sigma) (embedding size 2 * n_freqs).
        divide_by_sigma: return raw_output / sigma (True) or the raw output (False).

    ``forward(x, sigma)``: x float (B, dim); sigma a positive float or a tensor of shape () or (B,).
    Returns the score estimate, shape (B, dim), dtype of x.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, n_freqs: int = 8,
                 divide_by_sigma: bool = True):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth), ("n_freqs", n_freqs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.dim, self.divide_by_sigma = dim, bool(divide_by_sigma)
        self.register_buffer("freqs", 2.0 ** torch.arange(n_freqs, dtype=torch.float32))
        self.inp = nn.Linear(dim, hidden)
        self.cond = nn.ModuleList(nn.Linear(2 * n_freqs, hidden) for _ in range(depth))
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, dim)

    def embed(self, sigma: Tensor) -> Tensor:
        """Fourier features of log(sigma): (B,) -> (B, 2 * n_freqs)."""
        angle = (sigma.log() / 4.0)[:, None] * self.freqs[None, :].to(sigma)
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    def forward(self, x: Tensor, sigma) -> Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim != 2 or x.shape[1] != self.dim:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must be a float tensor of shape (B, {self.dim}), got {got}")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        if sigma.shape != (x.shape[0],):
            raise ValueError(f"sigma must be a scalar or have shape (B,) = ({x.shape[0]},), "
                             f"got {tuple(sigma.shape)}")
        if not (sigma > 0).all():
            raise ValueError("sigma must be positive")
        dtype = self.inp.weight.dtype
        emb = self.embed(sigma.to(dtype))
        h = nn.functional.silu(self.inp(x.to(dtype)) + self.cond[0](emb))
        for layer, cond in zip(self.hidden, self.cond[1:]):
            h = nn.functional.silu(layer(h) + cond(emb))
        out = self.out(h)
        if self.divide_by_sigma:
            out = out / sigma.to(dtype)[:, None]
        return out.to(x.dtype)


def _as_levels(sigmas) -> Tensor:
    levels = torch.as_tensor(sigmas, dtype=torch.float32).detach().cpu().flatten()
    if levels.numel() == 0 or not torch.isfinite(levels).all() or (levels <= 0).any():
        raise ValueError("sigmas must be a non-empty sequence of positive, finite noise levels")
    return levels


def train_dsm(model: nn.Module, data: Tensor, sigmas, steps: int | None = None, batch: int | None = None,
              lr: float | None = None, generator: torch.Generator | None = None, progress: bool = False,
              config: DSMConfig | None = None) -> list[float]:
    """Fit a score model by denoising score matching over noise levels (chapter "scores", eq-ncsn-loss).

    Each step draws a batch of data points x, for each one a noise level sigma uniformly from
    ``sigmas`` and noise z ~ N(0, I), forms x_tilde = x + sigma z, and takes an Adam step on

        loss = mean over batch and coordinates of  sigma^2 (s_theta(x_tilde, sigma) + z / sigma)^2
             = mean (sigma s_theta(x_tilde, sigma) + z)^2,

    i.e. eq-ncsn-loss: eq-dsm for the corruption q(x_tilde | x) = N(x, sigma^2 I), whose score
    is -z / sigma, with Song & Ermon's weight lambda(sigma) = sigma^2. The learning rate decays from ``lr`` to 0
    along a cosine. The model is left in eval mode.

    Args:
        model: callable ``model(x, sigma)`` with x (B, d) and sigma (B,), returning (B, d)
            (e.g. :class:`ToyScoreMLP`); trained in place on its own device.
        data: training points, float tensor (N, d).
        sigmas: noise levels, a non-empty 1-D sequence of positive numbers.
        steps, batch, lr: number of optimisation steps (>= 1), batch size (>= 1) and peak Adam
            learning rate (> 0); each one given overrides ``config``'s.
        generator: CPU ``torch.Generator`` for the batches, levels and noise; with it and a fixed
            initialisation the run is reproducible on the CPU.
        progress: show a tqdm progress bar.
        config: a :class:`DSMConfig` or a dict of its fields (default: ``DSMConfig()``, 2000 steps
            of 256 at lr 2e-3).
    Returns:
        the loss of every step, a list of ``steps`` floats.
    Raises:
        ValueError: bad ``data`` shape or ``sigmas``, a model output of the wrong shape;
            ConfigError (a ValueError): bad ``steps``, ``batch`` or ``lr``.
    """
    if not torch.is_tensor(data) or not data.is_floating_point() or data.ndim != 2 or data.shape[0] == 0:
        got = tuple(data.shape) if torch.is_tensor(data) else type(data).__name__
        raise ValueError(f"data must be a non-empty float tensor of shape (N, d), got {got}")
    levels = _as_levels(sigmas)
    given = {k: v for k, v in (("steps", steps), ("batch", batch), ("lr", lr)) if v is not None}
    if config is None or isinstance(config, dict):
        config = DSMConfig.from_dict(config or {})
    if not isinstance(config, DSMConfig):
        raise ValueError(f"config must be a DSMConfig or a dict, got {type(config).__name__}")
    cfg = config.replace(**given)  # validated: steps, batch >= 1, lr > 0
    steps, batch, lr = cfg.steps, cfg.batch, cfg.lr
    params = list(model.parameters())
    device = params[0].device if params else data.device
    dtype = params[0].dtype if params else data.dtype
    data_cpu = data.detach().to("cpu", dtype)
    optimizer = torch.optim.Adam(params, lr=lr)
    cosine = lambda k: 0.5 * (1 + math.cos(math.pi * k / steps))  # noqa: E731
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    model.train()
    history = []
    for _ in tqdm(range(steps), desc="DSM training", disable=not progress, leave=False):
        idx = torch.randint(0, data_cpu.shape[0], (batch,), generator=generator)
        sigma = levels[torch.randint(0, levels.numel(), (batch,), generator=generator)].to(dtype)
        z = torch.randn((batch, data_cpu.shape[1]), generator=generator, dtype=dtype)
        x0, sigma, z = data_cpu[idx].to(device), sigma.to(device), z.to(device)
        x_tilde = x0 + sigma[:, None] * z
        score = model(x_tilde, sigma)
        if score.shape != x_tilde.shape:
            raise ValueError(f"the model must return shape {tuple(x_tilde.shape)}, got {tuple(score.shape)}")
        loss = (sigma[:, None] * score + z).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(loss.item())
    model.eval()
    return history
