"""Zhang, Ehinger & Drummond's ablation (their table 2) at our scale: schedule x head x integrator (chapter "angular").

    OMP_NUM_THREADS=1 nice -n 5 python tools/angular_ablation.py --n 200 --seeds 0,1,2

Every row of :data:`ROWS` is one committed checkpoint sampled one way (DDIM with eta = 0, or the
angular ODE with Euler, Heun's RK2 or the classical RK4); every column a number of sampler steps
(:data:`STEPS`, the source's columns, plus a few extra step counts for the Runge-Kutta rows,
:data:`EXTRA_STEPS`, so that every row has points at 10, 16, 20, 50 and 100 network evaluations).
For each (row, steps, seed) cell it draws ``--n`` samples with ``dlib.samplers.sample`` in one batch
(so a seed fixes the starting noise, the same x_T for every row: common random numbers) and scores
them with ``dlib.metrics.evaluate`` against the held-out digits (``reference="mnist-test"``). The
baseline is ``--n`` real training digits scored the same way, ``--baseline-seeds`` draws.

A row whose checkpoint is not there yet (a training still running) is skipped with a log line; a
later run fills it in. Resumable: each finished cell is written to ``results.json`` at once
(atomically) with the SHA-256 of the weights it used, and a rerun skips it unless those weights
changed. Also written: ``log.txt`` (one line a cell) and ``README.md`` (command, settings,
hardware, wall time, the table). The chapter imports :func:`score_cell`, :func:`summarize`,
:data:`ROWS` and :data:`SOURCE_CIFAR10`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from ddim_grid import _write_json, add_baseline, baseline, conditions, open_log  # noqa: E402
from dlib import checkpoint, data, metrics, provenance, runtime, samplers  # noqa: E402

METRICS = ("classifier-fid", "classifier-is")
REFERENCE = "mnist-test"
STEPS = (10, 16, 20, 50, 100)


@dataclass(frozen=True)
class Row:
    """One row of the ablation: a checkpoint folder, a sampler and the source's row it stands for."""

    checkpoint: str
    sampler: str                 # "ddim" (eta = 0) or "angular"
    method: str = "euler"        # the angular sampler's Butcher tableau (ignored by DDIM)
    clip_x0: float | None = None
    label: str = ""
    source: str | None = None    # the row of Zhang et al.'s table 2 it corresponds to, if any

    @property
    def calls_per_step(self) -> int:
        return len(samplers.TABLEAUS[self.method].c) if self.sampler == "angular" else 1


ROWS = {
    "ddim-linear-eps": Row("mnist_eps", "ddim", label="DDIM, linear, eps (baseline)", source="DDIM"),
    "ddim-angular-eps": Row("mnist_angular_eps", "ddim", label="DDIM, angular, eps", source="DDIM+beta*"),
    "ddim-angular-eps-clip": Row("mnist_angular_eps", "ddim", clip_x0=1.0, label="DDIM, angular, eps, clip x0"),
    "euler-angular-eps": Row("mnist_angular_eps", "angular", "euler", label="Euler, angular, eps", source="DDIM+sin"),
    "ddim-linear-joint": Row("mnist_joint_linear", "ddim", label="DDIM, linear, joint g0.5", source="DDIM+x0,eps"),
    "ddim-angular-joint-g0": Row("mnist_angular_joint_g0", "ddim", label="DDIM, angular, joint g0",
                                 source="DDIM+beta*+x0,eps"),
    "euler-angular-joint-g0": Row("mnist_angular_joint_g0", "angular", "euler", label="Euler, angular, joint g0",
                                  source="DDIM+sin+x0,eps"),
    "ddim-angular-joint": Row("mnist_angular_joint", "ddim", label="DDIM, angular, joint g0.5"),
    "euler-angular-joint": Row("mnist_angular_joint", "angular", "euler", label="Euler, angular, joint g0.5"),
    "rk2-angular-joint": Row("mnist_angular_joint", "angular", "rk2", label="RK2, angular, joint g0.5", source="Ours"),
    "rk4-angular-joint": Row("mnist_angular_joint", "angular", "rk4", label="RK4, angular, joint g0.5", source="Ours"),
}
#: step counts beyond STEPS, so that the Runge-Kutta rows meet the others at equal network evaluations
EXTRA_STEPS = {"rk2-angular-joint": (5, 8, 25), "rk4-angular-joint": (2, 3, 4, 5, 25)}

