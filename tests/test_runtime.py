import pytest
import torch

import dlib


def test_device_is_usable():
    dev = dlib.device()
    assert dev.type in ("cuda", "mps", "cpu")
    assert torch.ones(2, device=dev).sum().item() == 2


def test_setting_switch(monkeypatch):
    monkeypatch.setenv("DLIB_SETTING", "fast")
    assert dlib.setting() == "fast" and dlib.pick(fast=1, full=2) == 1
    monkeypatch.setenv("DLIB_SETTING", "FULL")
    assert dlib.setting() == "full" and dlib.pick(fast=1, full=2) == 2
    monkeypatch.setenv("DLIB_SETTING", "medium")
    with pytest.raises(ValueError, match="DLIB_SETTING"):
        dlib.setting()
    monkeypatch.delenv("DLIB_SETTING")
    assert dlib.setting() == ("full" if torch.cuda.is_available() else "fast")


def test_seed_everything_is_bit_reproducible():
    def run():
        g = dlib.seed_everything(123)
        net = torch.nn.Linear(5, 3)
        return net(torch.randn(4, 5)), torch.randn(3, generator=g)
    (a1, b1), (a2, b2) = run(), run()
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    with pytest.raises(ValueError):
        dlib.seed_everything(-1)
