"""dlib.daed, dlib.daed_train and the letters set against independent computations (chapter "daed").

The DAED bound with t_s = 1 and the diffusion model's own x0_hat as the denoiser is the standard
bound, term for term; for Gaussian data and exact components it equals log q(x_0) at every
switching point (and the source's eq. 12 differs from it by minus the entropy of q(x_{t_s} | x_0)); the decoder
term of a linear denoiser against its closed form; the top-up's moments; the chain between two
levels against ``ddim_sample``; the denoiser trainer's exact resume.

Equations checked: eq-daed-switch, eq-daed-top-up, eq-daed-bound, eq-daed-decoder, eq-daed-linear-decoder,
eq-daed-entropy-gap, eq-daed-sample, eq-daed-reconstruction.
"""
import json
import math

import pytest
import torch

from dlib import daed, data, diffusion, gaussian_chain, nets, samplers, schedules
from dlib.exercises.daed import entropy_gap, linear_decoder_nll
from dlib.reverse import reverse_gaussian

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def tiny_unet():
    torch.manual_seed(0)
    model = nets.UNet(base_channels=8, channel_mults=(1, 2), attention_resolutions=(), groups=4)
    with torch.no_grad():                       # the output layer starts at zero: give it weights
        for p in model.output.parameters():
            p.normal_(0, 0.05, generator=gen(1))
    return model.eval()


def eight_bit(shape, g):
    return torch.randint(0, 256, shape, generator=g).to(F64) / 127.5 - 1


# ---------------------------------------------------------------------------------------------
# the switching point and the top-up


def test_switch_step_and_log_snr():
    s = schedules.linear(300)
    for t in (1, 5, 27, 55, 299):
        level = daed.noise_level(s, t)
        assert daed.switch_step(s, level) == t
        assert daed.switch_log_snr(level) == pytest.approx(float(s.log_snr(t)), rel=1e-9)
        assert daed.switch_step(s, level * (1 - 1e-6)) == t - 1
    assert daed.switch_step(s, 1e-6) == 0
    with pytest.raises(ValueError, match="beta_1"):
        daed.switch_step(s, 1.5)


def test_top_up_moments_and_identity():
    s = schedules.linear(300)
    t, beta_1 = 20, 0.05
    x0 = torch.tensor([[0.7, -0.4]], dtype=F64).expand(200_000, 2)
    x_t = diffusion.q_sample(s, x0, t, torch.randn(x0.shape, generator=gen(2), dtype=F64))
    x_b = daed.top_up(s, x_t, t, beta_1, torch.randn(x0.shape, generator=gen(3), dtype=F64))
    n = x0.shape[0]
    assert ((x_b.mean(0) - math.sqrt(1 - beta_1) * x0[0]).abs() < 5 * math.sqrt(beta_1 / n)).all()
    assert ((x_b.var(0) - beta_1).abs() < 5 * beta_1 * math.sqrt(2 / n)).all()
    same = daed.top_up(s, x_t, t, daed.noise_level(s, t), None)
    assert same is x_t
    with pytest.raises(ValueError, match="cannot be removed"):
        daed.top_up(s, x_t, t, daed.noise_level(s, t - 1), None)


# ---------------------------------------------------------------------------------------------
# the bound


@pytest.mark.parametrize("stride", [1, 3])
def test_bound_with_t_s_1_is_the_standard_bound(stride):
    s = schedules.linear(12, 1e-3, 0.2)
    model = tiny_unet()
    p_theta = reverse_gaussian(model, s)
    x0 = eight_bit((3, 1, 28, 28), gen(4))
    own_x0_hat = lambda x: p_theta(x, 1)[0]   # noqa: E731  (at t = 1 the mean is x0_hat)
    ours = daed.daed_bound(p_theta, own_x0_hat, s, 1, x0, float(s.betas[1]), generator=gen(5), stride=stride)
    theirs = diffusion.nll_bits_per_dim(p_theta, s, x0, generator=gen(5), progress=False, stride=stride)
    for key in ("total", "prior", "decoder"):
        assert torch.allclose(ours[key], theirs[key], rtol=1e-9, atol=1e-12), key
    assert torch.allclose(ours["terms"][:, 1:], theirs["terms"][:, 1:], rtol=1e-9, atol=1e-12, equal_nan=True)
    assert torch.isnan(ours["terms"][:, 0]).all()


def test_bound_replaces_the_first_terms():
    s = schedules.linear(12, 1e-3, 0.2)
    p_theta = reverse_gaussian(tiny_unet(), s)
    x0 = eight_bit((2, 1, 28, 28), gen(6))
    dae = lambda x: x.clamp(-1, 1)   # noqa: E731
    b = daed.daed_bound(p_theta, dae, s, 4, x0, 0.01, generator=gen(7))
    assert torch.isnan(b["terms"][:, :4]).all() and not torch.isnan(b["terms"][:, 4:]).any()
    assert torch.allclose(b["total"], b["prior"] + b["decoder"] + b["terms"][:, 4:].sum(1), rtol=1e-12)


