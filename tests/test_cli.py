"""``python -m dlib``: bad input gives one line ``error: ...`` on stderr and exit status 2, never a
traceback, and never costs a run its files. In-process (``dlib.__main__.main``) to stay fast.

Equations checked: none (the command line's handling of bad input).
"""
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from dlib import train as training
from dlib.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_test.yaml"


def _error(capsys, argv) -> str:
    """Run the CLI on argv; assert exit status 2 and a one-line error; return that line."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", str(TINY), "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def fake_metrics(monkeypatch):
    """dlib.metrics replaced by a recorder (no classifier, no data) with the real default metric names."""
    from dlib import metrics as real

    calls = []

    def evaluate(samples, metrics=real.DEFAULT_METRICS, reference=None):
        calls.append((tuple(samples.shape), list(metrics), reference))
        return {"classifier-fid": 1.5}

    fake = types.SimpleNamespace(DEFAULT_METRICS=real.DEFAULT_METRICS, evaluate=evaluate)
    monkeypatch.setitem(sys.modules, "dlib.metrics", fake)
    monkeypatch.setattr("dlib.metrics", fake, raising=False)
    return calls


@pytest.mark.parametrize("device,message", [("cuda", "not available here"), ("cuda:7", "not available here"),
                                            ("bogus", "unknown device 'bogus'")])
def test_unusable_device_is_one_line(capsys, monkeypatch, finished_run, tmp_path, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on this CPU machine, also on a GPU one
    ckpt = finished_run / "model.safetensors"
    assert message in _error(capsys, ["sample", ckpt, "--n", "2", "--device", device, "--out", tmp_path / "s.npy"])
    assert not (tmp_path / "s.npy").exists()


def test_config_device_is_checked_before_training(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "c.yaml").write_text(TINY.read_text().replace("device: cpu", "device: cuda"))
    assert "device 'cuda' is not available" in _error(capsys, ["train", tmp_path / "c.yaml", "--out", tmp_path / "r"])
    assert not (tmp_path / "r").exists()


def test_evaluate_a_missing_file_names_it(capsys, tmp_path):
    missing = tmp_path / "nope.npy"
    assert str(missing) in _error(capsys, ["evaluate", missing])
    assert "checkpoint" in _error(capsys, ["evaluate", tmp_path / "nope.safetensors"])
    assert ".npy array" in _error(capsys, ["evaluate", tmp_path / "s.png"])


def test_evaluate_json_into_a_missing_folder_creates_it(capsys, tmp_path, fake_metrics):
    np.save(tmp_path / "s.npy", np.zeros((5, 1, 8, 8), np.float32))
    target = tmp_path / "out" / "deeper" / "m.json"
    assert main(["evaluate", str(tmp_path / "s.npy"), "--json", str(target)]) == 0
    assert json.loads(target.read_text()) == {"classifier-fid": 1.5}
    (tmp_path / "afolder").mkdir()
    assert "is a folder" in _error(capsys, ["evaluate", tmp_path / "s.npy", "--json", tmp_path / "afolder"])
    assert len(fake_metrics) == 1  # refused before computing


def test_evaluate_defaults_to_the_offline_classifier_metrics(tmp_path, fake_metrics):
    from dlib import metrics

    np.save(tmp_path / "s.npy", np.zeros((5, 1, 8, 8), np.float32))
    assert main(["evaluate", str(tmp_path / "s.npy")]) == 0
    assert main(["evaluate", str(tmp_path / "s.npy"), "--metrics", "fid,precision"]) == 0  # Inception: opt-in
    assert fake_metrics == [((5, 1, 8, 8), list(metrics.DEFAULT_METRICS), None),
                            ((5, 1, 8, 8), ["fid", "precision"], None)]
    assert not {"fid", "kid", "is"} & set(metrics.DEFAULT_METRICS)


@pytest.mark.parametrize("edit,message", [
    (("base_channels: 8", "base_channel: 8"), "unknown key model.base_channel"),
    (("split: train", "splt: train"), "unknown key data.splt"),
    (("T: 50", "TT: 50"), "unknown key schedule.TT"),
    (("ema_decay: 0.9", "ema_decay: 1.5"), "ema_decay must lie in [0, 1)"),
    (("sampler: ddim", "sampler: euler"), "sampler must be one of"),
])
def test_config_mistakes_are_one_line(capsys, tmp_path, edit, message):
    (tmp_path / "c.yaml").write_text(TINY.read_text().replace(*edit))
    assert message in _error(capsys, ["train", tmp_path / "c.yaml", "--out", tmp_path / "r"])
    assert not (tmp_path / "r").exists()


def test_numbers_written_the_usual_ways_train(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text(TINY.read_text().replace("lr: 2.0e-3", "lr: 1e-3"))
    assert main(["train", str(tmp_path / "c.yaml"), "--steps", "1", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 1


def test_steps_zero_is_an_error(capsys, tmp_path):
    assert "--steps must be >= 1" in _error(capsys, ["train", TINY, "--steps", "0", "--out", tmp_path / "r"])
    assert "--minutes must be > 0" in _error(capsys, ["train", TINY, "--minutes", "0", "--out", tmp_path / "r"])
    assert not (tmp_path / "r").exists()


def test_an_existing_run_is_refused_byte_for_byte(capsys, finished_run):
    before = _snapshot(finished_run)
    err = _error(capsys, ["train", TINY, "--out", finished_run])
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert "not both" in _error(capsys, ["train", TINY, "--out", finished_run, "--resume", "--overwrite"])
    assert _snapshot(finished_run) == before


def test_overwrite_replaces_the_run(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(TINY), "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    assert main(["train", str(TINY), "--steps", "1", "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1]
    assert json.loads((out / "summary.json").read_text())["steps"] == 1


def test_resume_continues_the_run(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["train", str(TINY), "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    assert main(["train", str(TINY), "--steps", "3", "--out", str(out), "--no-progress", "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start_step"] == 2 and summary["steps"] == 3
    full = training.train(TINY, tmp_path / "full", steps=3, progress=False)
    assert summary["weights_digest"] == full["weights_digest"]


def test_train_seed_option(capsys, tmp_path):
    """--seed replaces the config's seed (recorded in the run's config) and changes the weights; a negative one is refused."""
    digests = {}
    for seed in (0, 3):
        assert main(["train", str(TINY), "--steps", "1", "--seed", str(seed), "--out", str(tmp_path / f"r{seed}"),
                     "--no-progress"]) == 0
        digests[seed] = json.loads(capsys.readouterr().out)["weights_digest"]
    assert "seed: 3" in (tmp_path / "r3" / "config.yaml").read_text()
    assert digests[0] != digests[3]
    assert "seed" in _error(capsys, ["train", TINY, "--seed", "-1", "--out", tmp_path / "bad"])
    assert not (tmp_path / "bad").exists()
