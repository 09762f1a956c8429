"""Which EMA decay, and does clamping x0_hat help, for the two-minute MNIST recipe? (issue: digits in two minutes)

A paired comparison: ONE training run of ``--base`` keeps, beside its own EMA (the config's
``ema_decay`` with the warm-up min(decay, (1 + s)/(10 + s)) of ``dlib.train``), a few more EMAs of the
same weights; so the variants differ only in how the weights are averaged, not in the run's noise or
its step count. Each set of weights (the raw ones too) draws ``--samples`` digits with DDIM-50 (eta 0,
seed 1000), once as the sampler does by default and once with x0_hat clamped to [-1, 1]
(``clip_x0=1``, chapter "ddpm"), and is scored against the held-out digits.

    OMP_NUM_THREADS=2 python benchmarks/ema_and_clip.py --seed 0 --minutes 2 --samples 500 \\
        --out benchmarks/results/ema_and_clip_epyc

The extra EMAs are kept by wrapping ``dlib.train.update_ema`` for this process only (each costs one
``_foreach_lerp_`` per step, ~0.1 ms of a ~60 ms step). Writes OUT/results.json and prints the table.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dlib.train as train_module  # noqa: E402
from dlib import checkpoint, metrics, provenance  # noqa: E402
from dlib.train_config import load_config  # noqa: E402
from benchmarks._common import METRICS, REFERENCE, budget_arguments, score_weights  # noqa: E402

# name -> (decay, with the warm-up min(decay, (1 + s)/(10 + s)) or constant from the first step)
EXTRA_EMAS = {"warm-up 0.99": (0.99, True), "warm-up 0.9995": (0.9995, True),
              "constant 0.99": (0.99, False), "constant 0.995": (0.995, False), "constant 0.998": (0.998, False)}


def train_with_extra_emas(cfg) -> tuple[dict, dict]:
    """Train ``cfg``; return its summary and {name: module} of the config's EMA, the raw weights and EXTRA_EMAS."""
    extra: dict[str, torch.nn.Module] = {}
    step = [0]
    original = train_module.update_ema

    def update_all(ema, model, decay):
        original(ema, model, decay)
        if not extra:
            extra.update({name: copy.deepcopy(model).requires_grad_(False) for name in EXTRA_EMAS})
        s = step[0]
        for name, (d, warm) in EXTRA_EMAS.items():
            original(extra[name], model, min(d, (1 + s) / (10 + s)) if warm else d)
        step[0] += 1

    train_module.update_ema = update_all
    try:
        with tempfile.TemporaryDirectory() as out:
            summary = train_module.train(cfg, out_dir=out, progress=False)
            path = Path(out) / train_module.CHECKPOINT_NAME
            ema, schedule = checkpoint.load_pipeline(path, ema=True)
            raw, _ = checkpoint.load_pipeline(path, ema=False)
    finally:
        train_module.update_ema = original
    nets = {f"config: warm-up {cfg.ema_decay}": ema, "raw weights (no EMA)": raw}
    for name, module in extra.items():
        net = copy.deepcopy(ema)
        net.load_state_dict(module.state_dict())
        nets[name] = net
    return {**summary, "schedule": schedule}, nets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    budget_arguments(p, samples=500)
    p.add_argument("--seed", type=int, default=0, help="training seed of the one run")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(load_config(args.base), seed=args.seed, minutes=args.minutes, steps=10**9,
                              checkpoint_every=0, sample_every=0, log_every=10**9, device="cpu")
    summary, nets = train_with_extra_emas(cfg)
    rows = []
    for name, net in nets.items():
        for clip in (None, 1.0):
            scores = score_weights(net, summary["schedule"], args.samples, clip_x0=clip)
            rows.append({"weights": name, "clip_x0": clip, **{m: round(scores[m], 3) for m in METRICS}})
            print(f"{name:24s} clip_x0={clip!s:4s}  classifier-FID {rows[-1]['classifier-fid']:.2f}  "
                  f"IS {rows[-1]['classifier-is']:.2f}", flush=True)
    real = metrics.real_vs_real(args.samples, metrics=METRICS, reference=REFERENCE)
    print(f"real held-out vs real training digits at {args.samples}: classifier-FID {real['classifier-fid']:.2f}, "
          f"IS {real['classifier-is']:.2f}")
    print(f"{summary['steps']} steps at {summary['images_per_s']:.0f} img/s ({summary['precision']}), "
          f"{provenance.hardware(torch.device('cpu'))}")
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": " ".join(sys.argv), "base": args.base, "seed": args.seed, "minutes": args.minutes,
              "samples": args.samples, "steps": summary["steps"], "images_per_s": summary["images_per_s"],
              "precision": summary["precision"], "rows": rows,
              "real_vs_real": {m: real[m] for m in METRICS}, "provenance": provenance.record(torch.device("cpu"))}
    (args.out / "results.json").write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