def test_bound_shapes_and_bad_input():
    s = schedules.linear(12, 1e-3, 0.2)
    p_theta = reverse_gaussian(tiny_unet(), s)
    x0 = eight_bit((3, 1, 28, 28), gen(20))
    dae = lambda x: x.clamp(-1, 1)   # noqa: E731
    b = daed.daed_bound(p_theta, dae, s, 3, x0, 0.01, generator=gen(21), batch_size=2, stride=4)
    assert b["total"].shape == b["prior"].shape == b["decoder"].shape == (3,) and b["terms"].shape == (3, 12)
    assert all(v.dtype == F64 for v in b.values())
    # stride 4 from t_s + 1 = 4: blocks 4..7, 8..11, 12: one column of each block is filled per example
    filled = (~torch.isnan(b["terms"])).sum(1)
    assert (filled == 3).all() and torch.isnan(b["terms"][:, :3]).all()
    for bad in (0, 12, 13):
        with pytest.raises(ValueError, match="t_s"):
            daed.daed_bound(p_theta, dae, s, bad, x0, 0.01)
    with pytest.raises(ValueError, match="stride"):
        daed.daed_bound(p_theta, dae, s, 3, x0, 0.01, stride=0)
    with pytest.raises(ValueError, match="B >= 1"):
        daed.daed_bound(p_theta, dae, s, 3, x0[:0], 0.01)
    with pytest.raises(ValueError, match="variance"):
        daed.decoder_nll(x0, x0, 0.0)
    with pytest.raises(ValueError, match="shape"):
        daed.decoder_nll(x0, x0[:, :, :4], 0.01)
    with pytest.raises(ValueError, match="decoder"):
        daed.decoder_nll(x0, x0, 0.01, decoder="laplace")
    with pytest.raises(ValueError, match="shape"):
        daed.corrupt(x0, 0.1, torch.zeros(2, 1, 28, 28, dtype=F64))
    with pytest.raises(ValueError, match="beta_1"):
        daed.corrupt(x0, 0.0, torch.zeros_like(x0))
    with pytest.raises(ValueError, match="t_to"):
        daed.run_chain(tiny_unet(), s, x0.float(), 3, 3)
    with pytest.raises(ValueError):
        daed.run_chain(tiny_unet(), s, x0.float(), 13, 0)        # t outside 1..T
    with pytest.raises(ValueError, match="noise"):
        daed.top_up(s, x0, 2, 0.5, None)


def test_corrupt_is_the_forward_marginal_at_the_dae_level():
    s = schedules.linear(300)
    x0, eps = eight_bit((2, 1, 4, 4), gen(22)), torch.randn(2, 1, 4, 4, generator=gen(23), dtype=F64)
    level = daed.noise_level(s, 27)
    assert torch.allclose(daed.corrupt(x0, level, eps), diffusion.q_sample(s, x0, 27, eps), rtol=1e-12, atol=1e-12)


def test_decoder_term_of_a_linear_denoiser_matches_its_closed_form():
    s = schedules.linear(300)
    t_s, a, b, var = 27, 0.9, 0.05, 0.02
    x0 = torch.tensor([[0.5, -1.0, 0.1]], dtype=F64)
    n = 100_000
    xs = diffusion.q_sample(s, x0.expand(n, 3), t_s, torch.randn(n, 3, generator=gen(8), dtype=F64))
    mc = daed.decoder_nll(x0.expand(n, 3), a * xs + b, var, decoder="gaussian")
    closed = linear_decoder_nll(s, t_s, x0, a, b, var)
    assert abs(mc.mean() - closed[0]) < 5 * mc.std() / math.sqrt(n)


def test_discretized_decoder_is_the_elbo_decoder_term():
    s = schedules.linear(10, 1e-3, 0.2)
    x0, mean = eight_bit((3, 1, 4, 4), gen(9)), torch.randn(3, 1, 4, 4, generator=gen(10), dtype=F64) * 0.5
    ours = daed.decoder_nll(x0, mean, 0.03)
    theirs = diffusion.vlb_term(s, x0, x0, 1, mean, 0.03)
    assert torch.allclose(ours, theirs, rtol=1e-12)


