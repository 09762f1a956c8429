"""dlib.runtime: device names, precision choice, seeding and the fast/full setting.

Equations checked: none (devices, precision and the fast/full switch).
"""
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


def test_device_names(monkeypatch):
    from dlib import runtime

    assert runtime.device("cpu") == torch.device("cpu") and runtime.device(torch.device("cpu")).type == "cpu"
    assert runtime.device(None) == runtime.device("auto") == runtime.device()
    for bad in ("bogus", "gpu", "cuda:x", "cuda:-1", "", 3):
        with pytest.raises(ValueError, match="unknown device"):
            runtime.device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"device '{name}' is not available here"):
            runtime.device(name)
    assert runtime.device("auto").type in ("mps", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert runtime.device("cuda") == torch.device("cuda") and runtime.device("CUDA:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="2 CUDA GPU"):
        runtime.device("cuda:2")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'mps' is not available"):
        runtime.device("mps")


def test_device_name_forms_are_checked_without_the_hardware():
    from dlib.runtime import check_device_name

    assert [check_device_name(n) for n in (None, "auto", "cpu", " cuda ", "cuda:3", "mps")] == \
        ["auto", "auto", "cpu", "cuda", "cuda:3", "mps"]
    with pytest.raises(ValueError, match="expected one of auto, cpu, cuda, cuda:N, mps"):
        check_device_name("tpu")
