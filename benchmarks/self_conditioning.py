"""Does self-conditioning (Chen et al. 2022) pay within the two-minute budget? (issue: digits in two minutes)

Self-conditioning feeds the network its own previous estimate of x0 as extra input channels: in
training, half the batches first run the network once without gradient (with zeros in place of the
estimate) and pass the x0_hat of that pass to the second, trained pass; in sampling, each call gets the
x0_hat of the call before. The extra pass costs time, so in a fixed budget the question is whether the
better steps outweigh there being fewer of them.

This is a probe, not a dlib feature: the network is the config's U-Net with one more input channel,
wrapped here, and ``dlib.train`` is used unchanged except that its checkpoint writer is switched off
for this process (the wrapper is not an architecture the checkpoint format knows). Scores use the same
sampling as ``benchmarks/recipe_search.py`` (DDIM-50, eta 0, seed 1000, bf16 where the CPU has it),
so rows compare with its baseline cells at the same seeds and sample count.

    OMP_NUM_THREADS=2 python benchmarks/self_conditioning.py --seeds 0,1 --minutes 2 --samples 300 \\
        --out benchmarks/results/self_conditioning_epyc
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dlib.checkpoint  # noqa: E402
import dlib.train as train_module  # noqa: E402
from dlib import provenance, schedules  # noqa: E402
from dlib.train_config import load_config  # noqa: E402
from benchmarks._common import METRICS, budget_arguments, score_weights  # noqa: E402



class SelfConditioned(torch.nn.Module):
    """``inner(cat[x_t, x0_prev], t)`` for a v-predicting ``inner`` with 2C input and C output channels."""

    def __init__(self, inner: torch.nn.Module, alpha_bars: torch.Tensor):
        super().__init__()
        self.inner, self.alpha_bars = inner, alpha_bars.float()
        self.target, self.in_channels, self.image_size = inner.target, inner.in_channels // 2, inner.image_size
        self.x0_prev, self.t_prev = None, None

    def num_parameters(self) -> int:
        return self.inner.num_parameters()

    def x0_hat(self, x_t, v, a):
        """x0_hat = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v (chapter "objectives", eq-v), clamped to [-1, 1]."""
        return (a.sqrt() * x_t - (1 - a).sqrt() * v.float()).clamp(-1, 1)

    def forward(self, x_t, t):
        t = torch.as_tensor(t, device=x_t.device)
        t = t.expand(x_t.shape[0]) if t.ndim == 0 else t
        a = self.alpha_bars.to(x_t.device)[t.long()].view(-1, 1, 1, 1)
        x0_prev = torch.zeros_like(x_t)
        if self.training:
            if torch.rand(()) < 0.5:
                with torch.no_grad():
                    x0_prev = self.x0_hat(x_t, self.inner(torch.cat([x_t, x0_prev], 1), t), a)
            return self.inner(torch.cat([x_t, x0_prev.to(x_t.dtype)], 1), t)
        # sampling: reuse the previous call's estimate while t keeps falling (a new batch starts high again)
        if self.x0_prev is not None and self.x0_prev.shape == x_t.shape and float(t.max()) < self.t_prev:
            x0_prev = self.x0_prev
        out = self.inner(torch.cat([x_t, x0_prev.to(x_t.dtype)], 1), t)
        self.x0_prev, self.t_prev = self.x0_hat(x_t, out, a), float(t.max())
        return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    budget_arguments(p, samples=300)
    p.add_argument("--seeds", default="0,1", help="training seeds, comma-separated (one run each)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = load_config(args.base)
    if base.target != "v":
        raise ValueError(f"this probe reads the network's output as v; {args.base} has target {base.target!r}")
    base = base.replace(model={**base.model, "out_channels": 1}, steps=10**9, minutes=args.minutes,
                        checkpoint_every=0, sample_every=0, log_every=10**9, device="cpu")
    schedule = schedules.from_config(base.schedule)
    build = train_module.build_model
    train_module.build_model = lambda cfg, shape: SelfConditioned(build(cfg, (2 * shape[0], *shape[1:])),
                                                                  schedule.alpha_bars)
    dlib.checkpoint.save = lambda *a, **k: None
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        last = {}
        with tempfile.TemporaryDirectory() as out:
            summary = train_module.train(base.replace(seed=seed), out_dir=out, progress=False,
                                         callback=lambda step, loss, ema: last.update(ema=ema))
        ema = last["ema"].eval()
        scores = score_weights(ema, schedule, args.samples)
        rows.append({"seed": seed, "steps": summary["steps"], "images_per_s": round(summary["images_per_s"], 1),
                     **{m: round(scores[m], 3) for m in METRICS}})
        print(f"self-conditioning seed {seed}: {summary['steps']} steps at {summary['images_per_s']:.0f} img/s "
              f"({summary['precision']}), classifier-FID {scores['classifier-fid']:.2f}, "
              f"IS {scores['classifier-is']:.2f}", flush=True)
    print(provenance.hardware(torch.device("cpu")))
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(sys.argv), "base": args.base, "minutes": args.minutes, "samples": args.samples,
              "rows": rows, "provenance": provenance.record(torch.device("cpu"))}
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
