"""Training DAED's denoiser: a time-free U-Net that maps x_{t_s} to x_0 at one noise level (chapter "daed").

    python -m dlib.daed_train configs/daed_b100.yaml --out runs/daed_b100 [--segment 1000] [--resume]
    python -m dlib.daed_train configs/daed_b100.yaml --out runs/daed_b100 --publish daed_b100 --note "..."

The denoiser's term of the DAED bound (chapter "daed", eq-daed-decoder) with a Gaussian decoder of
fixed variance is, up to constants, the squared error of f(x) against x_0 with
x = sqrt(1 - beta_1) x_0 + sqrt(beta_1) eps (eq-daed-switch), beta_1 = 1 - alpha_bar_{t_s} of the
config's schedule. The loop is that of :mod:`dlib.train` cut down to one network and one level:
seeded batches (:func:`dlib.train.batch_indices`), AdamW with warm-up and a constant or cosine
learning rate, gradient clipping, EMA weights, bf16 autocast where the CPU or GPU computes it,
a JSONL log and atomic checkpoints (:mod:`dlib.checkpoint`) with the optimizer and the noise
generator, so that a run stopped after a segment (``--segment N``) and resumed ends with the same
weights as one that was not. ``--publish NAME`` writes ``checkpoints/NAME/``: the EMA weights, the
config, the log and a manifest with the provenance and the denoiser's metrics (:func:`publish`).
The diffusion part of DAED is not trained here: the chapter reuses the committed diffusion models.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from . import checkpoint, data as datasets, metrics, provenance, run_folder, runtime, schedules
from .config import Config, ConfigError, choice, number
from .daed import corrupt, noise_level
from .nets import DenoisingAutoencoder
from .run_folder import CHECKPOINT_NAME
from .runtime import PRECISIONS, ROOT
from .train import batch_indices, learning_rate, make_optimizer, update_ema

MODEL_KEYS = ("base_channels", "channel_mults", "num_res_blocks", "attention_resolutions", "dropout", "groups",
              "attention_heads")


@dataclasses.dataclass
class DAEConfig(Config):
    """A denoiser's training settings; ``DAEConfig.from_yaml("configs/daed_b100.yaml")``.

    ``model``: :class:`dlib.nets.DenoisingAutoencoder` arguments (:data:`MODEL_KEYS`; the data fix the
    channels and size). ``schedule`` and ``t_s``: the noise level is beta_1 = 1 - alpha_bar_{t_s} of
    this schedule (chapter "daed", eq-daed-switch). ``data``: :func:`dlib.data.load` arguments.
    Optimisation as :class:`dlib.train_config.TrainConfig` (``lr_schedule`` constant or cosine over
    ``steps``); ``checkpoint_every``, ``log_every`` in steps.
    """

    name: str = "dae"
    model: dict = dataclasses.field(default_factory=dict)
    schedule: dict = dataclasses.field(default_factory=lambda: {"kind": "linear", "T": 300})
    t_s: int = number(1, low=1)
    data: dict = dataclasses.field(default_factory=lambda: {"name": "mnist", "split": "train"})
    batch_size: int = number(64, low=1)
    lr: float = number(1e-3, low=0, low_open=True)
    weight_decay: float = number(0.0, low=0)
    steps: int = number(2000, low=1)
    warmup: int = number(100, low=0)
    lr_schedule: str = choice("cosine", ("constant", "cosine"))
    ema_decay: float = number(0.999, low=0, high=1, high_open=True)
    grad_clip: float = number(1.0, low=0)
    precision: str = choice("auto", PRECISIONS)
    device: str = "auto"
    checkpoint_every: int = number(250, low=0)
    log_every: int = number(25, low=1)
    seed: int = number(0, low=0)

    def section_keys(self) -> dict[str, tuple]:
        return {"model": MODEL_KEYS, "data": ("name", "split", "n", "source", "root", "seed")}

    @classmethod
    def kind_name(cls) -> str:
        return "DAE config"

    def __post_init__(self):
        super().__post_init__()
        try:
            s = schedules.from_config(self.schedule)
        except ValueError as err:
            raise ConfigError(f"schedule {self.schedule}: {err}") from None
        if not self.t_s < s.T:
            raise ConfigError(f"t_s must lie in 1..T-1 = 1..{s.T - 1}, got {self.t_s}")
        runtime.check_device_name(self.device)

    @property
    def beta_1(self) -> float:
        """The noise level 1 - alpha_bar_{t_s} the denoiser removes."""
        return noise_level(schedules.from_config(self.schedule), self.t_s)


def load_config(config) -> DAEConfig:
    """A DAEConfig from a DAEConfig, a dict or a YAML path (ConfigError, a ValueError, when bad)."""
    if isinstance(config, DAEConfig):
        return config
    if isinstance(config, dict):
        return DAEConfig.from_dict(config)
    if not Path(config).is_file():
        raise ConfigError(f"no DAE config at {config}")
    return DAEConfig.from_yaml(config)


def build(cfg: DAEConfig, image_shape) -> DenoisingAutoencoder:
    """The denoiser of a config for images (C, H, W)."""
    c, h, _ = image_shape
    return DenoisingAutoencoder(in_channels=c, image_size=h, **cfg.model)


def train_dae(config, out_dir, resume: bool = False, overwrite: bool = False, segment: int | None = None,
              progress: bool = True) -> dict:
    """Train (or continue) a denoiser; returns a summary dict (steps, final_loss, seconds, ...).

    Args:
        config: a :class:`DAEConfig`, a dict or a YAML path. out_dir: the run folder (see :mod:`dlib.run_folder`).
        resume: continue from the folder's training state. overwrite: replace a run in the folder.
        segment: stop after this many steps of this call (checkpointing), the learning-rate schedule
            still running over the config's ``steps``; resume to continue. None: train to the end.
    """
    cfg = load_config(config)
    out = Path(out_dir)
    run_folder.check(out, resume=resume, overwrite=overwrite)
    dev = runtime.device(cfg.device)
    torch.manual_seed(cfg.seed)
    images = datasets.load(**cfg.data)
    x_all = images.images.to(dev)
    model, ema = build(cfg, images.shape).to(dev), build(cfg, images.shape).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    amp = runtime.autocast_dtype(cfg.precision, dev)
    if amp == torch.float16:
        raise ValueError("fp16 needs a GradScaler, which the DAE trainer does not keep: use bf16 or fp32")
    noise = torch.Generator(dev).manual_seed(cfg.seed + 1)
    path, start, spent = out / CHECKPOINT_NAME, 0, 0.0
    if resume and checkpoint.train_state_path(path).is_file():
        stored = checkpoint.read(checkpoint.train_state_path(path))[1]["train_config"]
        differ = run_folder.config_differences(stored, cfg.to_dict())
        if differ:
            raise ValueError(f"cannot resume {out}: the config differs in {differ}")
        info = checkpoint.restore(path, model, ema=ema, optimizer=optimizer, generators={"noise": noise})
        start, spent = info["step"], float(info["extra"].get("elapsed_seconds", 0.0))
    run_folder.prepare(out, cfg.to_dict(), start, overwrite=overwrite)
    beta_1, stop = cfg.beta_1, cfg.steps if segment is None else min(cfg.steps, start + int(segment))
    t_begin, step, losses = time.perf_counter(), start, []

    def save():
        extra = {"beta_1": beta_1, "t_s": cfg.t_s, "precision": str(amp or "fp32"),
                 "elapsed_seconds": spent + time.perf_counter() - t_begin}
        checkpoint.save(path, model, ema=ema, optimizer=optimizer, step=step, config=cfg.to_dict(),
                        data=images.describe(), extra=extra, generators={"noise": noise})

    model.train()
    while step < stop:
        x0 = x_all[batch_indices(step, len(x_all), cfg.batch_size, cfg.seed).to(dev)]
        eps = torch.randn(x0.shape, generator=noise, device=dev)
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            out_ = model(corrupt(x0, beta_1, eps))
        loss = (out_.float() - x0).pow(2).mean()           # eq-daed-decoder with a fixed variance, up to constants
        lr = learning_rate(cfg, step, step / cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        optimizer.step()
        step += 1
        update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == stop:
            row = {"step": step, "loss": sum(losses) / len(losses), "lr": lr, "grad_norm": float(grad_norm),
                   "seconds": round(spent + time.perf_counter() - t_begin, 1)}
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if progress:
                print(json.dumps(row), flush=True)
            losses = []
        if step == stop or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            save()
    seconds = time.perf_counter() - t_begin
    summary = {"name": cfg.name, "steps": step, "planned_steps": cfg.steps, "start_step": start,
               "elapsed_seconds": spent + seconds, "seconds": seconds, "beta_1": beta_1, "t_s": cfg.t_s,
               "parameters": model.num_parameters(), "precision": str(amp or "fp32"), "device": str(dev),
               "weights_digest": checkpoint.digest(model.state_dict()), "finished": step == cfg.steps}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@torch.no_grad()
def reconstruction_scores(dae, beta_1: float, x0: torch.Tensor, seed: int = 0, batch_size: int = 250) -> dict:
    """The denoiser on images x0 (N, 1, 28, 28) noised to level beta_1 with noise from ``seed``, in fp32.

    Returns ``{"n", "mse" (mean squared error per pixel: the maximum-likelihood variance of a Gaussian
    decoder), "mae", "ms_ssim", "per_image_mae", "per_image_ms_ssim"}`` against x0.
    """
    dev = next(dae.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    outs = []
    for i in range(0, len(x0), batch_size):
        xb = x0[i:i + batch_size]
        eps = torch.randn(xb.shape, generator=gen)
        outs.append(dae(corrupt(xb, beta_1, eps).to(dev)).float().cpu())
    rec = torch.cat(outs)
    per_mae = (rec.clamp(-1, 1) - x0).abs().flatten(1).mean(1)
    per_ssim = metrics.ms_ssim(rec.clamp(-1, 1), x0, reduction="none")
    return {"n": len(x0), "mse": float((rec - x0).pow(2).mean()), "mae": float(per_mae.mean()),
            "ms_ssim": float(per_ssim.mean()), "per_image_mae": per_mae.tolist(), "per_image_ms_ssim": per_ssim.tolist()}


def publish(run_dir, name: str, command: str, note: str = "", wall_minutes: float | None = None) -> dict:
    """Copy a finished run to ``checkpoints/<name>/`` and write its manifest; returns the manifest.

    The manifest: command, config, git commit (:mod:`dlib.provenance`), data, steps, wall time,
    hardware, final loss, parameters, the weights' sha256, and ``metrics``: the fitted decoder
    variance (the EMA denoiser's mean squared error on its training digits, noise seed 0) and its
    reconstruction MAE / MS-SSIM on the held-out digits and on the held-out letters at its level.
    """
    run_dir, out = Path(run_dir), ROOT / "checkpoints" / name
    weights = run_dir / CHECKPOINT_NAME
    model, info = checkpoint.load(weights)
    cfg = load_config(info["train_config"])
    if info["step"] != cfg.steps:
        raise ValueError(f"{run_dir} is at step {info['step']} of {cfg.steps}: finish it before publishing")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(weights, out / CHECKPOINT_NAME)
    shutil.copy2(run_dir / "config.yaml", out / "config.yaml")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    beta_1 = cfg.beta_1
    train_set = datasets.load(**cfg.data).images
    scores = {"decoder_variance": reconstruction_scores(model, beta_1, train_set)["mse"]}
    for label, set_name in (("mnist-test", "mnist"), ("letters-test", "letters")):
        s = reconstruction_scores(model, beta_1, datasets.load(set_name, "test").images)
        scores[label] = {k: s[k] for k in ("n", "mse", "mae", "ms_ssim")}
    elapsed = float(info["extra"].get("elapsed_seconds", 0.0))
    manifest = {
        "name": name, "architecture": info["architecture"], "command": command,
        "git_commit": provenance.commit_label(), "config": info["train_config"], "data": info["data"],
        "t_s": cfg.t_s, "beta_1": beta_1, "switch_log_snr": float(torch.log(torch.tensor((1 - beta_1) / beta_1))),
        "steps": info["step"], "images_seen": info["step"] * cfg.batch_size,
        "wall_time_minutes": round(wall_minutes if wall_minutes is not None else elapsed / 60, 1),
        "wall_time_note": note or "training seconds summed over the run's segments",
        "hardware": provenance.hardware(), "versions": provenance.versions(),
        "precision": info["extra"].get("precision"), "final_loss": log[-1]["loss"],
        "parameters": sum(p.numel() for p in model.parameters()), "metrics": scores,
        "metrics_note": ("decoder_variance: mean squared error per pixel of the EMA denoiser on its training digits "
                         "(noise seed 0), the maximum-likelihood variance of its Gaussian decoder; mnist-test and "
                         "letters-test: reconstruction of the 500 held-out images of each set noised to beta_1 "
                         "(seed 0), MAE and MS-SSIM on [-1, 1] images"),
        "weights_sha256": checkpoint.read(out / CHECKPOINT_NAME)[1]["sha256"],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv=None) -> int:
    """``python -m dlib.daed_train CONFIG --out DIR [--segment N] [--resume | --overwrite] [--publish NAME]``."""
    ap = argparse.ArgumentParser(prog="python -m dlib.daed_train", description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--out", required=True, help="the run folder")
    ap.add_argument("--segment", type=int, default=None, help="stop after this many steps (resume to go on)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--publish", default=None, help="after training, publish the run as checkpoints/NAME")
    ap.add_argument("--train-command", default=None, help="the training command to record (default: this one)")
    ap.add_argument("--note", default="", help="a sentence on how the run went (goes to the manifest)")
    ap.add_argument("--wall-minutes", type=float, default=None, help="training wall time (default: from the run)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    state = Path(args.out) / CHECKPOINT_NAME
    done = state.is_file() and checkpoint.read(state)[1]["step"] == cfg.steps
    if not (args.publish and done):
        summary = train_dae(args.config, args.out, resume=args.resume, overwrite=args.overwrite,
                            segment=args.segment, progress=not args.quiet)
        print(json.dumps({k: summary[k] for k in ("steps", "planned_steps", "elapsed_seconds", "beta_1")}))
        done = summary["finished"]
    if args.publish and done:
        command = args.train_command or "python -m dlib.daed_train " + " ".join(argv if argv is not None
                                                                                else sys.argv[1:])
        manifest = publish(args.out, args.publish, command, args.note, args.wall_minutes)
        print(json.dumps(manifest["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