#: Zhang et al. (2023), table 2, CIFAR-10 Inception FID (50,000 samples presumably; not stated) at STEPS
SOURCE_CIFAR10 = {"DDIM": (18.67, 12.67, 11.06, 7.08, 5.64), "DDIM+beta*": (15.04, 10.77, 9.28, 6.00, 4.92),
                  "DDIM+sin": (15.97, 11.90, 9.79, 6.22, 5.10), "DDIM+x0,eps": (15.03, 10.05, 8.84, 6.25, 5.36),
                  "DDIM+sin+x0,eps": (13.17, 9.77, 8.29, 5.50, 4.50),
                  "DDIM+beta*+x0,eps": (13.69, 10.19, 8.73, 5.80, 4.73), "Ours": (9.50, 6.32, 5.62, 4.57, 4.17)}


def cell_key(row: str, steps: int, seed: int) -> str:
    """The key of a cell in ``results.json``'s ``"cells"``: ``"ddim-linear-eps|steps=10|seed=0"``."""
    return f"{row}|steps={int(steps)}|seed={int(seed)}"


def row_steps(row: str) -> list[int]:
    """The step counts a row is run at: :data:`STEPS` and its :data:`EXTRA_STEPS`, ascending."""
    return sorted(set(STEPS) | set(EXTRA_STEPS.get(row, ())))


def weights_path(row: str) -> Path:
    return ROOT / "checkpoints" / ROWS[row].checkpoint / "model.safetensors"


def available(row: str, settle_seconds: float = 60.0) -> bool:
    """Whether the row's checkpoint is published: weights and config there, the weights not just being written."""
    path = weights_path(row)
    return (path.is_file() and path.with_name("config.yaml").is_file()
            and time.time() - path.stat().st_mtime > settle_seconds)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def score_cell(model, schedule, row: str, steps: int, n: int, seed: int = 0, precision: str = "auto",
               device=None) -> dict:
    """Draw n samples of ``row`` at ``steps`` in one batch from ``seed`` and score them.

    Returns ``{row, steps, seed, n, nfe, classifier-fid, classifier-is, seconds}``; ``nfe`` is the
    number of network evaluations per sample, ``seconds`` the sampling time alone.
    """
    r = ROWS[row]
    start = time.perf_counter()
    x = samplers.sample(model, schedule, n, sampler=r.sampler, steps=steps, method=r.method, clip_x0=r.clip_x0,
                        seed=seed, batch_size=n, precision=precision, device=device)
    seconds = time.perf_counter() - start
    finite = bool(torch.isfinite(x).all())
    scores = metrics.evaluate(torch.nan_to_num(x).cpu(), METRICS, reference=REFERENCE)
    return {"row": row, "steps": int(steps), "seed": int(seed), "n": int(n), "nfe": int(steps * r.calls_per_step),
            "classifier-fid": scores["classifier-fid"], "classifier-is": scores["classifier-is"],
            "finite": finite, "seconds": round(seconds, 2)}


def summarize(cells: dict, metric: str = "classifier-fid") -> dict:
    """``{row: {steps: {"mean", "sd", "se", "k", "nfe"}}}`` over the seeds of each (row, steps).

    sd: the sample standard deviation over seeds (ddof = 1, :func:`dlib.metrics.seed_spread`);
    se = sd / sqrt(k), the spread of the mean (chapter "measuring"). Needs k >= 2 seeds per cell.
    """
    groups: dict = {}
    for c in cells.values():
        groups.setdefault(c["row"], {}).setdefault(c["steps"], []).append(c)
    out = {}
    for row in ROWS:
        for steps, runs in sorted(groups.get(row, {}).items()):
            if len(runs) < 2:
                continue
            mean, sd = metrics.seed_spread([c[metric] for c in runs])
            out.setdefault(row, {})[steps] = {"mean": mean, "sd": sd, "se": sd / len(runs) ** 0.5,
                                              "k": len(runs), "nfe": runs[0]["nfe"]}
    return out


