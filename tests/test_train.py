"""dlib.train and the command line: reproducibility, exact resume, CLI smoke, DDP with gloo.

Equations checked: eq-ddpm-loss (the loop's loss), otherwise none (reproducibility and resume).
"""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dlib import checkpoint, samplers, train as training
from dlib.config import ConfigError
from dlib.nets import UNet
from dlib.train import batch_indices, update_ema
from dlib.runtime import autocast_dtype
from dlib.train_config import TrainConfig, load_config

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


def test_make_optimizer_fuses_on_cpu_and_steps_like_the_reference_adamw():
    """The fused AdamW that training uses takes the same steps as PyTorch's per-tensor loop."""
    torch.manual_seed(0)
    fused_net, loop_net = UNet(base_channels=8, groups=4), UNet(base_channels=8, groups=4)
    loop_net.load_state_dict(fused_net.state_dict())
    fused = training.make_optimizer(fused_net, 1e-3, 0.01, beta2=0.95)
    loop = torch.optim.AdamW(loop_net.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01, foreach=False)
    assert fused.param_groups[0]["fused"] and not loop.param_groups[0]["fused"]
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([1, 10, 100, 999])
    for _ in range(3):
        for net, opt in ((fused_net, fused), (loop_net, loop)):
            opt.zero_grad()
            net(x, t).pow(2).mean().backward()
            opt.step()
    for a, b in zip(fused_net.parameters(), loop_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_config_errors_and_precision():
    with pytest.raises(ValueError, match="unknown training config key \\['lerning_rate'\\]"):
        TrainConfig.from_dict({"lerning_rate": 1.0})
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="no config"):
        load_config("no_such_config")
    with pytest.raises(ValueError, match="needs CUDA"):
        autocast_dtype("fp16", torch.device("cpu"))
    assert autocast_dtype("fp32", torch.device("cpu")) is None


def test_train_no_longer_re_exports_the_config_names():
    for name in ("TrainConfig", "load_config", "autocast_dtype", "cpu_has_bf16_units", "PRECISIONS", "make_schedule",
                 "sample_images"):
        assert not hasattr(training, name), name


@pytest.mark.parametrize("section,typo,known", [
    ("model", {"base_channel": 8}, "base_channels"),
    ("data", {"name": "digits", "splt": "train"}, "split"),
    ("schedule", {"kind": "linear", "TT": 50}, "beta_start"),
    ("schedule", {"kind": "cosine", "beta_start": 0.1}, "max_beta"),  # a key of another kind
])
def test_a_typo_in_a_section_lists_that_sections_keys(section, typo, known):
    with pytest.raises(ConfigError, match=f"unknown key {section}\\.") as err:
        TrainConfig(**{section: typo})
    assert known in str(err.value) and f"known keys of '{section}'" in str(err.value)


def test_section_keys_come_from_the_constructors():
    import inspect

    from dlib import data, schedules

    keys = TrainConfig().section_keys()
    unet = set(inspect.signature(UNet.__init__).parameters) - {"self", "in_channels", "image_size", "target"}
    assert set(keys["model"]) == unet and set(keys["data"]) == set(inspect.signature(data.load).parameters)
    assert keys["schedule"] == ("kind", *schedules.KINDS["linear"])
    assert TrainConfig(schedule={"kind": "angular", "T": 10}).section_keys()["schedule"] == \
        ("kind", *schedules.KINDS["angular"])
    with pytest.raises(ConfigError, match="schedule kind"):
        TrainConfig(schedule={"kind": "sigmoid", "T": 10})
    with pytest.raises(ConfigError, match="T must be a positive int"):
        TrainConfig(schedule={"kind": "linear", "T": 0})
    with pytest.raises(ConfigError, match="data.name"):
        TrainConfig(data={"split": "train"})


