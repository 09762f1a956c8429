"""Tests of dlib.metrics and its classifier (dlib.metrics.classifier).

Each metric is checked against an independent computation: FID against scipy's matrix square root
and the closed form for Gaussians, KID against an explicit double sum, IS against hand-built
predictions (and torchmetrics' own InceptionScore), precision/recall against a NumPy brute force
and toy sets with known answers.

The Frechet distance between given Gaussians is checked against scipy's matrix square root, the
commuting-covariance closed form and the 2-Wasserstein cost of the explicit optimal linear map; the
verdict of :func:`dlib.metrics.compare` against hand-worked cases.

Equations checked: eq-frechet, eq-fid, eq-kid, eq-is, eq-precision-recall, eq-tie (the metrics'
formulas against scipy, explicit sums, brute force and torchmetrics).
"""
import json

import numpy as np
import pytest
import scipy.linalg
import torch
from safetensors.torch import save_file

from dlib import metrics
from dlib.config import ConfigError
from dlib.data import load
from dlib.metrics import classifier as clf
from dlib.metrics import inception
from dlib.runtime import ROOT

@pytest.fixture(scope="module")
def model():
    return clf.load_classifier()


@pytest.fixture(scope="module")
def mnist():
    """Offline MNIST: the 500 test digits and 500 disjoint training digits."""
    test = load("mnist", "test", source="offline")
    train = load("mnist", "train", source="offline").subset(500, seed=1)
    return test, train


@pytest.fixture(scope="module")
def features(model, mnist):
    test, train = mnist
    noise = torch.randn(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    return {name: metrics.classifier_outputs(x, model, device="cpu")
            for name, x in (("test", test.images), ("train", train.images), ("noise", noise))}


# ---------------------------------------------------------------------------------------------- classifier

def test_committed_classifier_is_accurate_and_described(model, mnist):
    test, _ = mnist
    manifest = json.loads((clf.DEFAULT_PATH.parent / "manifest.json").read_text())
    measured = clf.accuracy(model, test.images, test.labels)
    assert measured == pytest.approx(manifest["test_accuracy"], abs=1e-9)
    assert measured >= 0.97
    assert model.num_features == 128 and not model.training
    assert clf.DEFAULT_PATH.stat().st_size < 1_000_000
    for key in ("command", "config", "git", "data", "steps", "wall_seconds", "hardware", "final_loss"):
        assert key in manifest
    x = test.images[:8]
    assert model.features(x).shape == (8, 128) and model(x).shape == (8, 10)


def test_load_classifier_errors(tmp_path, model):
    with pytest.raises(clf.ClassifierMissing, match="python -m dlib.metrics.classifier configs/mnist_classifier.yaml"):
        clf.load_classifier(tmp_path / "absent.safetensors")
    state = dict(model.state_dict())
    meta = {"format": json.dumps(clf.FORMAT), "model_config": json.dumps(model.config)}
    state["head.weight"] = torch.zeros(11, 128)
    save_file(state, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="head.weight"):
        clf.load_classifier(tmp_path / "bad.safetensors")
    del state["head.weight"]
    save_file(state, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="missing tensors"):
        clf.load_classifier(tmp_path / "missing.safetensors")
    state = dict(model.state_dict())
    state["head.bias"] = state["head.bias"] + 1.0
    save_file(state, str(tmp_path / "edited.safetensors"), metadata={**meta, "sha256": json.dumps(clf.digest(
        model.state_dict()))})
    with pytest.raises(ValueError, match="sha256"):
        clf.load_classifier(tmp_path / "edited.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable"):
        clf.load_classifier(tmp_path / "junk.safetensors")
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.zeros(2, 1, 32, 32))


