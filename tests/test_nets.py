"""dlib.nets / dlib.nn_blocks: shapes, odd sizes, time conditioning, batch independence, errors.

Equations checked: eq-time-embedding.
"""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dlib.nets import DenoisingAutoencoder, UNet, build, level_sizes
from dlib.nn_blocks import Downsample, ResBlock, SelfAttention, Upsample, timestep_embedding


def _randomize(model, seed=0):
    """Replace the zero-initialised layers so that the output depends on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


@pytest.mark.parametrize("size,mults,attn", [(28, (1, 2, 2), (7,)), (32, (1, 2, 2), (8,)), (64, (1, 2, 2, 2), (8,)),
                                             (28, (1, 2, 2, 2), (4, 7))])
def test_output_shape(size, mults, attn):
    net = UNet(base_channels=16, channel_mults=mults, attention_resolutions=attn, image_size=size)
    out = net(torch.randn(2, 1, size, size), torch.tensor([1, 999]))
    assert out.shape == (2, 1, size, size)


def test_x0_eps_has_two_outputs_and_three_channel_images():
    net = UNet(in_channels=3, base_channels=16, target="x0_eps", image_size=32, attention_resolutions=(8,))
    assert net.out_channels == 6 and net.target == "x0_eps"
    assert net(torch.randn(2, 3, 32, 32), torch.tensor([5, 6])).shape == (2, 6, 32, 32)


def test_odd_sizes_round_trip():
    assert level_sizes(28, 4) == [28, 14, 7, 4]
    down, up = Downsample(8), Upsample(8)
    h = torch.randn(1, 8, 7, 7)
    assert down(h).shape == (1, 8, 4, 4)
    assert up(down(h), (7, 7)).shape == (1, 8, 7, 7)


def test_zero_initialised_output():
    # the last conv starts at zero, so a fresh network predicts 0 (the mean of every target)
    net = UNet(base_channels=16)
    assert torch.count_nonzero(net(torch.randn(2, 1, 28, 28), torch.tensor([3, 4]))) == 0


def test_timestep_embedding_against_explicit_formula():
    t = torch.tensor([0, 1, 17, 1000])
    dim = 8
    got = timestep_embedding(t, dim).numpy()
    for b, tb in enumerate(t.tolist()):
        for i in range(dim // 2):
            w = 10_000.0 ** (-i / (dim // 2))
            assert got[b, i] == pytest.approx(math.sin(tb * w), abs=1e-4)
            assert got[b, dim // 2 + i] == pytest.approx(math.cos(tb * w), abs=1e-4)


def test_time_conditioning_and_float_t():
    torch.manual_seed(0)
    net = _randomize(UNet(base_channels=16)).eval()
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([10, 500, 900])
    out = net(x, t)
    assert not torch.allclose(out, net(x, t + 1), atol=1e-4)  # t changes the output
    assert torch.allclose(out, net(x, t.double()), atol=1e-5)  # integer-valued float t: same embedding
    assert torch.allclose(net(x, torch.tensor(7)), net(x, torch.full((3,), 7)))  # scalar t broadcasts


def test_examples_are_independent_of_their_batch():
    # GroupNorm normalises each example on its own: an example's output cannot depend on the others
    net = _randomize(UNet(base_channels=16)).eval()
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    assert torch.allclose(net(x, t)[1:2], net(x[1:2], t[1:2]), atol=1e-5)


def test_self_attention_is_permutation_equivariant():
    # no positional encoding: shuffling the H*W positions shuffles the output the same way,
    # while a 3x3 conv (which sees neighbours) would not commute with the shuffle
    torch.manual_seed(0)
    attn = _randomize(SelfAttention(16, heads=4, groups=8))
    x = torch.randn(2, 16, 5, 5)
    perm = torch.randperm(25)
    shuffled = x.flatten(2)[:, :, perm].reshape(x.shape)
    expected = attn(x).flatten(2)[:, :, perm].reshape(x.shape)
    assert torch.allclose(attn(shuffled), expected, atol=1e-5)
    assert not torch.allclose(attn(x), x, atol=1e-3)  # and it is not the identity


def test_self_attention_against_explicit_softmax():
    torch.manual_seed(1)
    attn = _randomize(SelfAttention(8, heads=2, groups=4)).double()
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        qkv = attn.qkv(attn.norm(x))[0].reshape(3 * 8, 9)  # (3C, positions)
    out = torch.zeros(8, 9, dtype=torch.float64)
    for h in range(2):
        q, k, v = (qkv[i * 8 + 4 * h: i * 8 + 4 * h + 4] for i in range(3))  # (4, positions)
        for i in range(9):
            scores = torch.tensor([float(q[:, i] @ k[:, j]) / 2.0 for j in range(9)])  # sqrt(4) = 2
            w = torch.exp(scores - scores.max())
            w = w / w.sum()
            out[4 * h: 4 * h + 4, i] = (v * w.double()).sum(1)
    with torch.no_grad():
        assert torch.allclose(attn(x), x + attn.proj(out.reshape(1, 8, 3, 3)), atol=1e-10)


def test_config_round_trip_and_json():
    net = _randomize(UNet(base_channels=16, num_res_blocks=2, target="v"))
    cfg = json.loads(json.dumps(net.config))
    twin = build("UNet", cfg)
    twin.load_state_dict(net.state_dict())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 300])
    assert torch.equal(net(x, t), twin(x, t)) and twin.target == "v"
    assert UNet.from_config(cfg).num_parameters() == net.num_parameters()


def test_denoising_autoencoder():
    dae = _randomize(DenoisingAutoencoder(base_channels=16))
    out = dae(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 1, 28, 28)
    assert not any("time" in name for name, _ in dae.named_parameters())
    assert build("DenoisingAutoencoder", dae.config).num_parameters() == dae.num_parameters()


def test_parameter_count_of_default():
    n = UNet().num_parameters()
    assert 0.5e6 < n < 3e6
    assert n == sum(int(np.prod(p.shape)) for p in UNet().parameters())


@pytest.mark.parametrize("call,match", [
    (lambda n: n(torch.randn(2, 3, 28, 28), torch.tensor([1, 2])), "channels"),
    (lambda n: n(torch.randn(2, 1, 32, 32), torch.tensor([1, 2])), "image_size"),
    (lambda n: n(torch.randn(2, 1, 28, 28), torch.tensor([1, 2, 3])), "shape"),
    (lambda n: n(torch.randn(1, 28, 28), torch.tensor([1])), r"\(B, C, H, W\)"),
    (lambda n: n(torch.randn(1, 1, 28, 28), torch.tensor([float("nan")])), "NaN"),
])
def test_forward_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(UNet(base_channels=16))


def _fold(x, p):
    """(B, C, H, W) -> (B, C p^2, H/p, W/p), channel c p^2 + i p + j holding pixel (i, j) of each patch."""
    B, C, H, W = x.shape
    return x.reshape(B, C, H // p, p, W // p, p).permute(0, 1, 3, 5, 2, 4).reshape(B, C * p * p, H // p, W // p)


def _unfold(h, p):
    """The inverse of _fold."""
    B, Cp, h_, w_ = h.shape
    C = Cp // (p * p)
    return h.reshape(B, C, p, p, h_, w_).permute(0, 1, 4, 2, 5, 3).reshape(B, C, h_ * p, w_ * p)


@pytest.mark.parametrize("target,channels", [("v", 1), ("x0_eps", 3)])
def test_patch_size_runs_the_body_on_folded_patches(target, channels):
    # a patched U-Net is the unpatched body on 14x14 maps of p^2 C channels, between an explicit fold and unfold
    x, t = torch.randn(2, channels, 28, 28), torch.tensor([4, 700])
    assert torch.equal(_unfold(_fold(x, 2), 2), x)
    net = _randomize(UNet(in_channels=channels, base_channels=16, channel_mults=(1, 2), attention_resolutions=(7,),
                          target=target, patch_size=2))
    out_channels = 2 * channels if target == "x0_eps" else channels
    body = UNet(in_channels=4 * channels, out_channels=4 * out_channels, base_channels=16, channel_mults=(1, 2),
                attention_resolutions=(7,), image_size=14)
    body.load_state_dict(net.state_dict())
    out = net(x, t)
    assert out.shape == (2, out_channels, 28, 28)
    assert (net.in_channels, net.out_channels, net.image_size) == (channels, out_channels, 28)
    assert torch.allclose(out, _unfold(body(_fold(x, 2), t), 2), atol=1e-6)
    twin = build("UNet", json.loads(json.dumps(net.config)))
    twin.load_state_dict(net.state_dict())
    assert twin.patch_size == 2 and torch.equal(twin(x, t), out)
    assert "patch_size" not in UNet(base_channels=16).config  # the configs of earlier checkpoints, unchanged


def test_scale_shift_res_block_against_explicit_formula():
    # h = conv1(silu(norm1(x))); h = norm2(h) (1 + scale) + shift; out = skip(x) + conv2(silu(h))
    block = _randomize(ResBlock(8, 16, time_dim=12, groups=4, scale_shift=True))
    x, t_emb = torch.randn(3, 8, 5, 5), torch.randn(3, 12)
    h = block.conv1(F.silu(F.group_norm(x, 4, block.norm1.weight, block.norm1.bias)))
    film = F.linear(F.silu(t_emb), block.time.weight, block.time.bias)
    scale, shift = film[:, :16, None, None], film[:, 16:, None, None]
    h = F.group_norm(h, 4, block.norm2.weight, block.norm2.bias) * (1 + scale) + shift
    expected = block.skip(x) + block.conv2(F.silu(h))
    assert torch.allclose(block(x, t_emb), expected, atol=1e-5)
    plain = ResBlock(8, 16, time_dim=12, groups=4)
    assert block.time.out_features == 2 * plain.time.out_features == 32


def test_scale_shift_unet_round_trips_and_defaults_off():
    net = _randomize(UNet(base_channels=16, attention_resolutions=(), target="v", scale_shift=True))
    twin = build("UNet", json.loads(json.dumps(net.config)))
    twin.load_state_dict(net.state_dict())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 900])
    assert torch.equal(net(x, t), twin(x, t))
    assert "scale_shift" not in UNet(base_channels=16).config
    assert not any(b.scale_shift for b in UNet(base_channels=16).modules() if isinstance(b, ResBlock))


def test_decoder_blocks_default_is_the_ddpm_layout_and_round_trips():
    default = UNet(base_channels=16, attention_resolutions=(), num_res_blocks=2)
    explicit = UNet(base_channels=16, attention_resolutions=(), num_res_blocks=2, decoder_blocks=3)
    assert "decoder_blocks" not in default.config and "decoder_blocks" not in explicit.config
    assert default.state_dict().keys() == explicit.state_dict().keys()
    lite = _randomize(UNet(base_channels=16, attention_resolutions=(), num_res_blocks=2, decoder_blocks=1))
    assert lite.config["decoder_blocks"] == 1
    assert sum(isinstance(m, ResBlock) for m in lite.up.modules()) == 3   # one per level of (1, 2, 2)
    twin = build("UNet", json.loads(json.dumps(lite.config)))
    twin.load_state_dict(lite.state_dict())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 900])
    assert torch.equal(lite(x, t), twin(x, t))


@pytest.mark.parametrize("decoder_blocks", [1, 2, 3])
def test_decoder_blocks_take_the_most_recent_skips_of_their_level(decoder_blocks):
    """Every up ResBlock's skip half equals the encoder output the layout names (hooks, not _run)."""
    net = _randomize(UNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=2, attention_resolutions=(),
                          decoder_blocks=decoder_blocks))
    outputs = {}
    net.input_conv.register_forward_hook(lambda m, i, o: outputs.__setitem__("in", o))
    names = ["d0b0", "d0b1", "down0", "d1b0", "d1b1"]   # self.down in order: 2 blocks, downsample, 2 blocks
    for name, layer in zip(names, net.down):
        layer.register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
    taken = []
    for layer in net.up:
        if not isinstance(layer, Upsample):
            layer.register_forward_pre_hook(lambda m, args: taken.append(args[0]))
    net(torch.randn(2, 1, 28, 28), torch.tensor([5, 700]))
    # level 1 (deepest) is offered d1b1, d1b0, down0; level 0 is offered d0b1, d0b0, in -- most recent first
    offered = [["d1b1", "d1b0", "down0"], ["d0b1", "d0b0", "in"]]
    expected = [outputs[name] for level in offered for name in level[:decoder_blocks]]
    assert len(taken) == len(expected) == 2 * decoder_blocks
    for cat_input, skip in zip(taken, expected):
        assert torch.equal(cat_input[:, -skip.shape[1]:], skip)


@pytest.mark.parametrize("kwargs,match", [
    (dict(patch_size=3), "not divisible by patch_size 3"),
    (dict(patch_size=0), "patch_size must be a positive int"),
    (dict(attention_resolutions=(8,)), "not feature-map sizes"),
    (dict(base_channels=12), "divisible by groups"),
    (dict(target="noise"), "target"),
    (dict(target="x0_eps", out_channels=1), "2 \\* in_channels"),
    (dict(channel_mults=()), "channel_mults"),
    (dict(decoder_blocks=0), "decoder_blocks must be an int in 1..num_res_blocks \\+ 1 = 2"),
    (dict(decoder_blocks=3), "decoder_blocks must be"),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_build_errors():
    with pytest.raises(ValueError, match="unknown architecture"):
        build("ResNet", {})
    with pytest.raises(ValueError, match="cannot build"):
        build("UNet", {"widht": 3})