def test_numbers_as_yaml_writes_them(tmp_path):
    text = TINY.read_text().replace("lr: 2.0e-3", "lr: 1e-3").replace("steps: 6", "steps: 5_000")
    text = text.replace("beta_start: 1.0e-3", "beta_start: 1e-3")
    (tmp_path / "c.yaml").write_text(text)
    cfg = TrainConfig.from_yaml(tmp_path / "c.yaml")  # PyYAML reads 1e-3 as the string "1e-3"
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float) and cfg.steps == 5000 and isinstance(cfg.steps, int)
    assert cfg.schedule["beta_start"] == 1e-3
    assert TrainConfig(steps=5e3).steps == 5000 and TrainConfig(model={"dropout": "1e-1"}).model["dropout"] == 0.1
    with pytest.raises(ConfigError, match="whole number"):
        TrainConfig(steps=2.5)
    with pytest.raises(ConfigError, match="lr must be a number"):
        TrainConfig(lr="fast")


@pytest.mark.parametrize("field,bad,good", [
    ("lr", 0.0, 1e-4), ("weight_decay", -1e-3, 0.0), ("ema_decay", 1.0, 0.0), ("ema_decay", 1.5, 0.9999),
    ("adam_beta2", 1.0, 0.95),
    ("grad_clip", -1.0, 0.0), ("warmup", -1, 0), ("steps", 0, 1), ("batch_size", 0, 1),
    ("joint_gamma", -0.5, 0.0), ("snr_gamma", 0.0, 1.0), ("seed", -1, 0), ("checkpoint_every", -1, 0),
    ("sample_every", -1, 0), ("log_every", -1, 0), ("n_samples", 0, 1), ("sample_steps", 0, 1),
    ("target", "noise", "v"), ("weighting", "snr", "min_snr"), ("precision", "fp8", "bf16"),
    ("sampler", "euler", "angular"), ("device", "gpu", "cuda:1"),
])
def test_every_field_is_checked(field, bad, good):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: bad})
    assert getattr(TrainConfig(**{field: good}), field) == good


def test_choices_come_from_their_modules():
    from dlib import objectives, samplers, timesteps

    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    assert names["target"].metadata["options"] == objectives.TARGETS
    assert names["t_sampling"].metadata["options"] == timesteps.KINDS
    assert names["weighting"].metadata["options"] == objectives.WEIGHTINGS
    assert names["sampler"].metadata["options"] == samplers.SAMPLERS


@pytest.mark.parametrize("capability,want", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                             ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_takes_bf16_only_on_native_bf16_gpus(monkeypatch, capability, want):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not used
    assert autocast_dtype("auto", torch.device("cuda")) == want
    assert autocast_dtype("fp32", torch.device("cuda")) is None


def test_train_refuses_steps_below_one_and_none_means_the_configs(tmp_path):
    with pytest.raises(ValueError, match="steps"):
        training.train(_tiny(), tmp_path / "zero", steps=0, progress=False)
    assert not (tmp_path / "zero").exists()
    assert training.train(_tiny(steps=2), tmp_path / "none", steps=None, progress=False)["steps"] == 2


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_a_finished_run_is_never_overwritten_by_accident(tmp_path):
    out = tmp_path / "run"
    training.train(_tiny(steps=2, sample_every=2, n_samples=4, sample_steps=2), out, progress=False)
    before = _snapshot(out)
    assert {"config.yaml", "log.jsonl", "summary.json", "model.safetensors"} <= {str(p) for p in before}
    with pytest.raises(ValueError, match="already holds a run .*--resume.*--overwrite"):
        training.train(_tiny(steps=4), out, progress=False)
    with pytest.raises(ValueError, match="not both"):
        training.train(_tiny(steps=4), out, progress=False, resume=True, overwrite=True)
    # --overwrite, but the new config cannot be built: the old run is still untouched
    for bad in (_tiny(data={"name": "no_such_set"}), _tiny(model={**_tiny().model, "groups": 3}),
                _tiny(precision="fp16")):
        with pytest.raises(ValueError):
            training.train(bad, out, progress=False, overwrite=True)
    assert _snapshot(out) == before
    # --overwrite with a good config replaces the run's files (and only those)
    (out / "notes.txt").write_text("mine")
    summary = training.train(_tiny(steps=3), out, progress=False, overwrite=True)
    assert summary["steps"] == 3 and summary["start_step"] == 0
    assert (out / "notes.txt").read_text() == "mine" and not (out / "samples").exists()
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_resume_refuses_weights_without_training_state(tmp_path):
    out = tmp_path / "run"
    training.train(_tiny(steps=2), out, progress=False)
    (out / "model.train.safetensors").unlink()
    before = _snapshot(out)
    with pytest.raises(ValueError, match="no training state"):
        training.train(_tiny(steps=4), out, progress=False, resume=True)
    assert _snapshot(out) == before


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "configs").glob("mnist_*.yaml") if "classifier" not in p.stem),
                         ids=lambda p: p.stem)