@pytest.mark.slow
def test_training_is_seeded_and_writes_a_checkpoint(tmp_path):
    config = {"steps": 3, "batch_size": 16, "log_every": 1, "data": {"n": 64}}
    first = clf.train_classifier(config, tmp_path / "a", progress=False)
    second = clf.train_classifier(config, tmp_path / "b", progress=False)
    assert first["weights"]["sha256"] == second["weights"]["sha256"]
    assert len((tmp_path / "a" / "train_log.jsonl").read_text().splitlines()) == 3
    loaded = clf.load_classifier(tmp_path / "a" / "model.safetensors")
    assert loaded.num_parameters() == first["parameters"]
    committed = json.loads((clf.DEFAULT_PATH.parent / "manifest.json").read_text())
    assert set(first) == set(committed) | {"versions"}  # the committed manifest's keys, plus library versions
    assert set(first["git"]) == set(committed["git"]) and set(first["config"]) == set(committed["config"])
    with pytest.raises(ValueError, match="unknown classifier config key"):
        clf.train_classifier({"stepz": 3}, tmp_path / "c")


def test_committed_manifest_matches_the_config_file():
    """The YAML read through ClassifierConfig is exactly the config the committed weights were trained with."""
    manifest = json.loads((clf.DEFAULT_PATH.parent / "manifest.json").read_text())
    config = clf.load_config(clf.DEFAULT_CONFIG_PATH)
    assert config.to_dict() == manifest["config"] == clf.ClassifierConfig().to_dict()
    assert clf.DEFAULT_PATH == ROOT / "checkpoints" / "mnist_classifier" / "model.safetensors"
    # the manifest records the command as it was run, when the module was dlib.classifier
    assert manifest["command"] == clf.TRAIN_COMMAND.replace("dlib.metrics.classifier", "dlib.classifier")


def test_classifier_config_reads_and_refuses():
    config = clf.load_config({"lr": "1e-3", "steps": "5_000", "model": {"dropout": 0.1}, "data": {"n": 64}})
    assert config.lr == 0.001 and isinstance(config.lr, float) and config.steps == 5000
    assert config.model == {"channels": [16, 32, 64], "num_features": 128, "dropout": 0.1}  # the rest: defaults
    assert config.data == {"name": "mnist", "source": "offline", "n": 64}
    with pytest.raises(ConfigError, match="model.num_feature in classifier config.*known keys of 'model' are: "
                                          "channels, dropout, num_features"):
        clf.load_config({"model": {"num_feature": 64}})
    with pytest.raises(ConfigError, match=r"model.dropout must lie in \[0, 1\), got 1.5"):
        clf.load_config({"model": {"dropout": 1.5}})
    with pytest.raises(ConfigError, match="data.source must be one of"):
        clf.load_config({"data": {"source": "web"}})
    with pytest.raises(ConfigError, match="model.channels must be a list of three"):
        clf.load_config({"model": {"channels": [8, 16]}})
    with pytest.raises(ConfigError, match="batch_size must lie in"):
        clf.load_config({"batch_size": 0})
    with pytest.raises(ConfigError, match="unknown classifier config key.*known keys"):
        clf.load_config({"stepz": 3})
    with pytest.raises(ConfigError, match="no classifier config at"):
        clf.load_config("configs/absent.yaml")


def test_classifier_config_from_yaml(tmp_path):
    path = tmp_path / "clf.yaml"
    path.write_text("lr: 1e-3\nmodel: {num_features: 64}\n")  # YAML reads 1e-3 as a string
    config = clf.load_config(path)
    assert config.lr == 0.001 and config.model["num_features"] == 64 and config.name == "clf"
    path.write_text("model:\n  num_feature: 64\n")
    with pytest.raises(ConfigError, match="known keys of 'model' are: channels, dropout, num_features"):
        clf.load_config(path)
    path.write_text("model: {dropout: 1.5}\n")
    with pytest.raises(ConfigError, match="dropout"):
        clf.load_config(path)


