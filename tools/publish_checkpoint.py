"""Publish a training run as a committed checkpoint with its provenance.

    python tools/publish_checkpoint.py runs/mnist_eps mnist_eps --ddim-samples 1000 --ddpm-samples 200

Copies the run's EMA weights (model.safetensors), config and log into checkpoints/<name>/, draws
samples with DDIM-50 and DDPM-T (and the angular ODE) through dlib.samplers.sample, measures them
with dlib.metrics (classifier-FID, classifier-IS, precision, recall against the held-out digits,
with the real-vs-real baseline at the same sample count), saves a sample grid, and writes
manifest.json: command, config, git commit, data, steps, wall time, hardware, library versions,
final loss, metrics (the provenance comes from dlib.provenance).
The training state (*.train.safetensors, optimizer and RNG) stays in the run folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlib import checkpoint, metrics, plotting, provenance, samplers, train_config  # noqa: E402

METRICS = ("classifier-fid", "classifier-is", "precision", "recall")
REFERENCE = "mnist-test"   # the held-out digits, disjoint from the training digits (chapter "measuring")


#: sampler name in the manifest -> arguments of dlib.samplers.sample (T filled in for DDPM)
SAMPLERS = {"ddim50": dict(sampler="ddim", steps=50),
            "angular_rk2_25": dict(sampler="angular", steps=25, method="rk2")}  # Heun: 50 model calls, as DDIM-50


def _measure(model, schedule, sampler: str, n: int, seed: int, clip_x0) -> tuple[torch.Tensor, dict, float]:
    """n samples drawn with ``sampler`` and their scores against the held-out digits, with the
    real-vs-real baseline at the same n (dlib.metrics.real_vs_real)."""
    start = time.time()
    kwargs = SAMPLERS.get(sampler, dict(sampler="ddpm"))
    samples = samplers.sample(model, schedule, n, seed=seed, clip_x0=clip_x0, **kwargs)
    seconds = time.time() - start
    scores = metrics.evaluate(samples, METRICS, reference=REFERENCE)
    baseline = metrics.real_vs_real(n, METRICS, reference=REFERENCE)
    scores["real_vs_real"] = {k: baseline[k] for k in ("classifier-fid", "classifier-is", "precision", "recall")}
    return samples, scores, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("name")
    p.add_argument("--ddim-samples", type=int, default=1000)
    p.add_argument("--ddpm-samples", type=int, default=200)
    p.add_argument("--angular-samples", type=int, default=0,
                   help="also sample with the angular ODE (Heun, 25 steps); for angular-schedule models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clip-x0", type=float, default=None,
                   help="clamp x0_hat to [-c, c] while sampling (recorded in the manifest; default: no clamp)")
    p.add_argument("--wall-minutes", type=float, default=None,
                   help="training wall time when the run had several segments (default: file times)")
    p.add_argument("--note", default="", help="a sentence on how the run went (segments, threads, sharing)")
    p.add_argument("--metrics-note", default=None,
                   help="replaces the manifest's note on the metrics (e.g. where a model not scored here is scored)")
    p.add_argument("--train-command", default=None,
                   help="the training command as run (default: python -m dlib train configs/NAME.yaml --out RUN_DIR)")
    args = p.parse_args()
    out = ROOT / "checkpoints" / args.name
    out.mkdir(parents=True, exist_ok=True)

    weights = args.run_dir / "model.safetensors"
    model, schedule = checkpoint.load_pipeline(weights)
    info = checkpoint.load(weights)[1]
    cfg = train_config.load_config(info["train_config"])
    shutil.copy2(weights, out / "model.safetensors")
    shutil.copy2(args.run_dir / "config.yaml", out / "config.yaml")
    log = [json.loads(l) for l in (args.run_dir / "log.jsonl").read_text().splitlines() if l.strip()]
    log = [r for r in log if r["step"] <= info["step"]]
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))

    results = {}
    runs = [("ddim50", args.ddim_samples), (f"ddpm{schedule.T}", args.ddpm_samples)]
    if args.angular_samples:
        if cfg.schedule.get("kind") != "angular":
            p.error("--angular-samples needs a model trained on the angular schedule")
        runs.append(("angular_rk2_25", args.angular_samples))
    for sampler, n in runs:
        if n <= 0:
            continue
        samples, scores, seconds = _measure(model, schedule, sampler, n, args.seed, args.clip_x0)
        results[sampler] = {**{k: v for k, v in scores.items() if not isinstance(v, torch.Tensor)},
                            "sampling_seconds": round(seconds, 1)}
        plotting.save_grid(samples[:64], out / f"samples_{sampler}.png", nrow=8)
        print(sampler, json.dumps(results[sampler], indent=1))

    wall = (args.run_dir / "model.safetensors").stat().st_mtime - (args.run_dir / "config.yaml").stat().st_mtime
    wall = args.wall_minutes * 60 if args.wall_minutes is not None else wall
    manifest = {
        "name": args.name,
        "command": args.train_command or f"python -m dlib train configs/{cfg.name}.yaml --out {args.run_dir}",
        "publish_command": " ".join(["python", "tools/publish_checkpoint.py", *sys.argv[1:]]),
        "git_commit": provenance.commit_label(),  # "<sha>" or "<sha>+uncommitted-changes" (dlib/, configs/)
        "config": info["train_config"],
        "data": info["data"],
        "steps": info["step"],
        "planned_steps": cfg.steps,
        "images_seen": info["step"] * cfg.batch_size,
        "wall_time_minutes": round(wall / 60, 1),
        "wall_time_note": args.note or "from the run's config.yaml write to this checkpoint's write",
        "hardware": provenance.hardware(),
        "versions": provenance.versions(),
        "precision": info.get("extra", {}).get("precision"),
        "final_loss": log[-1]["loss"] if log else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "metrics": results,
        "metrics_note": args.metrics_note or ("classifier-FID/IS use dlib's MNIST classifier (checkpoints/mnist_classifier), not Inception; "
                         f"scored against {REFERENCE} (held-out digits), real_vs_real = real training digits at the "
                         "same n" + (f"; sampled with x0_hat clamped to [-{args.clip_x0}, {args.clip_x0}]"
                                     if args.clip_x0 is not None else "")),
        "weights_sha256": info.get("sha256") or checkpoint.read(weights)[1].get("sha256"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
