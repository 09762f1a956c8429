"""dlib.nets / dlib.nn_blocks: shapes, odd sizes, time conditioning, batch independence, errors.

Equations checked: eq-time-embedding.
"""
import json
import math

import numpy as np
import pytest
import torch

from dlib.nets import DenoisingAutoencoder, UNet, build, level_sizes
from dlib.nn_blocks import Downsample, SelfAttention, Upsample, timestep_embedding


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


@pytest.mark.parametrize("kwargs,match", [
    (dict(attention_resolutions=(8,)), "not feature-map sizes"),
    (dict(base_channels=12), "divisible by groups"),
    (dict(target="noise"), "target"),
    (dict(target="x0_eps", out_channels=1), "2 \\* in_channels"),
    (dict(channel_mults=()), "channel_mults"),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNet(**kwargs)


def test_build_errors():
    with pytest.raises(ValueError, match="unknown architecture"):
        build("ResNet", {})
    with pytest.raises(ValueError, match="cannot build"):
        build("UNet", {"widht": 3})