def test_random_shift_moves_pixels_and_fills_background():
    x = -torch.ones(2, 1, 5, 5)
    x[:, :, 2, 2] = 1.0
    g = torch.Generator().manual_seed(3)
    shifted = clf.random_shift(x, 2, g)
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(-2, 3, (2, 2), generator=g)
    for i in range(2):  # output pixel (r, c) reads input (r + dy, c + dx)
        expected = -torch.ones(5, 5)
        expected[2 - dy[i], 2 - dx[i]] = 1.0
        assert torch.equal(shifted[i, 0], expected)


# ---------------------------------------------------------------------------------------------- FID, KID

def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


def test_frechet_distance_matches_scipy_and_gaussian_closed_form():
    rng = np.random.default_rng(0)
    d, n = 4, 200_000
    s1, s2 = np.array([1.0, 0.5, 2.0, 1.0]), np.array([0.5, 0.5, 1.0, 3.0])
    a = rng.normal(0.0, 1.0, (n, d)) * np.sqrt(s1)
    b = rng.normal(0.0, 1.0, (n, d)) * np.sqrt(s2) + 0.3
    value = metrics.frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert value == pytest.approx(_scipy_fid(a, b), rel=1e-6)
    closed = d * 0.3**2 + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()  # diagonal covariances
    assert value == pytest.approx(closed, abs=0.05)  # sampling error of means/covariances ~ 1e-2
    small = rng.normal(size=(50, 3))
    assert metrics.frechet_distance(torch.from_numpy(small), torch.from_numpy(small + 1.0)) == pytest.approx(3.0)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def test_gaussian_frechet_distance_matches_scipy_commuting_form_and_optimal_map():
    rng = np.random.default_rng(3)
    d = 6
    mu1, mu2, s1, s2 = rng.normal(size=d), rng.normal(size=d), _spd(rng, d), _spd(rng, d)
    root1 = scipy.linalg.sqrtm(s1).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(root1 @ s2 @ root1).real)
    assert metrics.gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert metrics.gaussian_frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)  # symmetric
    assert metrics.gaussian_frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    # commuting covariances (shared eigenvectors q): |mu1 - mu2|^2 + sum (sqrt(l1) - sqrt(l2))^2
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    l1, l2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    got = metrics.gaussian_frechet_distance(mu1, q @ np.diag(l1) @ q.T, mu2, q @ np.diag(l2) @ q.T)
    assert got == pytest.approx(((mu1 - mu2) ** 2).sum() + ((np.sqrt(l1) - np.sqrt(l2)) ** 2).sum(), rel=1e-9)
    # the optimal map y = mu2 + A (x - mu1), A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2, pushes N(mu1, S1)
    # onto N(mu2, S2) and its expected cost is E|x - y|^2 = |mu1 - mu2|^2 + tr((I - A) S1 (I - A)^T)
    inv_root1 = np.linalg.inv(root1)
    a = inv_root1 @ scipy.linalg.sqrtm(root1 @ s2 @ root1).real @ inv_root1
    assert np.allclose(a @ s1 @ a.T, s2, atol=1e-8)
    cost = ((mu1 - mu2) ** 2).sum() + np.trace((np.eye(d) - a) @ s1 @ (np.eye(d) - a).T)
    assert metrics.gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(cost, rel=1e-8)


def test_frechet_distance_is_gaussian_frechet_distance_of_fitted_statistics():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(300, 5)), rng.normal(0.2, 1.3, size=(200, 5))
    fitted = metrics.gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert metrics.frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(fitted, rel=1e-9)
    with pytest.raises(ValueError, match="covariances"):
        metrics.gaussian_frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="covariances"):
        metrics.gaussian_frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_classifier_fid_orders_real_and_noise(features):
    test, train, noise = features["test"][0], features["train"][0], features["noise"][0]
    real_real = metrics.frechet_distance(test, train)
    real_noise = metrics.frechet_distance(test, noise)
    itself = metrics.frechet_distance(test, test)
    assert abs(itself) < 1e-3 * real_real
    assert real_real > 0 and real_noise > 20 * real_real


