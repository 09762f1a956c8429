"""Images per second of DDIM-50 sampling: dlib's front door against diffusers, batch size swept.

Three loops draw DDIM-50 samples (eta = 0, linear schedule, T = 1000) side by side in this process:

* ``dlib``            -- ``dlib.samplers.sample`` on the committed MNIST U-Net (checkpoints/mnist_eps);
* ``dlib+diffusers``  -- the same network driven by diffusers' ``DDIMScheduler`` (its loop, our net);
* ``UNet2DModel``     -- diffusers' ``UNet2DModel`` with the same layout at a matched parameter count,
  driven by ``DDIMScheduler`` (untrained weights: only the time matters here).

For each batch size the loops are interleaved for ``--rounds`` rounds and the median kept; the
table prints images/s and the ratios dlib/peer. With ``--precision bf16`` every loop runs under
bf16 autocast (only worth it on CPUs with bf16 units or on GPUs; see the printed hardware line).
``--fid N`` also draws N samples with dlib at the default batch size in fp32 and in bf16 from
``--fid-seeds`` seeds and prints their classifier-FID against the held-out digits (mean and sd,
with the book's tie verdict), beside the real-vs-real value at the same N, so that a speed-up that
changes the samples would show.

    OMP_NUM_THREADS=2 python benchmarks/sampling_throughput.py --batches 16,64,128,256,500 --rounds 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import environment, matched_diffusers, run_scheduler  # noqa: E402
from dlib import checkpoint, metrics, provenance, samplers  # noqa: E402
from dlib.runtime import ROOT  # noqa: E402

CHECKPOINT = ROOT / "checkpoints" / "mnist_eps" / "model.safetensors"
STEPS = 50


def _autocast(precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def dlib_loop(model, schedule, precision):
    def run(batch):
        return samplers.sample(model, schedule, batch, sampler="ddim", steps=STEPS, batch_size=batch, seed=0,
                               precision=precision)
    return run


def diffusers_loop(eps_model, precision):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    sched.set_timesteps(STEPS)

    def run(batch):
        g = torch.Generator().manual_seed(0)
        with torch.inference_mode(), _autocast(precision):
            return run_scheduler(sched, eps_model, torch.randn(batch, 1, 28, 28, generator=g), g, eta=0.0)
    return run


def fid_check(model, schedule, n: int, seeds: int) -> dict:
    """Classifier-FID of n DDIM samples in fp32 and in bf16, ``seeds`` sampling seeds each, judged by
    the book's tie rule (chapter "measuring"), beside the real-vs-real baseline at the same n.

    The same seed gives both precisions the same x_T, so the two sets differ only by rounding."""
    scores = {p: [] for p in ("fp32", "bf16")}
    for seed in range(seeds):
        for precision in scores:
            x = samplers.sample(model, schedule, n, sampler="ddim", steps=STEPS, seed=seed, precision=precision)
            scores[precision].append(metrics.evaluate(x, ["classifier-fid"], reference="mnist-test")["classifier-fid"])
    base = [metrics.real_vs_real(n, seed=s)["classifier-fid"] for s in range(seeds)]
    (m32, s32), (m16, s16), (mb, sb) = (metrics.seed_spread(v) for v in (scores["fp32"], scores["bf16"], base))
    verdict = metrics.compare(m16, m32, s16, s32)
    print(f"classifier-FID of {n} DDIM-{STEPS} samples vs the held-out digits, mean +- sd over {seeds} seeds: "
          f"fp32 {m32:.2f} +- {s32:.2f}, bf16 {m16:.2f} +- {s16:.2f} (bf16 vs fp32: {verdict}); "
          f"real-vs-real at n={n}: {mb:.2f} +- {sb:.2f}")
    return {"n": n, "seeds": seeds, "fp32": scores["fp32"], "bf16": scores["bf16"], "real_vs_real": base,
            "bf16_vs_fp32": verdict}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16,64,128,256,500")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--fid", type=int, default=0, help="also compare classifier-FID of N samples in fp32 vs bf16")
    ap.add_argument("--fid-seeds", type=int, default=3, help="sampling seeds per precision for --fid (>= 2)")
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, schedule = checkpoint.load_pipeline(CHECKPOINT)
    n_params = sum(p.numel() for p in model.parameters())
    peer, peer_params, width = matched_diffusers(n_params, 28)
    peer.eval()

    def ours_in_diffusers(x, t):          # diffusers' timesteps are 0-based: our t = theirs + 1
        return model(x, torch.full((x.shape[0],), int(t) + 1)).float()

    def unet2d(x, t):
        return peer(x, t).sample.float()

    loops = {"dlib": dlib_loop(model, schedule, args.precision),
             "dlib+diffusers": diffusers_loop(ours_in_diffusers, args.precision),
             "UNet2DModel": diffusers_loop(unet2d, args.precision)}
    print(f"{provenance.hardware('cpu')}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"precision {args.precision}; DDIM-{STEPS}; dlib U-Net {n_params:,} parameters, "
          f"UNet2DModel (c={width}) {peer_params:,}; median of {args.rounds} interleaved rounds")
    rows = []
    header = f"{'batch':>6}" + "".join(f"{name + ' img/s':>22}" for name in loops) + \
        f"{'dlib / dlib+diffusers':>24}{'dlib / UNet2DModel':>20}"
    print(header)
    for batch in [int(b) for b in args.batches.split(",")]:
        times = {name: [] for name in loops}
        for fn in loops.values():  # warm-up
            fn(batch)
        for _ in range(args.rounds):
            for name, fn in loops.items():
                start = time.perf_counter()
                fn(batch)
                times[name].append(time.perf_counter() - start)
        rate = {name: batch / statistics.median(v) for name, v in times.items()}
        rows.append({"batch": batch, **rate})
        print(f"{batch:>6}" + "".join(f"{rate[name]:>22.1f}" for name in loops)
              + f"{rate['dlib'] / rate['dlib+diffusers']:>24.2f}{rate['dlib'] / rate['UNet2DModel']:>20.2f}")
    result = {"benchmark": "sampling_throughput", "precision": args.precision, "steps": STEPS,
              "threads": torch.get_num_threads(), "rounds": args.rounds, "rows": rows, **environment()}
    if args.fid:
        result["fid"] = fid_check(model, schedule, args.fid, args.fid_seeds)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