def test_mnist_configs_build_a_0_25_to_3M_parameter_unet(path):
    """Every MNIST config builds a U-Net of 0.25M (the fast recipe mnist_2min has 302,116) to 3M parameters."""
    cfg = TrainConfig.from_yaml(path)
    model = training.build_model(cfg, (1, 28, 28))
    assert cfg.name == path.stem and model.target == cfg.target
    assert 0.25e6 <= model.num_parameters() <= 3e6
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


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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
    model, schedule = checkpoint.load_pipeline(tmp_path / "model.safetensors")
    assert schedule.name == "angular(T=50)" and model.target == "x0_eps"
    x = samplers.sample(model, schedule, 3, sampler="angular", steps=3, method="euler", seed=0)
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all() and x.abs().max() <= 1
    assert torch.equal(x, samplers.sample(model, schedule, 3, sampler="angular", steps=3, method="euler"))


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
    fake = types.SimpleNamespace(DEFAULT_METRICS=("classifier-fid",),
                                 evaluate=lambda samples, metrics, reference=None:
                                 calls.append((tuple(samples.shape), samples.dtype, metrics, reference))
                                 or {"fid": 1.5})
    monkeypatch.setitem(sys.modules, "dlib.metrics", fake)
    monkeypatch.setattr("dlib.metrics", fake, raising=False)
    np.save(tmp_path / "s.npy", np.zeros((5, 1, 8, 8), np.float32))
    assert main(["evaluate", str(tmp_path / "s.npy"), "--metrics", "fid, kid", "--reference", "digits",
                 "--json", str(tmp_path / "m.json")]) == 0
    assert calls == [((5, 1, 8, 8), torch.float32, ["fid", "kid"], "digits")]
    assert json.loads((tmp_path / "m.json").read_text()) == {"fid": 1.5}
    assert main(["evaluate", str(tmp_path / "s.png")]) == 2


# ----------------------------------------------------------------------------- wall-clock budget (--minutes)
def test_a_budget_stops_cleanly_with_checkpoint_log_and_summary(tmp_path):
    summary = training.train(_tiny(steps=10_000, log_every=1000, checkpoint_every=0), tmp_path, minutes=0.002,
                             progress=False)
    assert summary["stopped_by"] == "budget" and 1 <= summary["steps"] < 10_000 and summary["planned_steps"] == 10_000
    assert summary["elapsed_seconds"] >= 0.12
    _, info = checkpoint.load(tmp_path / "model.safetensors")
    assert info["step"] == summary["steps"] and info["weights"] == "ema"
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == summary["steps"]          # the end is logged although 1000 does not divide it