def test_torchmetrics_with_classifier_features_module(model, mnist, features):
    from torchmetrics.image.fid import FrechetInceptionDistance

    test, train = mnist
    fid = FrechetInceptionDistance(feature=metrics.ClassifierFeatures(model)).double()
    fid.update(test.images, real=True)
    fid.update(train.images, real=False)
    direct = metrics.frechet_distance(features["test"][0], features["train"][0])
    assert float(fid.compute()) == pytest.approx(direct, rel=1e-4)


def _explicit_kid(a: np.ndarray, b: np.ndarray) -> float:
    d = a.shape[1]
    k = lambda x, y: (x @ y.T / d + 1.0) ** 3  # noqa: E731
    m = len(a)
    k_aa, k_bb, k_ab = k(a, a), k(b, b), k(a, b)
    off = lambda mat: mat.sum() - np.trace(mat)  # noqa: E731
    return float((off(k_aa) + off(k_bb)) / (m * (m - 1)) - 2 * k_ab.sum() / m**2)


def test_kernel_distance_matches_explicit_sum_and_orders_sets(features):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(60, 5)), rng.normal(0.5, 1.0, size=(60, 5))
    mean, std = metrics.kernel_distance(torch.from_numpy(a), torch.from_numpy(b), subsets=3, subset_size=60)
    assert mean == pytest.approx(_explicit_kid(a, b), rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    test, train, noise = features["test"][0], features["train"][0], features["noise"][0]
    real_real = metrics.kernel_distance(test, train, subsets=20, subset_size=250)
    real_noise = metrics.kernel_distance(test, noise, subsets=20, subset_size=250)
    itself = metrics.kernel_distance(test, test, subsets=20, subset_size=250)
    # unbiased: real-vs-real and a set against itself scatter around 0 (overlapping subsets of one set
    # pull it slightly below), both far below real-vs-noise
    assert real_noise[0] > 1.0 and real_noise[0] > 10 * real_noise[1]
    assert abs(real_real[0]) < 0.02 * real_noise[0] and abs(itself[0]) < 0.02 * real_noise[0]
    assert metrics.kernel_distance(test, train, subsets=5, seed=4) == metrics.kernel_distance(test, train, subsets=5,
                                                                                             seed=4)


# ---------------------------------------------------------------------------------------------- IS

def test_inception_score_known_cases():
    confident = 30.0 * torch.eye(10).repeat(20, 1)  # 200 confident predictions, 20 per class
    assert metrics.inception_score(confident)[0] == pytest.approx(10.0, rel=1e-6)
    same_class = 30.0 * torch.eye(10)[[3] * 50]
    assert metrics.inception_score(same_class)[0] == pytest.approx(1.0, abs=1e-9)
    uncertain = torch.zeros(40, 10)  # every image uniform over the classes: p(y|x) = p(y)
    assert metrics.inception_score(uncertain)[0] == pytest.approx(1.0, abs=1e-9)
    two_classes = 30.0 * torch.eye(10)[[0, 7] * 25]  # confident, balanced over 2 classes -> 2
    assert metrics.inception_score(two_classes)[0] == pytest.approx(2.0, rel=1e-6)
    assert metrics.inception_score(confident, splits=10)[0] == pytest.approx(10.0, rel=1e-6)  # splits balanced
    by_class = 30.0 * torch.eye(10)[torch.arange(10).repeat_interleave(20)]  # sorted: one class per split
    mean, std = metrics.inception_score(by_class, splits=10)
    assert mean == pytest.approx(1.0, abs=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    assert metrics.inception_score(by_class, splits=1)[0] == pytest.approx(10.0, rel=1e-6)


def test_inception_score_matches_torchmetrics():
    import warnings

    from torchmetrics.image.inception import InceptionScore

    logits = torch.randn(300, 10, generator=torch.Generator().manual_seed(0)) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = InceptionScore(feature=metrics._GivenFeatures(10), splits=1).double()
        reference.update(logits.double())
        expected = float(reference.compute()[0])
    assert metrics.inception_score(logits)[0] == pytest.approx(expected, rel=1e-9)


def test_classifier_is_of_real_digits_is_high(features):
    real = metrics.inception_score(features["test"][1])[0]
    noise = metrics.inception_score(features["noise"][1])[0]
    assert 8.0 < real <= 10.0 and noise < 3.0


# ---------------------------------------------------------------------------------------------- precision, recall

def _brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def radii(x):
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]

    def covered(points, centres, r):
        return np.mean([any(np.linalg.norm(p - c) <= rc for c, rc in zip(centres, r)) for p in points])

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_matches_brute_force_with_batching():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(80, 3)), rng.normal(1.0, 0.7, size=(70, 3))
    got = metrics.precision_recall(torch.from_numpy(real), torch.from_numpy(fake), k=3, batch_size=16)
    precision, recall = _brute_precision_recall(real, fake, 3)
    assert got["precision"] == pytest.approx(precision) and got["recall"] == pytest.approx(recall)
    assert 0.0 < precision < 1.0 and 0.0 < recall < 1.0


