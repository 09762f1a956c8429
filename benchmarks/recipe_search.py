"""Which training choices buy sample quality in a fixed number of CPU minutes? (issue: digits in two minutes)

Each *variant* is a base config with some keys overridden (nested sections merge key by key). It is
trained by ``dlib.train.train`` exactly as ``python -m dlib train CONFIG --minutes M`` would train it
(the learning-rate schedule, warm-up and EMA of the config; the clock counts training steps only,
after the data and network are set up), then its EMA weights draw ``--samples`` digits with 50 DDIM
steps (eta 0, the CLI's default precision) from a fixed x_T, scored with classifier-FID and -IS against
the held-out MNIST digits ("mnist-test"), beside the real-vs-real baseline at the same sample count.

    OMP_NUM_THREADS=2 python benchmarks/recipe_search.py --base configs/mnist_2min.yaml \
        --variant 'baseline={}' --variant 'lr3e-3={"lr": 3e-3}' --minutes 2 --samples 300

``--variant NAME=JSON`` may be given many times; ``--seeds 0,1,2`` trains each variant from several
training seeds (data order, initial weights, noise). Every finished cell is written at once to
``OUT/results.json`` and a rerun skips it (so a run can be resumed or extended with new variants);
``OUT/README.md`` is rewritten with the table after each cell, ``OUT/log.txt`` gets one line per cell.

``--step-options`` measures instead, for the base config's network and batch, the images per second of
one training step with and without ``channels_last`` memory format and ``torch.compile`` (compile time
reported separately): choices that change speed only, so one throughput number settles them.

Run it on an idle machine: a variant's quality depends on how many steps fit in its minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dlib import checkpoint, metrics, provenance, schedules  # noqa: E402
from dlib.runtime import ROOT, autocast_dtype  # noqa: E402
from dlib.train import build_model, train  # noqa: E402
from dlib.train_config import load_config  # noqa: E402
from benchmarks._common import METRICS, REFERENCE, score_weights  # noqa: E402

NEVER = 10**9


def merged(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` applied; a dict value (model, schedule, data) merges key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_variant(text: str) -> tuple[str, dict]:
    name, sep, spec = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--variant must look like NAME=JSON, got {text!r}")
    overrides = json.loads(spec)
    if not isinstance(overrides, dict):
        raise ValueError(f"--variant {name}: the overrides must be a JSON object, got {spec!r}")
    return name, overrides


def run_cell(cfg_dict: dict, minutes: float, samples: int, seed: int) -> dict:
    """Train one variant for ``minutes`` from training seed ``seed``; sample and score its EMA weights."""
    cfg = load_config(merged(cfg_dict, {"seed": seed, "steps": NEVER, "minutes": minutes, "checkpoint_every": 0,
                                        "sample_every": 0, "log_every": NEVER, "device": "cpu"}))
    with tempfile.TemporaryDirectory() as out:
        begin = time.perf_counter()
        summary = train(cfg, out_dir=out, progress=False)
        wall = time.perf_counter() - begin
        model, schedule = checkpoint.load_pipeline(Path(out) / "model.safetensors")
    start = time.perf_counter()
    result = score_weights(model, schedule, samples)
    return {"steps": summary["steps"], "images_per_s": round(summary["images_per_s"], 1),
            "train_seconds": round(summary["elapsed_seconds"], 1), "command_seconds": round(wall, 1),
            "final_loss": summary["final_loss"], "parameters": summary["parameters"],
            "precision": summary["precision"], "sampling_seconds": round(time.perf_counter() - start, 1),
            **{m: result[m] for m in METRICS}, "n_samples": result["n_samples"]}


def step_options(cfg_dict: dict, rounds: int = 5, iters: int = 3) -> list[dict]:
    """Images/s of the config's training step with and without channels_last and torch.compile."""
    cfg = load_config(cfg_dict)
    dev = torch.device("cpu")
    amp = autocast_dtype(cfg.precision, dev)
    x = torch.randn(cfg.batch_size, 1, 28, 28)
    t = torch.randint(1, schedules.from_config(cfg.schedule).T + 1, (cfg.batch_size,))
    rows = []
    for layout in ("contiguous", "channels_last"):
        for compiled in (False, True):
            torch.manual_seed(0)
            model = build_model(cfg, (1, 28, 28))
            xx = x.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else x
            if layout == "channels_last":
                model = model.to(memory_format=torch.channels_last)
            net = torch.compile(model) if compiled else model
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def step():
                with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
                    out = net(xx, t)
                loss = (out.float() - x).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            begin = time.perf_counter()
            step()
            first = time.perf_counter() - begin
            step()
            times = []
            for _ in range(rounds):
                begin = time.perf_counter()
                for _ in range(iters):
                    step()
                times.append((time.perf_counter() - begin) / iters)
            rate = cfg.batch_size / statistics.median(times)
            rows.append({"layout": layout, "compiled": compiled, "images_per_s": round(rate, 1),
                         "first_step_seconds": round(first, 2)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _fmt(values) -> str:
    if len(values) == 1:
        return f"{values[0]}" if isinstance(values[0], int) else f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values) / len(values) ** 0.5:.2f}"


