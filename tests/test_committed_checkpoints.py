"""Every diffusion checkpoint committed under checkpoints/ agrees with its provenance.

The chapters print numbers read from these folders, so each must hold what its manifest says:
weights that load strictly (no pickle, digest verified), the step count and configuration the
manifest and config.yaml state, a training log that ends at that step with the manifest's final
loss, and metrics for the samplers the book reports. (The classifier has its own manifest format
and its own tests in test_metrics.py.)

Equations checked: none (provenance of the committed runs).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dlib import checkpoint, train, train_config
from dlib.run_folder import ADDED_KEYS

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted(p for p in (ROOT / "checkpoints").iterdir()
              if (p / "manifest.json").is_file() and "metrics" in json.loads((p / "manifest.json").read_text())
              and json.loads((p / "manifest.json").read_text()).get("architecture") != "DenoisingAutoencoder")
# DAED's denoisers (checkpoints/daed_*) are not diffusion models: tests/test_daed.py checks their manifests
REQUIRED = ("command", "git_commit", "config", "data", "steps", "wall_time_minutes", "hardware",
            "final_loss", "metrics", "weights_sha256", "parameters")


def test_the_objectives_experiment_is_committed():
    names = {p.name for p in RUNS}
    assert {"mnist_eps", "mnist_x0", "mnist_v", "mnist_score"} <= names, names


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_checkpoint_matches_its_manifest(run):
    manifest = json.loads((run / "manifest.json").read_text())
    assert not [k for k in REQUIRED if k not in manifest], "manifest lacks entries"
    model, info = checkpoint.load(run / train.CHECKPOINT_NAME)          # strict, digest-checked
    assert info["step"] == manifest["steps"]
    assert checkpoint.read(run / train.CHECKPOINT_NAME)[1]["sha256"] == manifest["weights_sha256"]
    assert info["train_config"] == manifest["config"]
    # keys added to the config later (run_folder.ADDED_KEYS) read as the value the run implicitly had
    assert train_config.load_config(run / "config.yaml").to_dict() == {**ADDED_KEYS, **manifest["config"]}
    _, schedule = checkpoint.load_pipeline(run / train.CHECKPOINT_NAME)          # the sampling front door's input
    assert schedule.T == manifest["config"]["schedule"]["T"]
    assert sum(p.numel() for p in model.parameters()) == manifest["parameters"]
    assert (run / train.CHECKPOINT_NAME).stat().st_size <= 10 * 2**20
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in log]
    assert steps == sorted(set(steps)) and steps[-1] == manifest["steps"]
    assert log[-1]["loss"] == manifest["final_loss"]
    if manifest["config"].get("t_min", 1) > 1:   # DAED's generator: its chain stops at t_min, a denoiser ends it
        assert manifest["metrics"] == {} and "experiments/daed" in manifest["metrics_note"]
        return
    T = manifest["config"]["schedule"]["T"]
    for sampler in ("ddim50", f"ddpm{T}"):
        scores = manifest["metrics"][sampler]
        assert scores["n_samples"] > 0 and scores["classifier-fid"] >= 0 and 1 <= scores["classifier-is"] <= 10
