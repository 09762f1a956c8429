"""dlib.checkpoint: round trips, strictness, corrupt files, atomic writes, exact resume state.

Equations checked: none (file formats, not equations).
"""
import json
import os
import random

import numpy as np
import pytest
import torch

from dlib import checkpoint
from dlib.checkpoint import CheckpointError
from dlib.nets import DenoisingAutoencoder, UNet

SMALL = dict(base_channels=8, channel_mults=(1, 2), attention_resolutions=(14,), groups=4, attention_heads=2)


def _trained(seed=0, **kwargs):
    """A small UNet, its EMA copy and an AdamW that has taken two steps."""
    torch.manual_seed(seed)
    model = UNet(**{**SMALL, **kwargs})
    ema = UNet(**{**SMALL, **kwargs})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        x = torch.randn(2, 1, 28, 28)
        loss = (model(x, torch.tensor([1, 2])) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.copy_(0.5 * p)
    return model, ema, opt


def _save(path, model, ema=None, opt=None, step=2, **kw):
    return checkpoint.save(path, model, ema=ema, optimizer=opt, step=step, config={"lr": 1e-2},
                           data={"name": "mnist", "n": 10}, **kw)


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_ema_and_raw(tmp_path):
    model, ema, opt = _trained()
    path = _save(tmp_path / "model.safetensors", model, ema, opt, extra={"loss": 0.5})
    loaded, info = checkpoint.load(path)
    assert _same(loaded, ema) and not loaded.training
    assert info["architecture"] == "UNet" and info["model_config"] == model.config
    assert info["step"] == 2 and info["weights"] == "ema" and info["data"]["name"] == "mnist"
    assert info["train_config"] == {"lr": 1e-2} and info["extra"] == {"loss": 0.5}
    assert info["torch_version"] == torch.__version__
    raw, info_raw = checkpoint.load(path, ema=False)
    assert _same(raw, model) and info_raw["weights"] == "model"
    fresh = UNet(**SMALL)
    checkpoint.load_into(fresh, path)
    assert _same(fresh, ema)


def test_published_file_is_plain_safetensors_with_json_metadata(tmp_path):
    model, ema, opt = _trained()
    path = _save(tmp_path / "m.safetensors", model, ema, opt)
    raw = path.read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    meta = {k: json.loads(v) for k, v in header.pop("__metadata__").items()}
    assert meta["format"] == checkpoint.FORMAT and meta["architecture"] == "UNet"
    assert set(header) == set(model.state_dict())  # only one set of weights: the file stays small
    assert checkpoint.train_state_path(path).name == "m.train.safetensors"


def test_raw_weights_need_the_train_file(tmp_path):
    model, ema, opt = _trained()
    path = _save(tmp_path / "m.safetensors", model, ema, opt)
    os.unlink(checkpoint.train_state_path(path))
    with pytest.raises(CheckpointError, match="only the EMA weights"):
        checkpoint.load(path, ema=False)
    model_only = _save(tmp_path / "plain.safetensors", model)  # no EMA: the raw weights are published
    assert _same(checkpoint.load(model_only)[0], model)


def test_truncated_and_corrupt_files(tmp_path):
    model, ema, opt = _trained()
    path = _save(tmp_path / "m.safetensors", model, ema, opt)
    good = path.read_bytes()
    for cut in (5, 100, len(good) // 2, len(good) - 1):
        path.write_bytes(good[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            checkpoint.load(path)
    flipped = bytearray(good)
    flipped[-10] ^= 0xFF  # a bit flip inside the tensor data: only the digest can tell
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="sha256"):
        checkpoint.load(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError):
        checkpoint.load(path)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        checkpoint.load(tmp_path / "missing.safetensors")


def test_other_architecture_is_refused_naming_the_mismatch(tmp_path):
    model, ema, opt = _trained()
    path = _save(tmp_path / "m.safetensors", model, ema, opt)
    wider = UNet(**{**SMALL, "base_channels": 16})
    before = {k: v.clone() for k, v in wider.state_dict().items()}
    with pytest.raises(CheckpointError, match="base_channels: checkpoint 8 vs model 16"):
        checkpoint.load_into(wider, path)
    assert all(torch.equal(before[k], v) for k, v in wider.state_dict().items())  # untouched
    dae = DenoisingAutoencoder(**{k: v for k, v in SMALL.items()})
    with pytest.raises(CheckpointError, match="holds a UNet, not a DenoisingAutoencoder"):
        checkpoint.load_into(dae, path)


def test_metadata_that_does_not_fit_the_tensors(tmp_path):
    # a forged file: the metadata describes an 8-channel net, the tensors come from a 16-channel one
    model, wide = UNet(**SMALL), UNet(**{**SMALL, "base_channels": 16})
    meta = {"format": checkpoint.FORMAT, "architecture": "UNet", "model_config": model.config, "step": 0,
            "weights": "model"}
    checkpoint._write(tmp_path / "forged.safetensors", dict(wide.state_dict()), meta)
    shapes = r"'time_mlp.0.weight' has shape \(64, 16\) in the checkpoint but \(32, 8\)"
    with pytest.raises(CheckpointError, match=shapes):
        checkpoint.load(tmp_path / "forged.safetensors")
    state = dict(model.state_dict())
    state.pop("output.2.bias")
    checkpoint._write(tmp_path / "missing.safetensors", state, meta)
    with pytest.raises(CheckpointError, match="missing keys \\['output.2.bias'\\]"):
        checkpoint.load(tmp_path / "missing.safetensors")


def test_crash_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    model, ema, opt = _trained()
    path = _save(tmp_path / "m.safetensors", model, ema, opt, step=1)
    old = path.read_bytes()

    def crash(fd):
        raise OSError("power cut")

    monkeypatch.setattr(checkpoint.os, "fsync", crash)  # dies after writing the temp file, before the rename
    with pytest.raises(OSError, match="power cut"):
        _save(path, model, ema, opt, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == old and checkpoint.load(path)[1]["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "m.train.safetensors"]  # no temp left


def test_restore_gives_back_the_training_state(tmp_path):
    model, ema, opt = _trained()
    gen = torch.Generator().manual_seed(7)
    torch.randn(3, generator=gen)
    path = _save(tmp_path / "m.safetensors", model, ema, opt, generators={"noise": gen})
    expected = (torch.rand(4), torch.randn(4, generator=gen), np.random.rand(), random.random())

    model2, ema2, opt2 = _trained(seed=1)  # another state everywhere
    gen2 = torch.Generator().manual_seed(99)
    info = checkpoint.restore(path, model2, ema=ema2, optimizer=opt2, generators={"noise": gen2})
    got = (torch.rand(4), torch.randn(4, generator=gen2), np.random.rand(), random.random())
    assert info["step"] == 2
    assert torch.equal(expected[0], got[0]) and torch.equal(expected[1], got[1]) and expected[2:] == got[2:]
    assert _same(model2, model) and _same(ema2, ema)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for i in s1["state"]:
        for name in s1["state"][i]:
            assert torch.equal(s1["state"][i][name], s2["state"][i][name])
    assert s1["param_groups"] == s2["param_groups"]
    # a further step from both gives the same weights
    for m, o in ((model, opt), (model2, opt2)):
        torch.manual_seed(3)
        x = torch.randn(2, 1, 28, 28)
        loss = (m(x, torch.tensor([4, 5])) - x).pow(2).mean()
        o.zero_grad()
        loss.backward()
        o.step()
    assert _same(model, model2)


def test_restore_refuses_a_mismatch_and_changes_nothing(tmp_path):
    model, ema, opt = _trained()
    path = _save(tmp_path / "m.safetensors", model, ema, opt)
    other, other_ema, other_opt = _trained(base_channels=16)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="base_channels"):
        checkpoint.restore(path, other, ema=other_ema, optimizer=other_opt)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(CheckpointError, match="generators \\['data'\\]"):
        checkpoint.restore(path, UNet(**SMALL), generators={"data": torch.Generator()})


def test_save_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=".safetensors"):
        _save(tmp_path / "m.pt", UNet(**SMALL))
    with pytest.raises(ValueError, match="cannot checkpoint"):
        _save(tmp_path / "m.safetensors", torch.nn.Linear(2, 2))