def _gaussian_components(s, t_s, v):
    """Exact reverse steps and the exact denoiser (posterior of x_0 given x_{t_s}) for N(0, v) data."""
    exact = gaussian_chain.exact_reverse(s, 0.0, v)
    p_theta = lambda x, t: (exact.a[t].reshape(-1, 1) * x + exact.b[t].reshape(-1, 1),   # noqa: E731
                            exact.v[t].reshape(-1, 1))
    abar = float(s.alpha_bars[t_s])
    var_x = abar * v + 1 - abar
    dae = lambda x: math.sqrt(abar) * v / var_x * x   # noqa: E731
    return p_theta, dae, v - abar * v**2 / var_x


@pytest.mark.slow
@pytest.mark.parametrize("t_s", [1, 5, 20])
def test_bound_is_tight_for_gaussian_data_with_exact_components(t_s):
    s, v = schedules.cosine(60), 0.3
    assert float(s.alpha_bars[-1]) < 1e-6                  # q(x_T) is N(0, 1) to this accuracy
    p_theta, dae, post_var = _gaussian_components(s, t_s, v)
    x0 = torch.tensor([0.0, 0.4, -1.1], dtype=F64).repeat_interleave(20_000)[:, None]
    b = daed.daed_bound(p_theta, dae, s, t_s, x0, post_var, generator=gen(11), decoder="gaussian")
    nats = (b["total"] * math.log(2)).reshape(3, -1)       # D = 1
    log_q = -0.5 * (math.log(2 * math.pi * v) + x0.reshape(3, -1)[:, 0] ** 2 / v)
    se = nats.std(1) / math.sqrt(nats.shape[1])
    assert ((nats.mean(1) + log_q).abs() < 5 * se + 1e-4).all(), (nats.mean(1), -log_q, se)
    # the source's eq. 12, E[log p(x0 | f(x)) + log p(x)] with the exact marginal p(x) = q(x_{t_s}),
    # exceeds log q(x_0) by minus the entropy of q(x_{t_s} | x_0) (eq-daed-entropy-gap)
    abar = float(s.alpha_bars[t_s])
    x = diffusion.q_sample(s, x0, t_s, torch.randn(x0.shape, generator=gen(12), dtype=F64))
    eq12 = -daed.decoder_nll(x0, dae(x), post_var, "gaussian") \
        + gaussian_chain.log_normal(x[:, 0], 0.0, abar * v + 1 - abar)
    gap = (eq12.reshape(3, -1).mean(1) - log_q)
    assert ((gap - float(entropy_gap(1 - abar, 1))).abs() < 5 * eq12.reshape(3, -1).std(1) / math.sqrt(20_000)).all()


# ---------------------------------------------------------------------------------------------
# chains and sampling


def test_run_chain_to_zero_is_ddim_sample():
    s = schedules.linear(30, 1e-3, 0.1)
    model = tiny_unet()
    x = torch.randn(2, 1, 28, 28, generator=gen(13))
    for eta, steps in ((1.0, 12), (0.0, 5)):
        ours = daed.run_chain(model, s, x, 12, 0, steps=steps, eta=eta, generator=gen(14))
        theirs = samplers.ddim_sample(model, s, None, steps, eta=eta, x_T=x, generator=gen(14), progress=False,
                                      t_start=12)
        assert torch.equal(ours, theirs)


def test_reconstruct_draws_the_noise_then_runs_the_chain():
    s = schedules.linear(30, 1e-3, 0.1)
    model, x0 = tiny_unet(), eight_bit((2, 1, 28, 28), gen(15)).float()
    ours = daed.reconstruct(model, s, x0, 7, eta=1.0, generator=gen(16))
    g = gen(16)
    x_t = diffusion.q_sample(s, x0, 7, torch.randn(x0.shape, generator=g))
    assert torch.equal(ours, daed.run_chain(model, s, x_t, 7, 0, eta=1.0, generator=g))


def test_daed_sample_is_chain_top_up_and_dae():
    s = schedules.linear(30, 1e-3, 0.1)
    model = tiny_unet()
    dae = lambda x: 2 * x   # noqa: E731
    t_s = 6
    exact_level = daed.noise_level(s, t_s)
    out, x_ts = daed.daed_sample(model, s, dae, exact_level, (2, 1, 28, 28), seed=3, return_chain=True)
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn(2, 1, 28, 28, generator=g)
    chain, kept = daed.run_chain(model, s, x_T, s.T, 0, generator=g, keep={t_s})
    assert torch.equal(x_ts, kept[t_s]) and torch.equal(out, 2 * kept[t_s])
    between = 0.5 * (exact_level + daed.noise_level(s, t_s + 1))           # needs a top-up from level t_s
    out2, x_ts2 = daed.daed_sample(model, s, dae, between, (2, 1, 28, 28), seed=3, return_chain=True)
    assert torch.equal(x_ts2, x_ts) and not torch.equal(out2, out)


