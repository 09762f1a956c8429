"""Per-step overhead of dlib's DDPM/DDIM loops against diffusers' DDPMScheduler/DDIMScheduler.

Both drive the same trivial eps-model (``x * 0.1``, a single elementwise op) on a batch of
64 x 1 x 28 x 28 images on the CPU, with the same linear schedule (T = 1000, no clipping, sigma^2 =
beta_tilde), so the time per step is the sampler's own work: the conversion to x0_hat, the update,
the noise, the Python loop. Rounds interleave the four loops; the median over rounds is kept. The
overhead is also given as a fraction of one forward pass of dlib's U-Net (about 1.1 M parameters,
base_channels=32) at the same batch size.

    python benchmarks/sampler_overhead.py [--rounds 7] [--ddpm-steps 1000] [--ddim-steps 50] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import run_scheduler  # noqa: E402
from dlib import provenance, samplers, schedules  # noqa: E402


def trivial_model(x, t):
    return x * 0.1


def dlib_ddpm(shape, T, seed):
    s = schedules.linear(T)
    return lambda: samplers.ddpm_sample(trivial_model, s, shape, seed=seed, progress=False)


def dlib_ddim(shape, T, steps, seed):
    s = schedules.linear(T)
    return lambda: samplers.ddim_sample(trivial_model, s, shape, steps, eta=0.0, seed=seed, progress=False)


def diffusers_loop(sched, shape, seed, **step_kwargs):
    """A closure running ``sched``'s full timestep loop on the trivial model."""

    def run():
        g = torch.Generator().manual_seed(seed)
        return run_scheduler(sched, trivial_model, torch.randn(shape, generator=g), g, **step_kwargs)

    return run


def diffusers_ddpm(shape, T, seed):
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False,
                          variance_type="fixed_small")
    sched.set_timesteps(T)
    return diffusers_loop(sched, shape, seed)


def diffusers_ddim(shape, T, steps, seed):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False)
    sched.set_timesteps(steps)
    return diffusers_loop(sched, shape, seed, eta=0.0)


def unet_forward_seconds(batch: int, repeats: int) -> tuple[float, str]:
    try:
        from dlib.nets import UNet

        net, name = UNet(in_channels=1, base_channels=32).eval(), "dlib.nets.UNet(base_channels=32)"
    except ImportError:  # a plain conv stack of about 1 M parameters stands in
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 128, 3, padding=1), torch.nn.SiLU(),
                                  *[m for _ in range(6) for m in (torch.nn.Conv2d(128, 128, 3, padding=1),
                                                                  torch.nn.SiLU())],
                                  torch.nn.Conv2d(128, 1, 3, padding=1)).eval()
        name = "stand-in conv stack (dlib.nets.UNet not found)"
    params = sum(p.numel() for p in net.parameters())
    x, t = torch.randn(batch, 1, 28, 28), torch.randint(1, 1001, (batch,))
    call = (lambda: net(x, t)) if "UNet" in name else (lambda: net(x))
    times = []
    with torch.no_grad():
        call()
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return statistics.median(times), f"{name}, {params / 1e6:.2f} M parameters"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--ddpm-steps", type=int, default=1000, help="T of the schedule; DDPM runs all T steps")
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: leave torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape, T = (args.batch, 1, 28, 28), args.ddpm_steps
    loops = {
        ("ddpm", "dlib"): (dlib_ddpm(shape, T, 0), T),
        ("ddpm", "diffusers"): (diffusers_ddpm(shape, T, 0), T),
        ("ddim", "dlib"): (dlib_ddim(shape, T, args.ddim_steps, 0), args.ddim_steps),
        ("ddim", "diffusers"): (diffusers_ddim(shape, T, args.ddim_steps, 0), args.ddim_steps),
    }
    per_step = {key: [] for key in loops}
    for fn, _ in loops.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for key, (fn, steps) in loops.items():
            start = time.perf_counter()
            fn()
            per_step[key].append((time.perf_counter() - start) / steps)
    forward, net_name = unet_forward_seconds(args.batch, max(5, args.rounds))
    print(f"{provenance.hardware('cpu')}, torch {torch.__version__}, batch {shape}, linear schedule T={T}, "
          f"trivial model x*0.1, median of {args.rounds} interleaved rounds")
    print(f"U-Net forward at batch {args.batch}: {forward * 1e3:.1f} ms ({net_name})")
    print(f"{'sampler':<18}{'dlib us/step':>14}{'diffusers us/step':>20}{'ratio':>8}{'dlib/forward':>15}")
    for sampler in ("ddpm", "ddim"):
        mine = statistics.median(per_step[(sampler, "dlib")])
        theirs = statistics.median(per_step[(sampler, "diffusers")])
        steps = loops[(sampler, "dlib")][1]
        label = f"{sampler} ({steps} steps)"
        print(f"{label:<18}{mine * 1e6:>14.1f}{theirs * 1e6:>20.1f}{mine / theirs:>8.2f}{mine / forward:>14.2%}")


if __name__ == "__main__":
    main()
