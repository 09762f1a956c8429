"""Command line of the book's code: ``python -m dlib {train, sample, evaluate} ...``.

    python -m dlib train configs/mnist_eps.yaml [--steps N] [--out DIR] [--resume | --overwrite]
    python -m dlib sample runs/mnist_eps/model.safetensors --n 64 --sampler ddim --steps 50 \\
        [--eta 0] --seed 0 --out samples.png|samples.npy
    python -m dlib evaluate samples.npy|CHECKPOINT [--metrics classifier-fid,...,fid] [--reference mnist]

Bad input (a config typo, a missing file, a device this machine lacks, a run folder that already
holds a run) is reported on one line, ``error: ...``, with exit status 2. Under
``torchrun --nproc_per_node N -m dlib train ...`` training runs data-parallel (see dlib.train).
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

from .data import DatasetUnavailable
from .runtime import device as _device
from .runtime import PRECISIONS
from .samplers import METHODS, SAMPLERS

#: Exceptions that mean bad input (a typo, a missing file, a data set not available offline):
#: reported on one line with exit status 2.
USER_ERRORS = (ValueError, DatasetUnavailable, FileNotFoundError, FileExistsError, IsADirectoryError,
               NotADirectoryError, PermissionError)


def _train(args) -> int:
    from .train import train

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1 (leave it out to use the config's steps), got {args.steps}")
    if args.minutes is not None and not args.minutes > 0:
        raise ValueError(f"--minutes must be > 0 (leave it out for no wall-clock budget), got {args.minutes}")
    config = args.config
    if args.seed is not None:
        from .train_config import load_config

        config = load_config(config).replace(seed=args.seed)
    summary = train(config, out_dir=args.out, steps=args.steps, resume=args.resume,
                    overwrite=args.overwrite, progress=not args.no_progress, minutes=args.minutes)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 reports
        print(json.dumps(summary, indent=2))
    return 0


def _sample_from_checkpoint(path, args, device, raw=False) -> torch.Tensor:
    """Samples of the checkpoint at ``path`` drawn as the sampling options in ``args`` say."""
    from . import checkpoint, samplers

    model, schedule = checkpoint.load_pipeline(path, device=device, ema=not raw)
    return samplers.sample(model, schedule, args.n, sampler=args.sampler, steps=args.steps, eta=args.eta,
                           method=args.method, seed=args.seed, batch_size=args.batch_size,
                           precision=args.precision, progress=True)


def _check_sampling_options(args) -> torch.device:
    """Validate --n, --steps and --device before any work; returns the device (ValueError if bad)."""
    if args.n < 1:
        raise ValueError(f"--n must be positive, got {args.n}")
    if args.steps < 1:
        raise ValueError(f"--steps must be positive, got {args.steps}")
    return _device(args.device)


def _check_input(path: Path, what: str) -> None:
    """ValueError naming ``path`` (called ``what``) unless it is an existing file."""
    if not path.exists():
        raise ValueError(f"no {what} {path}: the file does not exist")
    if not path.is_file():
        raise ValueError(f"{what} {path} is a folder, not a file")


def _sample(args) -> int:
    out = Path(args.out)
    if out.suffix not in (".png", ".npy"):
        raise ValueError(f"--out must end in .png (a grid) or .npy (an array), got {out}")
    dev = _check_sampling_options(args)
    _check_input(Path(args.checkpoint), "checkpoint")
    x = _sample_from_checkpoint(args.checkpoint, args, dev, args.raw)
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
    if source.suffix not in (".npy", ".safetensors"):
        raise ValueError(f"evaluate takes a .npy array of samples or a .safetensors checkpoint, got {source}")
    _check_input(source, "samples file" if source.suffix == ".npy" else "checkpoint")
    dev = _check_sampling_options(args) if source.suffix == ".safetensors" else None
    if args.metrics is None:  # the default: metrics that work offline, on a stock install
        names = list(getattr(metrics, "DEFAULT_METRICS", ()))
    else:
        names = [m.strip() for m in args.metrics.split(",") if m.strip()]
        if not names:
            raise ValueError(f"--metrics names no metric: {args.metrics!r}")
    json_path = Path(args.json) if args.json else None
    if json_path is not None:  # before the (long) computation: make its folder, refuse a folder as the file
        if json_path.is_dir():
            raise ValueError(f"--json {json_path} is a folder; give a file name such as {json_path / 'metrics.json'}")
        json_path.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix == ".npy":
        samples = torch.from_numpy(np.load(source, allow_pickle=False))
    else:
        samples = _sample_from_checkpoint(source, args, dev)
    if samples.ndim != 4:
        raise ValueError(f"samples must have shape (N, C, H, W), got {tuple(samples.shape)}")
    result = metrics.evaluate(samples, *([names] if names else []), reference=args.reference)
    text = json.dumps(result, indent=2, default=float)
    print(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dlib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a diffusion model from a YAML config")
    p.add_argument("config", help="YAML file (e.g. configs/mnist_eps.yaml) or a config name")
    p.add_argument("--steps", type=int, default=None, help="total optimizer steps, >= 1 (default: the config's)")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock budget in minutes for the whole run, counted across --resume segments; training "
                        "stops cleanly at whichever of --steps and --minutes comes first (default: the config's)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<name>); a folder that already "
                   "holds a run is refused unless --resume or --overwrite is given")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out: delete its files (config, "
                   "log, summary, checkpoints, samples) once the new config and data are validated")
    p.add_argument("--seed", type=int, default=None, help="training seed (data order, initial weights, t and "
                   "noise draws), >= 0 (default: the config's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    def sampling_options(p, n_default):
        p.add_argument("--n", type=int, default=n_default, help="number of samples")
        p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
        p.add_argument("--steps", type=int, default=50, help="sampling steps (ddim, angular)")
        p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (0: deterministic)")
        p.add_argument("--method", choices=METHODS, default="rk2", help="angular ODE solver (Butcher tableau)")
        p.add_argument("--batch-size", type=int, default=None,
                       help="images per batch (default: the device's, dlib.samplers.DEFAULT_BATCH)")
        p.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="autocast for the network: auto (default: bf16 on CPUs with bf16 units and on GPUs "
                            "with native bf16, fp16 on older GPUs, fp32 elsewhere), fp32, bf16, fp16; "
                            "benchmarks/results/sampling_throughput/ has the check that bf16 leaves "
                            "classifier-FID unchanged")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default="auto", help="auto (the best available), cpu, cuda, cuda:N or mps")

    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint", help="a model.safetensors written by train")
    sampling_options(p, 64)
    p.add_argument("--out", required=True, help="FILE.png (a grid) or FILE.npy (float32 (N, C, H, W) in [-1, 1])")
    p.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA weights")
    p.set_defaults(func=_sample)

    p = sub.add_parser("evaluate", help="sample-quality metrics of samples or of a checkpoint")
    p.add_argument("samples", help="SAMPLES.npy or a CHECKPOINT (.safetensors, sampled with the options below)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated names (default: dlib.metrics.DEFAULT_METRICS, the classifier metrics "
                   "classifier-fid,classifier-kid,classifier-is,precision,recall, which work offline); the "
                   "Inception-v3 fid,kid,is are opt-in and need torch-fidelity and a download")
    p.add_argument("--reference", default=None, help="reference data set (default: dlib.metrics' choice)")
    p.add_argument("--json", default=None, help="also write the result to this JSON file (missing folders "
                   "are created before the metrics are computed)")
    sampling_options(p, 1000)
    p.set_defaults(func=_evaluate)
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status: 0, or 2 for bad input (:data:`USER_ERRORS`), reported
    on one line ``error: ...`` on stderr (argparse's own usage errors also exit with 2)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        message = " ".join(str(err).split())  # one line, even for multi-line messages
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
