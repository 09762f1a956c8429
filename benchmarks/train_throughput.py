"""Training throughput (images/s) of dlib's UNet against diffusers' UNet2DModel.

Both networks are DDPM-style U-Nets with the same layout (levels 28 -> 14 -> 7, one ResBlock per
level down and two up, self-attention at 7x7); UNet2DModel's ``block_out_channels`` is chosen so
that its parameter count is within 10 % of dlib's. Both run the same training step (forward under
autocast, eps-MSE loss, backward, AdamW step) on the same batch of 1x28x28 images, interleaved:
per round each model does a few timed steps after a warm-up, and the median over rounds is kept.

    python benchmarks/train_throughput.py [--batch 64] [--rounds 5] [--iters 2] [--device auto]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import matched_diffusers  # noqa: E402
from dlib import provenance  # noqa: E402
from dlib.nets import UNet  # noqa: E402
from dlib.runtime import cpu_has_bf16_units  # noqa: E402


def make_step(model, x, t, dtype, device, call):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = call(model, x, t)
        loss = (out.float() - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    torch.manual_seed(0)
    ours = UNet(image_size=args.image_size, attention_resolutions=((args.image_size + 3) // 4,))
    n_ours = ours.num_parameters()
    theirs, n_theirs, c = matched_diffusers(n_ours, args.image_size)
    print(f"device {device} ({provenance.hardware(device)}), torch {torch.__version__}, "
          f"batch {args.batch} x 1x{args.image_size}x{args.image_size}")
    print(f"dlib UNet(base_channels=32, channel_mults=(1, 2, 2)): {n_ours:,} parameters")
    print(f"diffusers UNet2DModel(block_out_channels=({c}, {2 * c}, {2 * c})): {n_theirs:,} parameters "
          f"({100 * (n_theirs - n_ours) / n_ours:+.1f} %)")
    precisions = [("fp32", None)]
    if device.type == "cuda" or cpu_has_bf16_units():
        precisions.append(("bf16", torch.bfloat16))
    else:
        print("(no bf16 row: this CPU has no AVX512-BF16/AMX units)")
    x = torch.randn(args.batch, 1, args.image_size, args.image_size, device=device)
    t = torch.randint(1, 1001, (args.batch,), device=device)
    calls = {"dlib": (ours.to(device), lambda m, x, t: m(x, t)),
             "diffusers": (theirs.to(device), lambda m, x, t: m(x, t).sample)}
    print(f"{'precision':>9} {'dlib img/s':>11} {'diffusers img/s':>16} {'ratio':>6}")
    for label, dtype in precisions:
        steps = {name: make_step(model, x, t, dtype, device, call) for name, (model, call) in calls.items()}
        for step in steps.values():
            for _ in range(args.warmup):
                step()
        rates = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():  # interleaved: both see the same machine load
                start = time.perf_counter()
                for _ in range(args.iters):
                    step()
                rates[name].append(args.iters * args.batch / (time.perf_counter() - start))
        a, b = statistics.median(rates["dlib"]), statistics.median(rates["diffusers"])
        print(f"{label:>9} {a:>11.0f} {b:>16.0f} {a / b:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