def write_readme(out: Path, res: dict) -> None:
    lines = [f"# Recipe search: {res['minutes']:g} training minutes per cell (written by benchmarks/recipe_search.py)",
             "", "Latest command (each one is in log.txt):", "", f"    {res['command']}", "",
             f"Base config: `{res['base']}`" + (" (the copy every cell was trained against is results.json's "
                                                "`base_config`)" if "base_config" in res else "") +
             f". Hardware: {res['provenance']['hardware']} "
             f"({res['provenance']['cpu_count']} cores), torch {res['provenance']['versions']['torch']}, "
             f"{res['threads']} threads. Other jobs on the machine: {res['note']}", "",
             f"Each cell: `dlib.train.train` with `minutes={res['minutes']:g}` (the clock counts training steps "
             f"only), then {res['samples']} DDIM-50 samples (eta 0, seed 1000) of the EMA weights scored "
             f"against the held-out digits. Mean ± standard error over training seeds where there are several. "
             f"With one training seed a row is one run: its images/s (and so its steps) vary by some 10-20% from "
             f"run to run even on the idle machine, and its FID by the seed, so only large gaps rank choices.", "",
             "| variant | overrides | seeds | steps | images/s | classifier-FID | classifier-IS |",
             "|---|---|---|---|---|---|---|"]
    for name, v in res["variants"].items():
        cells = list(v["seeds"].values())
        if not cells:
            continue
        lines.append(f"| {name} | `{json.dumps(v['overrides'])}` | {len(cells)} | "
                     f"{_fmt([c['steps'] for c in cells])} | {_fmt([c['images_per_s'] for c in cells])} | "
                     f"{_fmt([c['classifier-fid'] for c in cells])} | {_fmt([c['classifier-is'] for c in cells])} |")
    b = res.get("baseline")
    if b:
        lines.append(f"| real held-out vs real | {b['n']} training digits | {len(b['runs'])} | | | "
                     f"{_fmt([r['classifier-fid'] for r in b['runs']])} | {_fmt([r['classifier-is'] for r in b['runs']])} |")
    if res.get("step_options"):
        lines += ["", "## Speed-only choices (one training step of the base config's network and batch)", "",
                  "| layout | torch.compile | images/s | first step (s) |", "|---|---|---|---|"]
        lines += [f"| {r['layout']} | {r['compiled']} | {r['images_per_s']} | {r['first_step_seconds']} |"
                  for r in res["step_options"]]
    (out / "README.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="configs/mnist_2min.yaml")
    ap.add_argument("--variant", action="append", default=[], help="NAME=JSON overrides of the base config")
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--step-options", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipe_search"))
    ap.add_argument("--note", default="none stated", help="what else ran on the machine")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    res = json.loads(path.read_text()) if path.exists() else {"variants": {}}
    for key in ("minutes", "samples"):
        if key in res and res[key] != getattr(args, key):
            print(f"error: {path} holds cells with {key}={res[key]}; use another --out", file=sys.stderr)
            return 2
    base = load_config(args.base).to_dict()
    command = "OMP_NUM_THREADS={} python benchmarks/recipe_search.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), shlex.join(argv if argv is not None else sys.argv[1:]))
    if res.get("base_config", base) != base:
        print(f"error: {path} holds cells trained against another {args.base}; use another --out", file=sys.stderr)
        return 2
    res.update(minutes=args.minutes, samples=args.samples, base=args.base, base_config=base,
               threads=torch.get_num_threads(),
               note=args.note, command=command, provenance=provenance.record(torch.device("cpu")))
    log = (out / "log.txt").open("a")
    say = lambda line: (print(line, flush=True), log.write(line + "\n"), log.flush())  # noqa: E731
    say(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {command} on {res['provenance']['hardware']}")

    def save():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(res, indent=1) + "\n")
        os.replace(tmp, path)
        write_readme(out, res)

    if args.step_options:
        res["step_options"] = step_options(base)
        save()
        return 0
    if "baseline" not in res:
        runs = [metrics.real_vs_real(args.samples, metrics=METRICS, reference=REFERENCE, seed=s) for s in range(3)]
        res["baseline"] = {"n": args.samples, "runs": [{m: r[m] for m in METRICS} for r in runs]}
        save()
    for text in args.variant:
        name, overrides = parse_variant(text)
        entry = res["variants"].setdefault(name, {"overrides": overrides, "seeds": {}})
        if entry["overrides"] != overrides:
            print(f"error: variant {name!r} was run with other overrides {entry['overrides']}", file=sys.stderr)
            return 2
        for seed in [int(s) for s in args.seeds.split(",")]:
            if str(seed) in entry["seeds"]:
                continue
            cell = run_cell(merged(base, overrides), args.minutes, args.samples, seed)
            entry["seeds"][str(seed)] = cell
            save()
            say(f"{name} seed {seed}: {cell['steps']} steps at {cell['images_per_s']} img/s, "
                f"classifier-FID {cell['classifier-fid']:.2f}, IS {cell['classifier-is']:.2f} "
                f"(sampling+scoring {cell['sampling_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