def _table(res: dict) -> str:
    summary = summarize(res["cells"])
    head = "| row | source row | " + " | ".join(f"{k} steps" for k in STEPS) + " | extra steps (NFE) |"
    lines = [head, "|---|---|" + "---|" * len(STEPS) + "---|"]
    for row, r in ROWS.items():
        got = summary.get(row, {})
        if not got:
            lines.append(f"| {r.label} | {r.source or '-'} | " + " | ".join("not yet run" for _ in STEPS) + " | |")
            continue
        cell = lambda k: f"{got[k]['mean']:.2f} ± {got[k]['se']:.2f}" if k in got else "-"  # noqa: E731
        extra = ", ".join(f"{k}: {got[k]['mean']:.2f} ± {got[k]['se']:.2f} ({got[k]['nfe']})"
                          for k in EXTRA_STEPS.get(row, ()) if k in got)
        lines.append(f"| {r.label} | {r.source or '-'} | " + " | ".join(cell(k) for k in STEPS) + f" | {extra} |")
    src = ["", "Zhang et al. (2023), table 2, CIFAR-10 Inception FID (not comparable with the numbers above):", "",
           "| source row | " + " | ".join(f"{k} steps" for k in STEPS) + " |", "|---|" + "---|" * len(STEPS)]
    src += [f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for name, vals in SOURCE_CIFAR10.items()]
    return "\n".join(lines + src)


def write_readme(out: Path, res: dict) -> None:
    """README.md of the experiment folder: what was run, on what, how long, and the table so far."""
    s, b = res["settings"], res["baseline"]
    pending = res.get("pending", [])
    unfinished = [row for row in ROWS if row not in summarize(res["cells"]) and row not in pending]
    ckpts = "\n".join(f"- `{name}`: sha256 {h[:16]}..." for name, h in sorted(res["weights"].items()))
    text = f"""# The angular ablation ({len(res['cells'])} cells done)

Written by `tools/angular_ablation.py` (see its docstring); read by the chapter `book/angular.md`.

Command (from the repository root):

    {res['command']}

Settings:

- {s['n']} samples per cell, seeds {s['seeds']} (one batch of {s['n']} per seed; a seed fixes x_T, the
  same for every row), DDIM with eta = 0 and uniform spacing, the angular ODE from phi = pi/2 to 0 in
  equal steps; precision `{s['precision']}` (autocast {s['autocast_dtype']}), {s['threads']} torch thread(s)
  on {s['device']};
- classifier-FID and classifier-IS (dlib's MNIST classifier, not Inception-v3) against the
  `{s['reference']}` held-out digits ({s['data']}); each table entry is the mean over the seeds
  ± the spread of that mean (sd / sqrt(seeds));
- checkpoints used (weights' SHA-256, recorded in every cell):
{ckpts}

Baseline (real vs real): {b['n']} real training digits scored the same way, {len(b['seeds'])} draws:
classifier-FID {b['fid_mean']:.2f} ± {b['fid_std']:.2f} (sd of one draw), classifier-IS {b['is_mean']:.2f} ± {b['is_std']:.2f}.

Rows pending (their checkpoint was not published when the script last looked): {', '.join(pending) or 'none'}.
Rows not reached yet: {', '.join(unfinished) or 'none'}. Rerunning the command above fills both in.

{conditions(res)}

Classifier-FID (lower is better), mean ± spread of the mean over {len(s['seeds'])} seeds, {s['n']} samples each:

{_table(res)}
"""
    (out / "README.md").write_text(text)


