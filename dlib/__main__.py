"""Command line of the book's code: ``python -m dlib {train, sample, evaluate} ...``.

    python -m dlib train configs/mnist_eps.yaml [--steps N] [--out DIR] [--resume]
    python -m dlib sample runs/mnist_eps/model.safetensors --n 64 --sampler ddim --steps 50 \\
        [--eta 0] --seed 0 --out samples.png|samples.npy
    python -m dlib evaluate samples.npy|CHECKPOINT --metrics fid,kid,is,precision,recall [--reference mnist]

Under ``torchrun --nproc_per_node N -m dlib train ...`` training runs data-parallel (see dlib.train).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch


def _device(name: str) -> torch.device:
    from .runtime import device

    return device() if name == "auto" else torch.device(name)


def _train(args) -> int:
    from .train import train

    summary = train(args.config, out_dir=args.out, steps=args.steps, resume=args.resume,
                    progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(json.dumps(summary, indent=2))
    return 0


def _sample_from_checkpoint(path, n, sampler, steps, eta, seed, method, device, raw=False) -> torch.Tensor:
    from . import checkpoint
    from .train import make_schedule, sample_images

    model, info = checkpoint.load(path, device=device, ema=not raw)
    if info["architecture"] != "UNet":
        raise ValueError(f"{path} holds a {info['architecture']}, which does not generate images")
    schedule = make_schedule((info["train_config"] or {}).get("schedule", {"kind": "linear", "T": 1000}))
    return sample_images(model, schedule, n, sampler=sampler, steps=steps, eta=eta, seed=seed, method=method,
                         progress=True)


def _sample(args) -> int:
    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise ValueError(f"--out must end in .png (a grid) or .npy (an array), got {out}")
    if args.n < 1:
        raise ValueError(f"--n must be positive, got {args.n}")
    x = _sample_from_checkpoint(args.checkpoint, args.n, args.sampler, args.steps, args.eta, args.seed,
                                args.method, _device(args.device), args.raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        from .plotting import save_grid

        save_grid(x, out, nrow=math.ceil(math.sqrt(args.n)))
    else:
        np.save(out, x.cpu().numpy().astype(np.float32))
    print(f"wrote {args.n} samples {tuple(x.shape)} to {out}")
    return 0


def _evaluate(args) -> int:
    try:
        from . import metrics
    except ImportError as err:
        raise ValueError(f"evaluate needs dlib.metrics, which cannot be imported here: {err}") from None

    source = Path(args.samples)
    if source.suffix == ".npy":
        samples = torch.from_numpy(np.load(source, allow_pickle=False))
    elif source.suffix == ".safetensors":
        samples = _sample_from_checkpoint(source, args.n, args.sampler, args.steps, args.eta, args.seed,
                                          args.method, _device(args.device))
    else:
        raise ValueError(f"evaluate takes a .npy array of samples or a .safetensors checkpoint, got {source}")
    if samples.ndim != 4:
        raise ValueError(f"samples must have shape (N, C, H, W), got {tuple(samples.shape)}")
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    result = metrics.evaluate(samples, names, reference=args.reference)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dlib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a diffusion model from a YAML config")
    p.add_argument("config", help="YAML file (e.g. configs/mnist_eps.yaml) or a config name")
    p.add_argument("--steps", type=int, default=None, help="total optimizer steps (default: the config's)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    def sampling_options(p, n_default):
        p.add_argument("--n", type=int, default=n_default, help="number of samples")
        p.add_argument("--sampler", choices=("ddpm", "ddim", "angular"), default="ddim")
        p.add_argument("--steps", type=int, default=50, help="sampling steps (ddim, angular)")
        p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
        p.add_argument("--method", choices=("euler", "rk2", "rk4"), default="rk4", help="angular ODE solver")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto")

    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint", help="a model.safetensors written by train")
    sampling_options(p, 64)
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy (float32 (N, C, H, W) in [-1, 1])")
    p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA weights")
    p.set_defaults(func=_sample)

    p = sub.add_parser("evaluate", help="sample-quality metrics of samples or of a checkpoint")
    p.add_argument("samples", help="SAMPLES.npy or a CHECKPOINT (.safetensors, sampled with the options below)")
    p.add_argument("--metrics", default="fid", help="comma-separated: fid,kid,is,precision,recall")
    p.add_argument("--reference", default=None, help="reference data set (default: dlib.metrics' choice)")
    p.add_argument("--json", default=None, help="also write the result to this JSON file")
    sampling_options(p, 1000)
    p.set_defaults(func=_evaluate)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status (2 for bad input, reported on one line)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