def test_precision_recall_toy_cases():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(2000, 2, generator=g)
    assert metrics.precision_recall(real, real.clone()) == {"precision": 1.0, "recall": 1.0}
    far = torch.rand(2000, 2, generator=g) + 10.0
    assert metrics.precision_recall(real, far) == {"precision": 0.0, "recall": 0.0}
    # fake: as many points, uniform on [0, 0.5]^2 (4x denser). Every fake point lies on the real
    # manifold; the real points it covers are the quarter inside the square plus a rim about one
    # fake k-NN radius (~0.011) wide: expected recall ~0.25 + 2 * 0.5 * 0.011 ~ 0.26.
    sub = 0.5 * torch.rand(2000, 2, generator=g)
    pr = metrics.precision_recall(real, sub)
    assert pr["precision"] > 0.97
    assert 0.22 < pr["recall"] < 0.30
    # mode collapse: real = 8 Gaussian clusters, fake = one of them -> realistic but not diverse
    centres = 5.0 * torch.stack([torch.cos(torch.arange(8) * 0.785), torch.sin(torch.arange(8) * 0.785)], 1)
    labels = torch.randint(0, 8, (2000,), generator=g)
    clusters = centres[labels] + 0.3 * torch.randn(2000, 2, generator=g)
    collapsed = centres[0] + 0.3 * torch.randn(2000, 2, generator=g)
    pr = metrics.precision_recall(clusters, collapsed)
    assert pr["precision"] > 0.9 and pr["recall"] < 0.2


def test_knn_radii_and_errors():
    x = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert torch.allclose(metrics.knn_radii(x, k=1), torch.tensor([1.0, 1.0, 2.0, 4.0]))
    assert torch.allclose(metrics.knn_radii(x, k=2), torch.tensor([3.0, 2.0, 3.0, 6.0]))
    with pytest.raises(ValueError, match="k must be"):
        metrics.knn_radii(x, k=4)
    with pytest.raises(ValueError, match="same d"):
        metrics.precision_recall(torch.zeros(5, 2), torch.zeros(5, 3))


# ---------------------------------------------------------------------------------------------- MAE, MS-SSIM