def _save(res, path, out, clock, pending=()) -> float:
    res["wall_seconds"] += time.perf_counter() - clock
    res["pending"] = sorted(pending, key=list(ROWS).index)
    _write_json(path, res)
    write_readme(out, res)
    return time.perf_counter()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="experiments/angular_ablation")
    ap.add_argument("--n", type=int, default=200, help="samples per cell (one batch)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated keys of ROWS")
    ap.add_argument("--steps", default="", help="only these step counts (comma-separated; default: every row's own)")
    ap.add_argument("--precision", default="auto", choices=runtime.PRECISIONS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--baseline-seeds", type=int, default=5)
    ap.add_argument("--note", default="none stated", help="what else ran on the machine (goes to the README)")
    ap.add_argument("--sizing", default=None, help="how --n was chosen (goes to the README; kept across reruns)")
    ap.add_argument("--restart", action="store_true", help="discard the cells of an earlier run")
    args = ap.parse_args(argv)
    rows = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        print(f"error: unknown rows {unknown}; known: {list(ROWS)}", file=sys.stderr)
        return 2
    seeds = [int(v) for v in args.seeds.split(",")]
    torch.set_num_threads(args.threads)
    dev = runtime.device(args.device)
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    amp = runtime.autocast_dtype(args.precision, dev)
    settings = {"n": args.n, "seeds": seeds, "precision": args.precision,
                "autocast_dtype": str(amp).replace("torch.", "") if amp else "none (fp32)", "threads": args.threads,
                "device": str(dev), "reference": REFERENCE, "metrics": list(METRICS),
                "data": data.load("mnist", split="test").source, "note": args.note}
    path = out / "results.json"
    res = json.loads(path.read_text()) if path.exists() and not args.restart else None
    same = ("n", "precision", "reference")
    if res is not None and any(res["settings"][k] != settings[k] for k in same):
        print(f"error: {path} was written with other settings ({', '.join(same)}); pass --restart", file=sys.stderr)
        return 2
    command = "OMP_NUM_THREADS={} python tools/angular_ablation.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), shlex.join(argv if argv is not None else sys.argv[1:]))
    if res is None:
        res = {"command": command, "cells": {}, "weights": {}, "wall_seconds": 0.0, "runs": 0}
    res["command"] = command                     # the latest invocation (each one is also in log.txt)
    res["settings"] = {**settings, "seeds": sorted(set(seeds) | set(res.get("settings", {}).get("seeds", []))),
                       "sizing": args.sizing or res.get("settings", {}).get("sizing")}
    res["rows"] = {k: asdict(v) for k, v in ROWS.items()}
    res["provenance"] = provenance.record(dev)
    res["runs"] += 1
    say = open_log(out, command, res["provenance"]["hardware"])
    clock = time.perf_counter()
    if add_baseline(res, args.n, range(args.baseline_seeds), say):
        clock = _save(res, path, out, clock)
    # cheap cells first: by network evaluations per sample, then in the order of ROWS
    only = {int(v) for v in args.steps.split(",") if v}
    todo = sorted(((row, k) for row in rows for k in row_steps(row) if not only or k in only),
                  key=lambda rk: (rk[1] * ROWS[rk[0]].calls_per_step, list(ROWS).index(rk[0])))
    loaded, absent, skipped = {}, set(), set()   # absent: checkpoints not there when first needed in this run
    for row, steps in todo:
        name = ROWS[row].checkpoint
        if name in absent or (name not in loaded and not available(row)):
            if row not in skipped:
                say(f"skip {row}: checkpoints/{name} is not published yet (rerun later to fill it in)")
            absent.add(name)
            skipped.add(row)
            continue
        if name not in loaded:
            model, schedule = checkpoint.load_pipeline(weights_path(row), device=dev)
            loaded[name] = (model, schedule, sha256(weights_path(row)))
            if res["weights"].get(name) not in (None, loaded[name][2]):
                say(f"checkpoints/{name} changed since its cells were scored: they are recomputed")
            res["weights"][name] = loaded[name][2]
        model, schedule, digest = loaded[name]
        for seed in seeds:
            key = cell_key(row, steps, seed)
            old = res["cells"].get(key)
            if old is not None and old["weights_sha256"] == digest:
                continue
            cell = {**score_cell(model, schedule, row, steps, args.n, seed, args.precision, dev),
                    "weights_sha256": digest}
            res["cells"][key] = cell
            clock = _save(res, path, out, clock, skipped)
            say(f"{key}: nfe {cell['nfe']}, classifier-FID {cell['classifier-fid']:.3f}, "
                f"IS {cell['classifier-is']:.3f}, {cell['seconds']:.1f} s sampling"
                + ("" if cell["finite"] else " (non-finite samples set to 0)"))
    _save(res, path, out, clock, skipped)
    say(f"done: {len(res['cells'])} cells, {res['wall_seconds'] / 60:.1f} min in all; "
        f"pending rows: {', '.join(sorted(skipped)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
