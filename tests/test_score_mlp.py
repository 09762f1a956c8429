"""dlib.score_mlp: the DSM trainer learns the known score of Gaussian data blurred by each noise level,
reaches the known minimum of the loss, and is reproducible; bad input raises ValueError.

Equations checked: eq-dsm, eq-ncsn-loss.
"""
import math

import pytest
import torch

from dlib.config import ConfigError
from dlib.score_mlp import DSMConfig, ToyScoreMLP, train_dsm

S2 = 0.25                                  # data ~ N(0, S2 I) in 2-D
SIGMAS = torch.tensor([1.0, 0.5, 0.25, 0.1])


def _gaussian_data(n, seed):
    return math.sqrt(S2) * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def test_trainer_learns_the_blurred_gaussian_score():
    torch.manual_seed(0)
    model = ToyScoreMLP(hidden=64, depth=2)
    history = train_dsm(model, _gaussian_data(20_000, 0), SIGMAS, steps=600, batch=256, lr=3e-3,
                        generator=torch.Generator().manual_seed(0))
    assert len(history) == 600 and all(math.isfinite(h) for h in history)
    first, last = sum(history[:5]) / 5, sum(history[-100:]) / 100
    assert last < first - 0.2, (first, last)
    # The blurred data is N(0, (S2 + sigma^2) I); its score -x / (S2 + sigma^2) minimises the loss,
    # and the minimum of E (sigma s + z)^2 per coordinate is S2 / (S2 + sigma^2) (averaged over levels).
    minimum = (S2 / (S2 + SIGMAS**2)).mean().item()
    assert abs(last - minimum) < 0.03, (last, minimum)
    g = torch.Generator().manual_seed(1)
    for sigma in SIGMAS.tolist():
        var = S2 + sigma**2
        x = math.sqrt(var) * torch.randn(2_000, 2, generator=g)
        with torch.no_grad():
            learned = model(x, sigma)
        exact = -x / var
        rel = ((learned - exact).pow(2).sum(1).mean() / exact.pow(2).sum(1).mean()).sqrt().item()
        assert rel < 0.15, (sigma, rel)


def test_trainer_is_seeded_reproducible():
    def run():
        torch.manual_seed(3)
        model = ToyScoreMLP(hidden=32, depth=2)
        hist = train_dsm(model, _gaussian_data(500, 2), [1.0, 0.1], steps=30, batch=64, lr=1e-3,
                         generator=torch.Generator().manual_seed(4))
        return hist, [p.detach().clone() for p in model.parameters()]

    (h1, p1), (h2, p2) = run(), run()
    assert h1 == h2 and all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_model_shapes_and_sigma_scaling():
    torch.manual_seed(0)
    model = ToyScoreMLP(hidden=16, depth=1)
    x = torch.randn(5, 2)
    out = model(x, torch.full((5,), 0.5))
    assert out.shape == (5, 2) and out.dtype == torch.float32
    assert torch.allclose(model(x, 0.5), out)
    assert model(x.double(), 0.5).dtype == torch.float64
    raw = ToyScoreMLP(hidden=16, depth=1, divide_by_sigma=False)
    raw.load_state_dict(model.state_dict())
    assert torch.allclose(raw(x, 0.5) / 0.5, out, atol=1e-6)


def test_bad_input():
    model = ToyScoreMLP(hidden=8, depth=1)
    data = torch.randn(10, 2)
    with pytest.raises(ValueError, match="x must"):
        model(torch.randn(4, 3), 0.5)
    with pytest.raises(ValueError, match="sigma must"):
        model(torch.randn(4, 2), torch.ones(3))
    with pytest.raises(ValueError, match="positive"):
        model(torch.randn(4, 2), 0.0)
    with pytest.raises(ValueError, match="depth"):
        ToyScoreMLP(depth=0)
    with pytest.raises(ValueError, match="data"):
        train_dsm(model, torch.randn(10), [1.0], steps=1)
    with pytest.raises(ValueError, match="sigmas"):
        train_dsm(model, data, [1.0, -0.5], steps=1)
    with pytest.raises(ValueError, match="sigmas"):
        train_dsm(model, data, [], steps=1)
    with pytest.raises(ValueError, match="steps"):
        train_dsm(model, data, [1.0], steps=0)
    with pytest.raises(ValueError, match="batch"):
        train_dsm(model, data, [1.0], steps=1, batch=0)
    with pytest.raises(ValueError, match="lr"):
        train_dsm(model, data, [1.0], steps=1, lr=-1.0)
    with pytest.raises(ValueError, match="shape"):
        train_dsm(_WrongShape(), data, [1.0], steps=1)


class _WrongShape(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, sigma):
        return x[:, :1] * self.w


def test_dsm_config_checks_and_converts_its_numbers():
    cfg = DSMConfig.from_dict({"steps": "1_000", "batch": 64.0, "lr": "3e-3"})  # as YAML may write them
    assert (cfg.steps, cfg.batch, cfg.lr) == (1000, 64, 3e-3) and isinstance(cfg.batch, int)
    assert DSMConfig() == DSMConfig(steps=2000, batch=256, lr=2e-3)
    for bad, match in (({"steps": 0}, "steps"), ({"batch": 1.5}, "batch"), ({"lr": 0.0}, "lr"),
                       ({"lr": "fast"}, "lr"), ({"steps": True}, "steps"), ({"stepz": 3}, "stepz")):
        with pytest.raises(ConfigError, match=match):
            DSMConfig.from_dict(bad)


def test_train_dsm_takes_a_config_or_the_keywords_alike():
    data = _gaussian_data(200, 5)

    def run(**kwargs):
        torch.manual_seed(0)
        model = ToyScoreMLP(hidden=8, depth=1)
        return train_dsm(model, data, [1.0, 0.1], generator=torch.Generator().manual_seed(0), **kwargs)

    by_keywords = run(steps=5, batch=16, lr=1e-3)
    assert len(by_keywords) == 5
    assert run(config=DSMConfig(steps=5, batch=16, lr=1e-3)) == by_keywords
    assert run(config={"steps": 5, "batch": 16, "lr": 1e-3}) == by_keywords
    assert run(config=DSMConfig(steps=9, batch=16, lr=1e-3), steps=5) == by_keywords  # a keyword overrides
    with pytest.raises(ValueError, match="config must be"):
        run(config=5)