def test_mae_and_ms_ssim(mnist):
    x = mnist[0].images[:32]
    g = torch.Generator().manual_seed(0)
    noisy = [(x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1) for s in (0.05, 0.2, 0.6)]
    assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    values = [metrics.ms_ssim(n, x) for n in noisy]
    assert 1.0 > values[0] > values[1] > values[2] >= 0.0
    per_image = metrics.ms_ssim(noisy[1], x, reduction="none")
    assert per_image.shape == (32,) and float(per_image.mean()) == pytest.approx(values[1], rel=1e-5)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)  # 32 px works too
    assert metrics.ms_ssim(padded, padded) == pytest.approx(1.0, abs=1e-5)
    assert metrics.mae(x, x) == 0.0
    assert metrics.mae(noisy[1], x) == pytest.approx(float((noisy[1] - x).abs().mean()), rel=1e-6)
    assert metrics.mae(-torch.ones(2, 1, 4, 4), torch.ones(2, 1, 4, 4)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.mae(x, x[:3])
    with pytest.raises(ValueError, match="at least 28x28"):
        metrics.ms_ssim(x[:, :, :16, :16], x[:, :, :16, :16])


# ---------------------------------------------------------------------------------------------- evaluate

@pytest.mark.slow
def test_evaluate_real_digits_against_default_reference(mnist):
    test, _ = mnist
    result = metrics.evaluate(test.images.numpy(), device="cpu", kid_subsets=10)
    assert result["n_samples"] == 500 and result["n_reference"] == 5000
    assert "mnist test+train" in result["reference"] and "not Inception" in result["feature_extractor"]
    assert result["classifier-fid"] < 5.0 and abs(result["classifier-kid"]) < 0.05
    assert result["classifier-is"] > 8.0 and result["classifier-is-reference"] > 8.0
    assert result["precision"] > 0.6 and result["recall"] > 0.6 and result["precision_recall_n"] == 500
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    bad = metrics.evaluate(noise, "classifier-fid,precision,recall", n_reference=200, device="cpu")
    assert bad["classifier-fid"] > 20 * result["classifier-fid"] and bad["precision"] < 0.1
    assert set(bad) >= {"classifier-fid", "precision", "recall"} and "classifier-kid" not in bad


def test_evaluate_rejects_bad_input(mnist):
    x = mnist[0].images[:10]
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\)"):
        metrics.evaluate(x[:, 0])
    with pytest.raises(ValueError, match=r"shape \(N, 1, 28, 28\)"):
        metrics.evaluate(x.repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        metrics.evaluate(2 * x + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        metrics.evaluate(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="floating point"):
        metrics.evaluate(((x + 1) * 127.5).to(torch.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        metrics.evaluate(x[:1])
    with pytest.raises(ValueError, match="unknown metric 'fidd'"):
        metrics.evaluate(x, ["fidd"])
    with pytest.raises(ValueError, match="unknown reference"):
        metrics.evaluate(x, reference="cifar10")
    with pytest.raises(ValueError, match="reference must have shape"):
        metrics.evaluate(x, reference=torch.zeros(10, 1, 32, 32))
    assert metrics.check_images(x + 5e-4).max() <= 1.0  # rounding just outside [-1, 1] is clamped


@pytest.mark.skipif(not metrics.inception_missing(), reason="torch-fidelity and torchvision are installed")
def test_inception_metrics_name_what_is_missing(mnist):
    x = mnist[0].images[:10]
    for name in ("fid", "kid", "is"):
        with pytest.raises(metrics.MetricUnavailable, match=f"use classifier-{name}"):
            metrics.evaluate(x, ["classifier-fid", name])
    with pytest.raises(ValueError,
                       match=r"Inception FID needs torch-fidelity \+ torchvision \+ network; use classifier-fid"):
        metrics.evaluate(x, "fid")


def test_inception_wiring_with_a_stand_in_network(monkeypatch, mnist):
    """The Inception path run with a tiny stand-in for Inception-v3 (torch-fidelity is absent here)."""
    import torchmetrics.image.fid as fid_module
    import torchmetrics.image.inception as is_module
    import torchmetrics.image.kid as kid_module

    class StandIn(torch.nn.Module):  # checks what Inception would receive: uint8, 3 channels
        num_features = 3

        def forward(self, x):
            assert x.dtype == torch.uint8 and x.shape[1:] == (3, 28, 28)
            return x.float().mean(dim=(2, 3)) / 255 + x.float()[:, :, 10:18, 10:18].mean(dim=(2, 3)) / 255

    def stand_in(cls):
        return lambda *args, **kwargs: cls(feature=StandIn(), **{k: v for k, v in kwargs.items() if k != "feature"})

    monkeypatch.setattr(inception, "inception_missing", lambda: [])  # where evaluate and inception_metrics look
    monkeypatch.setattr(fid_module, "FrechetInceptionDistance", stand_in(fid_module.FrechetInceptionDistance))
    monkeypatch.setattr(kid_module, "KernelInceptionDistance", stand_in(kid_module.KernelInceptionDistance))
    monkeypatch.setattr(is_module, "InceptionScore", stand_in(is_module.InceptionScore))
    x = mnist[0].images[:250]
    same = metrics.evaluate(x, ["fid", "kid", "is"], reference=x, device="cpu")
    assert abs(same["fid"]) < 1e-6 and abs(same["kid"]) < 0.05 and same["is"] >= 1.0 and "is-std" in same
    other = metrics.evaluate(x, "fid", reference=-x, device="cpu")
    assert other["fid"] > 0.1

    def offline(*args, **kwargs):
        raise RuntimeError("could not download the Inception weights")

    monkeypatch.setattr(fid_module, "FrechetInceptionDistance", offline)
    with pytest.raises(metrics.MetricUnavailable, match="use classifier-fid.*could not download"):
        metrics.evaluate(x, "fid", reference=x, device="cpu")


@pytest.mark.slow
def test_real_vs_real_baseline_shrinks_with_n_and_uses_held_out_reference():
    small, large = metrics.real_vs_real(40), metrics.real_vs_real(400)
    assert small["n_samples"] == 40 and "mnist test" in large["reference"]
    assert large["classifier-fid"] < small["classifier-fid"]       # FID's small-sample bias
    with pytest.raises(ValueError, match="n must lie"):
        metrics.real_vs_real(10**6)


# ---------------------------------------------------------------------------------------------- resampling, the verdict

def test_seed_spread_and_compare():
    mean, sd = metrics.seed_spread([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0) and sd == pytest.approx(1.0)              # ddof = 1
    with pytest.raises(ValueError, match="at least 2"):
        metrics.seed_spread([1.0])
    with pytest.raises(ValueError, match="finite"):
        metrics.seed_spread([1.0, float("nan")])
    # the threshold is z * sqrt(s_a^2 + s_b^2): with spreads 0.3 and 0.4 it is 2 * 0.5 = 1.0
    assert metrics.compare(5.0, 5.99, 0.3, 0.4) == "tie"
    assert metrics.compare(5.0, 6.0, 0.3, 0.4) == "tie"                         # the boundary is a tie
    assert metrics.compare(5.0, 6.01, 0.3, 0.4) == "lower"
    assert metrics.compare(6.01, 5.0, 0.4, 0.3) == "higher"
    assert metrics.compare(5.0, 5.6, 0.3, 0.4, z=1.0) == "lower"
    assert metrics.compare(2.0, 2.0, 0.0, 0.0) == "tie" and metrics.compare(2.0, 2.1, 0.0, 0.0) == "lower"
    assert metrics.TIE_Z == 2.0
    for bad in ((1.0, 2.0, -0.1, 0.1), (1.0, float("inf"), 0.1, 0.1), (1.0, 2.0, 0.1, float("nan"))):
        with pytest.raises(ValueError):
            metrics.compare(*bad)
    with pytest.raises(ValueError):
        metrics.compare(1.0, 2.0, 0.1, 0.1, z=0.0)


def test_compare_calls_few_differences_between_equal_scores():
    # two scores with the same mean and known spread: a tie about 95% of the time (|Z| <= 2)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, generator=g), torch.randn(4000, generator=g)
    ties = sum(metrics.compare(float(x), float(y), 1.0, 1.0) == "tie" for x, y in zip(a, b))
    assert 0.93 < ties / 4000 < 0.97