# ---------------------------------------------------------------------------------------------
# the letters set


@pytest.mark.slow
def test_letters_are_8_bit_images_in_range_and_reproducible(monkeypatch):
    monkeypatch.setenv("DLIB_OFFLINE", "1")
    test = data.load("letters", "test")
    assert test.images.shape == (500, 1, 28, 28) and test.images.dtype == torch.float32
    assert test.images.min() == -1 and test.images.max() == 1
    levels = (test.images + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert set(test.labels.tolist()) == set(range(26))
    assert torch.equal(test.images, data.load("letters", "test").images)
    ink = (test.images > 0).float().mean().item()
    assert 0.05 < ink < 0.3                                    # strokes on a background, like MNIST
    train = data.load("letters", "train", n=50, seed=1)
    assert len(train) == 50 and not torch.equal(train.images[:5], test.images[:5])
    test.images.zero_()                                        # the cache is never handed out
    assert data.load("letters", "test").images.min() == -1


# ---------------------------------------------------------------------------------------------
# the denoiser's trainer


TINY = {"name": "tiny_dae", "model": {"base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                                      "attention_resolutions": [], "groups": 4},
        "schedule": {"kind": "linear", "T": 300}, "t_s": 27, "data": {"name": "mnist", "split": "train", "n": 64},
        "batch_size": 8, "steps": 6, "warmup": 2, "precision": "fp32", "checkpoint_every": 3, "log_every": 1}


@pytest.mark.slow
def test_a_segmented_and_resumed_run_ends_with_the_same_weights(tmp_path):
    from dlib import checkpoint, daed_train

    straight = daed_train.train_dae(TINY, tmp_path / "a", progress=False)
    first = daed_train.train_dae(TINY, tmp_path / "b", segment=4, progress=False)
    assert first["steps"] == 4 and not first["finished"]
    with pytest.raises(ValueError, match="already holds a run"):
        daed_train.train_dae(TINY, tmp_path / "b", progress=False)
    resumed = daed_train.train_dae(TINY, tmp_path / "b", resume=True, progress=False)
    assert resumed["start_step"] == 4 and resumed["finished"]
    assert resumed["weights_digest"] == straight["weights_digest"]
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))
    model, info = checkpoint.load(tmp_path / "b" / "model.safetensors")
    assert isinstance(model, nets.DenoisingAutoencoder) and info["extra"]["t_s"] == 27
    assert info["extra"]["beta_1"] == pytest.approx(daed.noise_level(schedules.linear(300), 27))
    with pytest.raises(ValueError, match="config differs"):
        daed_train.train_dae({**TINY, "lr": 0.01}, tmp_path / "b", resume=True, progress=False)


def test_dae_config_refuses_bad_values():
    from dlib.config import ConfigError
    from dlib.daed_train import DAEConfig

    with pytest.raises(ConfigError, match="t_s"):
        DAEConfig.from_dict({**TINY, "t_s": 300})
    with pytest.raises(ConfigError, match="model.colour"):
        DAEConfig.from_dict({**TINY, "model": {"colour": 3}})
    assert DAEConfig.from_dict(TINY).beta_1 == pytest.approx(1 - float(schedules.linear(300).alpha_bars[27]))


def test_committed_denoisers_match_their_manifests():
    from dlib import checkpoint
    from dlib.daed_train import load_config

    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    runs = sorted(p for p in (root / "checkpoints").glob("daed_*") if (p / "manifest.json").is_file()
                  and json.loads((p / "manifest.json").read_text()).get("architecture") == "DenoisingAutoencoder")
    assert len(runs) == 3   # daed_gen_b100, the whole-bound generator, is a UNet: test_committed_checkpoints has it
    for run in runs:
        manifest = json.loads((run / "manifest.json").read_text())
        model, info = checkpoint.load(run / "model.safetensors")            # strict, digest-checked
        assert isinstance(model, nets.DenoisingAutoencoder)
        assert checkpoint.read(run / "model.safetensors")[1]["sha256"] == manifest["weights_sha256"]
        assert info["step"] == manifest["steps"] and info["train_config"] == manifest["config"]
        cfg = load_config(run / "config.yaml")
        assert cfg.to_dict() == manifest["config"] and cfg.t_s == manifest["t_s"] == info["extra"]["t_s"]
        assert manifest["beta_1"] == pytest.approx(daed.noise_level(schedules.from_config(cfg.schedule), cfg.t_s))
        assert (run / "model.safetensors").stat().st_size <= 10 * 2**20
        log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
        assert log[-1]["step"] == manifest["steps"] and log[-1]["loss"] == manifest["final_loss"]
        assert 0 < manifest["metrics"]["decoder_variance"] < 1
