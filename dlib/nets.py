"""The book's networks: a time-conditioned U-Net and a denoising auto-encoder (chapter "ddpm").

Both are built from :mod:`dlib.nn_blocks` and carry a ``config`` dict holding every constructor
argument, so that :mod:`dlib.checkpoint` can rebuild them (``UNet.from_config(net.config)``).

The network output means whatever its ``target`` says (chapter "objectives"): ``"eps"`` (the noise
eps_hat), ``"x0"`` (the clean image x0_hat), ``"score"`` (grad log q(x_t), eq-score-from-eps),
``"v"`` (eq-v) or ``"x0_eps"`` (both x0_hat and eps_hat, concatenated on the channel axis in that
order, as :func:`dlib.objectives.predictions` reads them; Zhang et al.'s joint prediction,
eq-loss-joint).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nn_blocks import Downsample, ResBlock, SelfAttention, TimeSequential, Upsample, timestep_embedding

Tensor = torch.Tensor
TARGETS = ("eps", "x0", "score", "v", "x0_eps")


def level_sizes(image_size: int, levels: int) -> list[int]:
    """Feature-map side length at each U-Net level: halved (rounded up) per level, 28 -> 14 -> 7."""
    sizes = [image_size]
    for _ in range(levels - 1):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class _UNetBody(nn.Module):
    """The shared encoder-decoder with skip connections; ``time_dim=None`` drops the time input."""

    def __init__(self, in_channels, out_channels, base_channels, channel_mults, num_res_blocks,
                 attention_resolutions, dropout, groups, image_size, attention_heads, time_dim,
                 scale_shift: bool = False, decoder_blocks: int | None = None):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("base_channels", base_channels), ("num_res_blocks", num_res_blocks),
                            ("image_size", image_size), ("groups", groups), ("attention_heads", attention_heads)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if decoder_blocks is None:
            decoder_blocks = num_res_blocks + 1
        if not isinstance(decoder_blocks, int) or isinstance(decoder_blocks, bool) \
                or not 1 <= decoder_blocks <= num_res_blocks + 1:
            raise ValueError(f"decoder_blocks must be an int in 1..num_res_blocks + 1 = {num_res_blocks + 1}, "
                             f"got {decoder_blocks!r}")
        # each up level is offered num_res_blocks + 1 skips; the ones its blocks do not take are dropped
        self.skips_dropped = num_res_blocks + 1 - decoder_blocks
        if not channel_mults or any(not isinstance(m, int) or m < 1 for m in channel_mults):
            raise ValueError(f"channel_mults must be a non-empty list of positive ints, got {channel_mults!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        sizes = level_sizes(image_size, len(channel_mults))
        unknown = sorted(set(attention_resolutions) - set(sizes))
        if unknown:
            raise ValueError(f"attention_resolutions {unknown} are not feature-map sizes of this U-Net; "
                             f"with image_size={image_size} the levels have sizes {sizes}")
        self.in_channels, self.out_channels, self.image_size = in_channels, out_channels, image_size
        self.time_dim = time_dim
        if time_dim is not None:
            if base_channels % 2:
                raise ValueError(f"base_channels (the size of the sinusoidal time embedding) must be even, "
                                 f"got {base_channels}")
            self.time_mlp = nn.Sequential(nn.Linear(base_channels, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))

        def attention(ch, size):
            return [SelfAttention(ch, attention_heads, groups)] if size in attention_resolutions else []

        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        ch, skip_channels = base_channels, [base_channels]
        self.down = nn.ModuleList()
        for level, (mult, size) in enumerate(zip(channel_mults, sizes)):
            for _ in range(num_res_blocks):
                block = ResBlock(ch, base_channels * mult, time_dim, dropout, groups, scale_shift)
                ch = base_channels * mult
                self.down.append(TimeSequential([block, *attention(ch, size)]))
                skip_channels.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(TimeSequential([Downsample(ch)]))
                skip_channels.append(ch)
        self.middle = TimeSequential([ResBlock(ch, ch, time_dim, dropout, groups, scale_shift),
                                      *attention(ch, sizes[-1]), ResBlock(ch, ch, time_dim, dropout, groups, scale_shift)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(channel_mults))):
            for _ in range(decoder_blocks):
                out = base_channels * channel_mults[level]
                block = ResBlock(ch + skip_channels.pop(), out, time_dim, dropout, groups, scale_shift)
                ch = out
                self.up.append(TimeSequential([block, *attention(ch, sizes[level])]))
            del skip_channels[len(skip_channels) - self.skips_dropped:]
            if level > 0:
                self.up.append(Upsample(ch))
        self.output = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.output[-1].weight)  # start by predicting 0 (the mean of every target)
        nn.init.zeros_(self.output[-1].bias)

    def _check_input(self, x: Tensor) -> None:
        if not torch.is_tensor(x) or x.ndim != 4:
            raise ValueError(f"x must be a tensor of shape (B, C, H, W), got {getattr(x, 'shape', type(x))}")
        B, C, H, W = x.shape
        if C != self.in_channels:
            raise ValueError(f"x has {C} channels but the network expects in_channels={self.in_channels}")
        if (H, W) != (self.image_size, self.image_size):
            raise ValueError(f"x has spatial size {H}x{W} but the network was built for image_size="
                             f"{self.image_size} ({self.image_size}x{self.image_size}); attention levels depend on it")

    def _run(self, x: Tensor, t_emb: Tensor | None) -> Tensor:
        h = self.input_conv(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, t_emb)
            skips.append(h)
        h = self.middle(h, t_emb)
        for layer in self.up:
            if isinstance(layer, Upsample):
                del skips[len(skips) - self.skips_dropped:]  # the level's skips its blocks did not take
                h = layer(h, skips[-1].shape[-2:])  # back to the size of the skip it meets next
            else:
                h = layer(torch.cat([h, skips.pop()], dim=1), t_emb)
        return self.output(h)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild a network from its ``config`` dict (lists become tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


class UNet(_UNetBody):
    """Time-conditioned U-Net for 28x28 (MNIST), 32x32 and 64x64 images.

    ``model(x_t, t)`` maps a noisy batch x_t (B, C, H, W) and timesteps t (B,) to the prediction
    named by ``target``: (B, C, H, W), or (B, 2C, H, W) = [x0_hat, eps_hat] for ``"x0_eps"``.
    t is on the 0..T scale, integer (the discrete chain) or float (continuous-time samplers).

    Layout for the default config (base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1,
    attention at 7x7) on a (B, 1, 28, 28) input; each ResBlock gets the time embedding (B, 128)::

        input conv              (B, 32, 28, 28)   -> skip
        level 0, 28x28: Res     (B, 32, 28, 28)   -> skip;  Downsample (B, 32, 14, 14) -> skip
        level 1, 14x14: Res     (B, 64, 14, 14)   -> skip;  Downsample (B, 64, 7, 7)   -> skip
        level 2,   7x7: Res+Att (B, 64, 7, 7)     -> skip
        middle,    7x7: Res, Att, Res  (B, 64, 7, 7)
        up 2,      7x7: 2 x [cat skip, Res+Att]  (B, 64, 7, 7);   Upsample to 14 (B, 64, 14, 14)
        up 1,    14x14: 2 x [cat skip, Res]      (B, 64, 14, 14); Upsample to 28 (B, 64, 28, 28)
        up 0,    28x28: 2 x [cat skip, Res]      (B, 32, 28, 28)
        output: GroupNorm, SiLU, conv   (B, out_channels, 28, 28)

    Downsampling is a stride-2 conv (28 -> 14 -> 7, 7 -> 4 with a fourth level); upsampling is a
    nearest resize to the skip's size, so odd sizes round-trip. Each up level takes
    num_res_blocks + 1 skips (the DDPM layout of Ho et al. 2020) with as many ResBlocks, unless
    ``decoder_blocks`` says fewer.

    Args:
        in_channels: image channels C.
        out_channels: output channels; ``None`` means C, or 2C for ``target="x0_eps"``.
        base_channels: channels of the first level; level i has base_channels * channel_mults[i].
        channel_mults: one multiplier per level (len 3 -> sizes 28, 14, 7).
        num_res_blocks: ResBlocks per level on the way down.
        attention_resolutions: side lengths at which self-attention follows each ResBlock.
        dropout: dropout rate inside the ResBlocks.
        groups: GroupNorm groups (every channel count must be divisible by it).
        target: what the output means: one of ``TARGETS``.
        image_size: H = W of the inputs.
        attention_heads: heads of each self-attention layer.
        patch_size: p > 1 folds each p x p patch into channels first (``pixel_unshuffle``: (B, C, H, W)
            -> (B, p^2 C, H/p, W/p)) and unfolds the output at the end (``pixel_shuffle``), so every
            level runs at 1/p of the side (28 -> 14 -> 7 with p = 2): about p^2 fewer operations per
            level, the trade the fast recipe makes (chapter "ddpm", "Digits in two minutes").
            ``image_size`` must be divisible by p.
        scale_shift: the time embedding scales as well as shifts each ResBlock's features
            (:class:`dlib.nn_blocks.ResBlock`); default: a shift only.
        decoder_blocks: ResBlocks per level on the way up, 1..num_res_blocks + 1 (default
            num_res_blocks + 1). With k blocks a level takes the k most recent of its skips and drops
            the others (the level's entry: the input conv's or the downsampling's output). One block
            per level made the two-minute recipe ~1.4x faster per step but no better in two minutes
            (benchmarks/results/recipe_search_decoder_epyc).
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, base_channels: int = 32,
                 channel_mults=(1, 2, 2), num_res_blocks: int = 1, attention_resolutions=(7,),
                 dropout: float = 0.0, groups: int = 8, target: str = "eps", image_size: int = 28,
                 attention_heads: int = 4, patch_size: int = 1, scale_shift: bool = False,
                 decoder_blocks: int | None = None):
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if out_channels is None:
            out_channels = 2 * in_channels if target == "x0_eps" else in_channels
        if target == "x0_eps" and out_channels != 2 * in_channels:
            raise ValueError(f"target 'x0_eps' needs out_channels = 2 * in_channels = {2 * in_channels}, "
                             f"got {out_channels}")
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
        if not isinstance(image_size, int) or image_size % patch_size:
            raise ValueError(f"image_size {image_size!r} is not divisible by patch_size {patch_size}")
        p2 = patch_size * patch_size
        super().__init__(p2 * in_channels, p2 * out_channels, base_channels, tuple(channel_mults), num_res_blocks,
                         tuple(attention_resolutions), dropout, groups, image_size // patch_size, attention_heads,
                         time_dim=4 * base_channels, scale_shift=scale_shift, decoder_blocks=decoder_blocks)
        # what callers see (and _check_input checks) is the image, not the folded patches
        self.in_channels, self.out_channels, self.image_size = in_channels, out_channels, image_size
        self.patch_size = patch_size
        self.target = target
        self.base_channels = base_channels
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "base_channels": base_channels,
                       "channel_mults": list(channel_mults), "num_res_blocks": num_res_blocks,
                       "attention_resolutions": list(attention_resolutions), "dropout": dropout,
                       "groups": groups, "target": target, "image_size": image_size,
                       "attention_heads": attention_heads}
        # older checkpoints have neither key: their configs stay as they were
        if patch_size != 1:
            self.config["patch_size"] = patch_size
        if scale_shift:
            self.config["scale_shift"] = True
        if decoder_blocks is not None and decoder_blocks != num_res_blocks + 1:
            self.config["decoder_blocks"] = decoder_blocks

    def forward(self, x: Tensor, t) -> Tensor:
        """x: (B, C, H, W); t: (B,) integer or float timesteps (a scalar is broadcast) -> output."""
        self._check_input(x)
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape (B,) with B = {x.shape[0]}, got shape {tuple(t.shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError("t contains NaN or inf")
        t_emb = self.time_mlp(timestep_embedding(t, self.base_channels))
        if self.patch_size == 1:
            return self._run(x, t_emb)
        return F.pixel_shuffle(self._run(F.pixel_unshuffle(x, self.patch_size), t_emb), self.patch_size)


class DenoisingAutoencoder(_UNetBody):
    """The U-Net without a time input: maps a noisy image to a clean one, x0_hat = D(x_tau).

    Used for the DAED model (Deja et al. 2022), whose auto-encoder part removes the small noise
    left at a fixed step tau. Same blocks and layout as :class:`UNet`; shapes (B, C, H, W) ->
    (B, out_channels, H, W) with out_channels = C by default. ``target`` is ``"x0"``.
    """

    target = "x0"

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, base_channels: int = 32,
                 channel_mults=(1, 2, 2), num_res_blocks: int = 1, attention_resolutions=(),
                 dropout: float = 0.0, groups: int = 8, image_size: int = 28, attention_heads: int = 4):
        out_channels = in_channels if out_channels is None else out_channels
        super().__init__(in_channels, out_channels, base_channels, tuple(channel_mults), num_res_blocks,
                         tuple(attention_resolutions), dropout, groups, image_size, attention_heads, time_dim=None)
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "base_channels": base_channels,
                       "channel_mults": list(channel_mults), "num_res_blocks": num_res_blocks,
                       "attention_resolutions": list(attention_resolutions), "dropout": dropout,
                       "groups": groups, "image_size": image_size, "attention_heads": attention_heads}

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) noisy images -> (B, out_channels, H, W) denoised images."""
        self._check_input(x)
        return self._run(x, None)


#: Architecture name -> class, for rebuilding from checkpoint metadata.
ARCHITECTURES = {"UNet": UNet, "DenoisingAutoencoder": DenoisingAutoencoder}


def build(architecture: str, config: dict) -> nn.Module:
    """Build a network by class name (a key of ``ARCHITECTURES``) from its config dict."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[architecture].from_config(config)
    except TypeError as err:  # an unknown or missing constructor argument
        raise ValueError(f"cannot build {architecture} from config {config}: {err}") from None
