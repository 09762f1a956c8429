"""dlib.train and the command line: reproducibility, exact resume, CLI smoke, DDP with gloo."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dlib import checkpoint, train as training
from dlib.nets import UNet
from dlib.train import TrainConfig, batch_indices, load_config, update_ema

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_test.yaml"


def _tiny(**changes):
    return dataclasses.replace(TrainConfig.from_yaml(TINY), **changes)


def _state(out):
    """Raw weights, EMA weights and optimizer moments of the checkpoint in ``out``."""
    tensors, meta = checkpoint.read(checkpoint.train_state_path(Path(out) / "model.safetensors"))
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}, meta["step"]


def _assert_same_state(a, b):
    (sa, step_a), (sb, step_b) = _state(a), _state(b)
    assert step_a == step_b and sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"tensors differ: {different[:5]}"


def test_same_config_and_seed_give_identical_weights(tmp_path):
    s1 = training.train(_tiny(), tmp_path / "a", progress=False)
    s2 = training.train(_tiny(), tmp_path / "b", progress=False)
    assert s1["weights_digest"] == s2["weights_digest"]
    _assert_same_state(tmp_path / "a", tmp_path / "b")
    s3 = training.train(_tiny(seed=1), tmp_path / "c", progress=False)
    assert s3["weights_digest"] != s1["weights_digest"]  # the seed matters


class Crash(Exception):
    pass


def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path):
    full = training.train(_tiny(), tmp_path / "full", progress=False)  # 6 steps, checkpoints at 3 and 6

    def crash_at_5(step, loss, ema):
        if step == 5:
            raise Crash

    with pytest.raises(Crash):
        training.train(_tiny(), tmp_path / "cut", progress=False, callback=crash_at_5)
    assert _state(tmp_path / "cut")[1] == 3  # the last checkpoint before the crash
    resumed = training.train(_tiny(), tmp_path / "cut", progress=False, resume=True)
    assert resumed["start_step"] == 3
    assert resumed["weights_digest"] == full["weights_digest"]
    _assert_same_state(tmp_path / "full", tmp_path / "cut")  # model, EMA and AdamW moments, bit for bit
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the crashed run's lines after step 3 were dropped


def test_extending_a_run_equals_running_it_at_once(tmp_path):
    full = training.train(_tiny(), tmp_path / "full", progress=False)
    training.train(_tiny(), tmp_path / "ext", steps=2, progress=False)
    ext = training.train(_tiny(), tmp_path / "ext", steps=6, progress=False, resume=True)
    assert ext["start_step"] == 2 and ext["weights_digest"] == full["weights_digest"]


def test_resume_refuses_another_config(tmp_path):
    training.train(_tiny(), tmp_path / "run", steps=2, progress=False)
    with pytest.raises(ValueError, match="differs in \\['lr'\\]"):
        training.train(_tiny(lr=1.0), tmp_path / "run", progress=False, resume=True)


@pytest.mark.parametrize("target,schedule,weighting,joint_gamma", [
    ("x0", {"kind": "cosine", "T": 50}, "min_snr", 0.0),
    ("score", {"kind": "linear", "T": 50}, "simple", 0.0),
    ("v", {"kind": "linear", "T": 50}, "elbo", 0.0),
    ("x0_eps", {"kind": "angular", "T": 50}, "simple", 0.5),
])
def test_every_target_trains(tmp_path, target, schedule, weighting, joint_gamma):
    cfg = _tiny(target=target, schedule=schedule, weighting=weighting, joint_gamma=joint_gamma, steps=3,
                checkpoint_every=0)
    summary = training.train(cfg, tmp_path, progress=False)
    model, info = checkpoint.load(tmp_path / "model.safetensors")
    assert np.isfinite(summary["final_loss"]) and model.target == target and info["step"] == 3
    assert model.out_channels == (2 if target == "x0_eps" else 1)


def test_batches_walk_through_seeded_epochs():
    n, b = 10, 4
    stream = torch.cat([batch_indices(step, n, b, seed=3) for step in range(5)])  # 20 = two epochs
    assert sorted(stream[:10].tolist()) == list(range(10)) and sorted(stream[10:].tolist()) == list(range(10))
    assert not torch.equal(stream[:10], stream[10:])  # a new order each epoch
    assert torch.equal(batch_indices(2, n, b, seed=3), stream[8:12])  # pure function of the step
    assert not torch.equal(batch_indices(0, n, b, seed=4), stream[:4])


def test_ema_update_is_the_convex_combination():
    torch.manual_seed(0)
    model, ema = UNet(base_channels=8, groups=4), UNet(base_channels=8, groups=4)
    before = [p.clone() for p in ema.parameters()]
    update_ema(ema, model, 0.9)
    for e, b, p in zip(ema.parameters(), before, model.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * p, atol=1e-6)


def test_config_errors_and_precision():
    with pytest.raises(ValueError, match="unknown training config keys \\['lerning_rate'\\]"):
        TrainConfig.from_dict({"lerning_rate": 1.0})
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="no config"):
        load_config("no_such_config")
    with pytest.raises(ValueError, match="needs CUDA"):
        training.resolve_precision("fp16", torch.device("cpu"))
    assert training.resolve_precision("fp32", torch.device("cpu")) is None


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "configs").glob("mnist_*.yaml") if "classifier" not in p.stem),
                         ids=lambda p: p.stem)
def test_mnist_configs_build_a_0_5_to_3M_parameter_unet(path):
    cfg = TrainConfig.from_yaml(path)
    model = training.build_model(cfg, (1, 28, 28))
    assert cfg.name == path.stem and model.target == cfg.target
    assert 0.5e6 <= model.num_parameters() <= 3e6
    assert cfg.data["name"] == "mnist"


def test_load_or_train_trains_once_then_loads(tmp_path, monkeypatch):
    model, info = training.load_or_train(_tiny(steps=2), out_dir=tmp_path, progress=False)
    assert info["step"] == 2 and not model.training

    def no_training(*args, **kwargs):
        raise AssertionError("should have loaded the finished run")

    monkeypatch.setattr(training, "train", no_training)
    model2, _ = training.load_or_train(_tiny(steps=2), out_dir=tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def _cli(*args, timeout=120, **env):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_cli_train_and_sample(tmp_path):
    out = tmp_path / "run"
    r = _cli("-m", "dlib", "train", str(TINY), "--steps", "4", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 4
    assert {"model.safetensors", "model.train.safetensors", "log.jsonl", "config.yaml", "summary.json"} <= \
        {p.name for p in out.iterdir()}
    ckpt = str(out / "model.safetensors")
    r = _cli("-m", "dlib", "sample", ckpt, "--n", "6", "--sampler", "ddim", "--steps", "4", "--seed", "1",
             "--out", str(tmp_path / "s.npy"))
    assert r.returncode == 0, r.stderr
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (6, 1, 8, 8) and x.dtype == np.float32 and np.abs(x).max() <= 1.0
    from dlib.__main__ import main  # in-process: the same sampling again, then a PNG grid
    assert main(["sample", ckpt, "--n", "6", "--steps", "4", "--seed", "1", "--out", str(tmp_path / "t.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "t.npy"), x)  # seeded
    assert main(["sample", ckpt, "--n", "6", "--sampler", "ddpm", "--seed", "1", "--out", str(tmp_path / "g.png")]) == 0
    import matplotlib.pyplot as plt
    assert plt.imread(tmp_path / "g.png").ndim == 3
    assert main(["sample", ckpt, "--n", "6", "--out", str(tmp_path / "s.jpg")]) == 2  # bad suffix: clear error


def test_ddp_two_processes_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    r = _cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dlib", "train",
             str(TINY), "--steps", "4", "--out", str(out), "--no-progress", timeout=180, OMP_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["rank_digests"][0] == summary["rank_digests"][1]  # the ranks end with identical weights
    # same global batches, t and eps as one process: the weights agree up to summation order
    single = training.train(_tiny(), tmp_path / "single", steps=4, progress=False)
    a, _ = checkpoint.load(out / "model.safetensors", ema=False)
    b, _ = checkpoint.load(Path(single["checkpoint"]), ema=False)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-5), name
    losses = [[json.loads(line)["loss"] for line in (d / "log.jsonl").read_text().splitlines()]
              for d in (out, tmp_path / "single")]
    assert np.allclose(losses[0], losses[1], rtol=1e-5)  # rank 0 logs the loss of the global batch


def test_sample_grids_do_not_disturb_training(tmp_path):
    plain = training.train(_tiny(steps=4), tmp_path / "plain", progress=False)
    cfg = _tiny(steps=4, sample_every=2, n_samples=4, sampler="ddim", sample_steps=2)
    with_grids = training.train(cfg, tmp_path / "grids", progress=False)
    assert with_grids["weights_digest"] == plain["weights_digest"]
    assert sorted(p.name for p in (tmp_path / "grids" / "samples").iterdir()) == ["step_000002.png",
                                                                                 "step_000004.png"]


def test_angular_joint_model_samples_with_the_angular_sampler(tmp_path):
    cfg = _tiny(steps=2, target="x0_eps", schedule={"kind": "angular", "T": 50}, joint_gamma=0.5)
    training.train(cfg, tmp_path, progress=False)
    model, info = checkpoint.load(tmp_path / "model.safetensors")
    schedule = training.make_schedule(info["train_config"]["schedule"])
    x = training.sample_images(model, schedule, 3, sampler="angular", steps=3, method="euler", seed=0)
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all() and x.abs().max() <= 1
    assert torch.equal(x, training.sample_images(model, schedule, 3, sampler="angular", steps=3, method="euler"))


def test_make_grid_places_each_image():
    from dlib.plotting import make_grid

    images = torch.stack([torch.full((1, 2, 3), v) for v in (-1.0, 0.0, 1.0)])  # 3 images of 2x3
    grid = make_grid(images, nrow=2, padding=1, pad_value=0.25)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 1)  # [-1, 1] maps to [0, 1]
    assert (grid[1:3, 1:4] == 0.0).all() and (grid[1:3, 5:8] == 0.5).all() and (grid[4:6, 1:4] == 1.0).all()
    assert (grid[4:6, 5:8] == 0.25).all() and (grid[0] == 0.25).all() and (grid[:, 4] == 0.25).all()
    with pytest.raises(ValueError, match="C = 1 or 3"):
        make_grid(torch.zeros(2, 2, 4, 4))


def test_cli_evaluate_hands_the_samples_to_dlib_metrics(tmp_path, monkeypatch):
    import types

    from dlib.__main__ import main

    calls = []
    fake = types.SimpleNamespace(evaluate=lambda samples, metrics, reference=None: calls.append(
        (tuple(samples.shape), samples.dtype, metrics, reference)) or {"fid": 1.5})
    monkeypatch.setitem(sys.modules, "dlib.metrics", fake)
    monkeypatch.setattr("dlib.metrics", fake, raising=False)
    np.save(tmp_path / "s.npy", np.zeros((5, 1, 8, 8), np.float32))
    assert main(["evaluate", str(tmp_path / "s.npy"), "--metrics", "fid, kid", "--reference", "digits",
                 "--json", str(tmp_path / "m.json")]) == 0
    assert calls == [((5, 1, 8, 8), torch.float32, ["fid", "kid"], "digits")]
    assert json.loads((tmp_path / "m.json").read_text()) == {"fid": 1.5}
    assert main(["evaluate", str(tmp_path / "s.png")]) == 2