def test_resume_after_a_budgeted_stop_equals_an_uninterrupted_run(tmp_path):
    cfg = _tiny(steps=6, log_every=1, checkpoint_every=0)
    first = training.train(cfg, tmp_path / "split", minutes=1e-6, progress=False)       # stops after one step
    assert first["stopped_by"] == "budget" and first["steps"] == 1
    rest = training.train(cfg, tmp_path / "split", resume=True, minutes=60, progress=False)
    assert rest["stopped_by"] == "steps" and rest["start_step"] == 1 and rest["steps"] == 6
    assert rest["elapsed_seconds"] >= first["elapsed_seconds"]                       # the clock carries over
    whole = training.train(cfg, tmp_path / "whole", progress=False)
    assert rest["weights_digest"] == whole["weights_digest"]
    _assert_same_state(tmp_path / "split", tmp_path / "whole")


def test_learning_rate_schedules():
    constant, cosine = _tiny(lr=1e-3, warmup=10), _tiny(lr=1e-3, warmup=10, lr_schedule="cosine")
    assert training.learning_rate(constant, 4, 0.5) == pytest.approx(5e-4)            # warm-up: (4+1)/10
    assert training.learning_rate(constant, 500, 0.9) == pytest.approx(1e-3)
    assert training.learning_rate(cosine, 500, 0.5) == pytest.approx(5e-4)
    assert training.learning_rate(cosine, 500, 1.0) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        _tiny(lr_schedule="linear")
    with pytest.raises(ValueError, match="minutes"):
        _tiny(minutes=0)


def _drawn_timesteps(cfg, out, monkeypatch):
    """Every t the training loop drew while training ``cfg`` into ``out`` (recorded at q_sample)."""
    seen = []
    real_q_sample = training.q_sample

    def recording(schedule, x0, t, eps):
        seen.append(t.clone())
        return real_q_sample(schedule, x0, t, eps)

    monkeypatch.setattr(training, "q_sample", recording)
    training.train(cfg, out, progress=False)
    monkeypatch.undo()
    return torch.cat(seen)


def test_t_min_restricts_the_training_timesteps_and_is_checked(tmp_path, monkeypatch):
    drawn = _drawn_timesteps(_tiny(t_min=40, steps=4), tmp_path / "run", monkeypatch)
    assert drawn.min() >= 40 and drawn.max() <= 50 and len(drawn.unique()) > 1
    drawn = _drawn_timesteps(_tiny(steps=4), tmp_path / "all", monkeypatch)    # the default draws from 1..T
    assert drawn.min() < 40
    with pytest.raises(ValueError, match="t_min must lie in 1..T = 1..50"):
        _tiny(t_min=51)


def test_the_log_snr_law_reaches_the_loop_and_is_checked(tmp_path, monkeypatch):
    cfg = _tiny(t_sampling="logsnr_normal", t_logsnr_mean=8.0, t_logsnr_std=0.5, steps=4)   # log SNR 8: t near 1
    drawn = _drawn_timesteps(cfg, tmp_path / "run", monkeypatch)
    assert drawn.max() <= 3 and drawn.min() >= 1
    with pytest.raises(ConfigError, match="t_sampling"):
        _tiny(t_sampling="edm")
    with pytest.raises(ConfigError, match="t_logsnr_std"):
        _tiny(t_logsnr_std=0.0)


def test_adam_beta2_sets_the_second_moment_decay(tmp_path):
    """One step from the same weights and batch: AdamW's v = (1 - beta2) g^2, so v scales with 1 - beta2."""
    moments = {}
    for beta2 in (0.999, 0.9):
        out = tmp_path / str(beta2)
        training.train(_tiny(steps=1, adam_beta2=beta2), out, progress=False)
        tensors, meta = checkpoint.read(checkpoint.train_state_path(out / "model.safetensors"))
        assert meta["optimizer"]["param_groups"][0]["betas"] == [0.9, beta2]
        moments[beta2] = torch.cat([v.flatten() for k, v in sorted(tensors.items()) if k.endswith(".exp_avg_sq")])
    big = moments[0.999] > 1e-12
    torch.testing.assert_close(moments[0.9][big] / moments[0.999][big], torch.full_like(moments[0.9][big], 100.0),
                               rtol=1e-4, atol=0)
