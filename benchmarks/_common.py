"""Helpers shared by the benchmarks that compare dlib with diffusers.

``diffusers_unet`` / ``matched_diffusers``: a UNet2DModel with the layout of dlib's MNIST U-Net
(levels 28 -> 14 -> 7, one ResBlock per level down and two up, self-attention at 7x7) and widths
(c, 2c, 2c) chosen so that its parameter count is the closest to a target (for dlib's
base_channels=32 UNet: c = 32, 1,112,801 parameters). ``run_scheduler``: the plain timestep loop
of a diffusers scheduler around any eps-model. diffusers is imported only when these are called.
``environment``: the provenance every benchmark's JSON carries (from :mod:`dlib.provenance`).
``budget_arguments``: the options of the probes that train a config for a few minutes and score it;
``score_weights``: how every such probe and the recipe search score a set of weights (one place, so
their rows compare).
"""
from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from dlib import metrics, provenance, runtime, samplers


def environment() -> dict:
    """``{"hardware": {cpu, cpu_count, fast_bf16, platform, python}, "git": ..., "versions": ...}``.

    ``hardware`` keeps the layout the committed results were written with; ``git`` is
    :func:`dlib.provenance.git_state` and ``versions`` :func:`dlib.provenance.versions`.
    """
    return {"hardware": {"cpu": provenance.cpu_name(), "cpu_count": os.cpu_count(),
                         "fast_bf16": runtime.cpu_has_bf16_units(), "platform": platform.platform(),
                         "python": platform.python_version()},
            "git": provenance.git_state(), "versions": provenance.versions()}


def budget_arguments(p: argparse.ArgumentParser, samples: int) -> None:
    """--base CONFIG, --minutes, --samples (default ``samples``), --threads and --out DIR on ``p``."""
    p.add_argument("--base", default="configs/mnist_2min.yaml", help="the training config to probe")
    p.add_argument("--minutes", type=float, default=2.0, help="training budget per run")
    p.add_argument("--samples", type=int, default=samples, help="DDIM-50 samples scored per row")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json")


METRICS = ("classifier-fid", "classifier-is")
REFERENCE = "mnist-test"


def score_weights(model, schedule, n: int, clip_x0: float | None = None) -> dict:
    """``n`` DDIM-50 samples of ``model`` (eta 0, seed 1000, bf16 where the CPU computes it natively)
    scored by :data:`METRICS` against the held-out digits; returns ``dlib.metrics.evaluate``'s dict."""
    x = samplers.sample(model, schedule, n, sampler="ddim", steps=50, eta=0.0, seed=1000, precision="auto",
                        clip_x0=clip_x0)
    return metrics.evaluate(x, METRICS, reference=REFERENCE)


def diffusers_unet(block_out_channels, image_size):
    """A diffusers UNet2DModel for 1-channel images of side ``image_size`` with these widths."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=image_size, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=block_out_channels,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8, attention_head_dim=16)


def matched_diffusers(target_params, image_size):
    """The UNet2DModel (widths (c, 2c, 2c), c a multiple of 8) closest in parameter count.

    Returns (model, parameter count, c).
    """
    best = None
    for c in range(8, 129, 8):
        model = diffusers_unet((c, 2 * c, 2 * c), image_size)
        n = sum(p.numel() for p in model.parameters())
        if best is None or abs(n - target_params) < abs(best[1] - target_params):
            best = (model, n, c)
    return best


def run_scheduler(sched, eps_model, x, generator=None, **step_kwargs):
    """Run ``sched``'s whole timestep loop from x (the noise x_T) and return the final sample.

    ``eps_model(x, t)`` returns the predicted noise for the batch x at the scheduler's timestep t
    (diffusers' 0-based index, t = 0..T-1); ``generator`` and ``step_kwargs`` (e.g. ``eta``) go to
    ``sched.step``. Runs without gradients; call ``sched.set_timesteps`` first.
    """
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(eps_model(x, t), t, x, generator=generator, **step_kwargs).prev_sample
    return x
