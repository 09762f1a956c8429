"""Building blocks of the book's U-Nets (chapter "ddpm", section on the network).

* :func:`timestep_embedding` -- sinusoidal features of the timestep t (Vaswani et al. 2017, as in
  Ho et al. 2020): t is a number on the 0..T scale, integer or float.
* :class:`ResBlock` -- GroupNorm, SiLU, 3x3 conv, plus a per-channel shift computed from the time
  embedding, then GroupNorm, SiLU, dropout, 3x3 conv, and a residual connection.
* :class:`SelfAttention` -- multi-head self-attention over the H*W positions of a feature map.
* :class:`Downsample` -- a stride-2 3x3 conv: H -> ceil(H / 2) (28 -> 14 -> 7 -> 4).
* :class:`Upsample` -- nearest-neighbour resize to an explicit size (the skip's), then a 3x3 conv,
  so odd sizes come back exactly (7 -> 14, 4 -> 7).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of timesteps.

    emb[b, i] = sin(t_b * w_i) for i < dim/2 and cos(t_b * w_{i - dim/2}) after, with the
    frequencies w_i = max_period^(-i / (dim/2)) spread geometrically from 1 to 1/max_period.

    Args:
        t: (B,) tensor of timesteps on the 0..T scale, integer or float (continuous-time samplers
            may pass fractional t).
        dim: even embedding size.
    Returns:
        float32 tensor (B, dim) on t's device.
    """
    if dim % 2:
        raise ValueError(f"the time embedding size must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _check_groups(channels: int, groups: int) -> None:
    if channels % groups:
        raise ValueError(f"GroupNorm needs channels divisible by groups: {channels} channels, {groups} groups")


class ResBlock(nn.Module):
    """Residual block: x + conv(act(norm(conv(act(norm(x))) + shift(t_emb)))).

    Shapes: x (B, in_channels, H, W), t_emb (B, time_dim) or None -> (B, out_channels, H, W).
    With ``time_dim=None`` the block has no time input (denoising auto-encoder). With
    ``scale_shift=True`` the time embedding gives a per-channel scale as well as a shift, applied
    after the second norm: norm(h) (1 + scale(t_emb)) + shift(t_emb) (Dhariwal & Nichol 2021's
    adaptive group norm).
    """

    def __init__(self, in_channels: int, out_channels: int, time_dim: int | None, dropout: float = 0.0,
                 groups: int = 8, scale_shift: bool = False):
        super().__init__()
        _check_groups(in_channels, groups)
        _check_groups(out_channels, groups)
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.scale_shift = scale_shift and time_dim is not None
        self.time = nn.Linear(time_dim, (2 if self.scale_shift else 1) * out_channels) if time_dim is not None else None
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # the block starts as the identity (plus the 1x1 skip)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, t_emb: Tensor | None = None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        emb = self.time(F.silu(t_emb))[:, :, None, None].to(h.dtype) if self.time is not None else None
        if self.scale_shift:
            scale, shift = emb.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h if emb is None else h + emb)
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual connection.

    Shapes: (B, C, H, W) -> (B, C, H, W); C must be divisible by ``heads`` and by ``groups``.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        _check_groups(channels, groups)
        if channels % heads:
            raise ValueError(f"attention needs channels divisible by heads: {channels} channels, {heads} heads")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (B, heads, HW, C/heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))


class Downsample(nn.Module):
    """Stride-2 3x3 conv with padding 1: (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest resize to ``size`` then a 3x3 conv: (B, C, h, w) -> (B, C, *size)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, size) -> Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


class TimeSequential(nn.ModuleList):
    """Layers applied in order; :class:`ResBlock` layers also receive the time embedding."""

    def forward(self, h: Tensor, t_emb: Tensor | None = None) -> Tensor:
        for layer in self:
            h = layer(h, t_emb) if isinstance(layer, ResBlock) else layer(h)
        return h
