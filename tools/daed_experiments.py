"""The committed experiments of chapter "daed": reconstruction through the reverse chain, transfer, DAED.

    OMP_NUM_THREADS=1 python tools/daed_experiments.py --out experiments/daed \
        --sections reconstruction,transfer,switch,bound --max-minutes 50

Sections (each resumable: every finished cell is written to ``results.json`` at once, atomically,
and a rerun skips it; a rerun with other settings refuses unless ``--restart``):

``reconstruction``  the first ``--n-recon`` held-out digits and held-out letters, noised to level t
                    and run back through the chain (``dlib.daed.reconstruct``: DDPM, eta = 1, and
                    DDIM, eta = 0, one network call per level), for each t of a grid over the first
                    30% of the steps of ``mnist_t300`` and ``mnist_eps``; per-image MAE and MS-SSIM.
``transfer``        the same at each DAE's switching step for ``mnist_t300_vlb`` too, and each DAE
                    (``checkpoints/daed_*``) on the *same* noised images (the noise x_{t_s} is drawn
                    first from the same seed): the analogue of the source's table 2.
``switch``          ``--n`` DDPM chains per seed and generator (``mnist_t300``, ``mnist_t300_vlb``; add
                    ``mnist_eps`` with ``--switch-models``), keeping x_t at every DAE's switching step
                    (:data:`SWITCH_STEPS`) and the network's own x0_hat at a list of steps: DDGM, DAED at
                    each beta_1 and the "one-shot" x0_hat all come from the same chains (common random
                    numbers); classifier-FID, -IS, precision and recall against the held-out digits, and
                    the real-vs-real baseline at the same n for as many seeds. The chains are cached
                    under ``--cache`` (not committed), so that a DAE committed later is scored on them.
                    ``daed_gen_b100`` / ``daed_gen_b100_vlb`` in ``--switch-models``: DAED trained on
                    its whole bound with the simple loss / the bound (a generator trained on t > t_s
                    alone, :data:`WHOLE`), its chains stopped at t_s and ended by its DAE, from the
                    same x_T and noise as the other generators' chains.
``bound``           the standard bound (``nll_bits_per_dim``) and the DAED bound of each DAE
                    (``dlib.daed.daed_bound``, decoder variance from the DAE's manifest) of both T = 300
                    models on the first ``--n-bound`` held-out digits, stride ``--bound-stride``; for
                    the whole-bound generator, the DAED bound with its own DAE alone.

Network calls run under bf16 autocast where the CPU has bf16 units (``--precision``). Also written:
``log.txt`` (one line a cell) and ``README.md`` (command, settings, hardware, wall time, tables).
The chapter imports :func:`recon_cell` and :func:`dae_cell` to recompute cells.
"""
from __future__ import annotations

import argparse
import contextlib
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

from dlib import checkpoint, daed, data, diffusion, metrics, provenance, runtime  # noqa: E402
from dlib.reverse import reverse_gaussian  # noqa: E402
from dlib.samplers.common import predict  # noqa: E402

DAES = ("daed_b100", "daed_b025", "daed_b001")
SWITCH_STEPS = (5, 27, 55)   # the switching steps of the three DAE configs on the T = 300 linear schedule
#: DAED trained on its whole bound: generator (trained on t > t_s only, ``t_min``) -> the DAE that ends its chain;
#: one generator per loss (simple, VLB), both ended by the same committed DAE
WHOLE = {"daed_gen_b100": "daed_b100", "daed_gen_b100_vlb": "daed_b100"}


def committed_daes() -> tuple:
    """The DAEs of :data:`DAES` that have a committed checkpoint (the others are skipped, and the README says so)."""
    return tuple(n for n in DAES if (ROOT / "checkpoints" / n / "manifest.json").is_file())
GRIDS = {"mnist_t300": (3, 5, 8, 15, 27, 40, 55, 75, 90),
         "mnist_eps": (10, 25, 50, 75, 100, 150, 200, 250, 300)}
ONE_SHOT = {"mnist_t300": (3, 5, 10, 15, 27, 40, 55, 75, 100, 150), "mnist_t300_vlb": (3, 5, 10, 15, 27, 40, 55, 75, 100, 150),
            "mnist_eps": (5, 10, 25, 50, 100, 150, 200, 300)}
SETS = ("mnist", "letters")
SECTIONS = ("reconstruction", "dae", "switch", "bound")   # the keys of results.json that hold results
METRICS = ("classifier-fid", "classifier-is", "precision", "recall")
REFERENCE = "mnist-test"


def load_model(name: str, dev):
    return checkpoint.load_pipeline(ROOT / "checkpoints" / name / "model.safetensors", device=dev)


def load_dae(name: str, dev):
    """(denoiser, beta_1, manifest) of a committed DAE."""
    model, info = checkpoint.load(ROOT / "checkpoints" / name / "model.safetensors", device=dev)
    manifest = json.loads((ROOT / "checkpoints" / name / "manifest.json").read_text())
    return model, float(info["extra"]["beta_1"]), manifest


def autocast(precision: str, dev):
    amp = runtime.autocast_dtype(precision, dev)
    return torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None)


def images(name: str, n: int) -> torch.Tensor:
    """The first n held-out images of a set ("mnist" or "letters")."""
    return data.load(name, split="test").images[:n]


def _per_image(rec: torch.Tensor, x0: torch.Tensor) -> dict:
    rec = rec.float().clamp(-1, 1).cpu()
    mae = (rec - x0).abs().flatten(1).mean(1)
    ssim = metrics.ms_ssim(rec, x0, reduction="none")
    return {"mae": [round(float(v), 6) for v in mae], "ms_ssim": [round(float(v), 6) for v in ssim],
            "mae_mean": float(mae.mean()), "ms_ssim_mean": float(ssim.mean())}


def recon_cell(model, schedule, x0: torch.Tensor, t: int, eta: float, seed: int, precision: str = "auto") -> dict:
    """Reconstruct x0 (n, 1, 28, 28) from level t through the chain (eq-daed-reconstruction): per-image MAE, MS-SSIM.

    The noise eps (and, for eta > 0, the chain's noise) comes from a generator seeded with ``seed + t``.
    """
    dev = next(model.parameters()).device
    g = torch.Generator(dev).manual_seed(seed + t)
    with autocast(precision, dev):
        rec = daed.reconstruct(model, schedule, x0.to(dev), t, eta=eta, generator=g)
    return {"t": t, "eta": eta, "seed": seed + t, **_per_image(rec, x0)}


def dae_cell(dae, schedule, x0: torch.Tensor, t_s: int, beta_1: float, seed: int, precision: str = "auto") -> dict:
    """The DAE on the noised images of :func:`recon_cell` at t_s (the same first draw from ``seed + t_s``)."""
    dev = next(dae.parameters()).device
    g = torch.Generator(dev).manual_seed(seed + t_s)
    eps = torch.randn(x0.shape, generator=g, device=dev)
    x_ts = daed.top_up(schedule, diffusion.q_sample(schedule, x0.to(dev), t_s, eps), t_s, beta_1,
                       torch.randn(x0.shape, generator=g, device=dev))
    with torch.no_grad(), autocast(precision, dev):
        rec = dae(x_ts)
    return {"t": t_s, "beta_1": beta_1, "seed": seed + t_s, **_per_image(rec, x0)}


def switch_chains(model, schedule, n: int, seed: int, batch: int, one_shot, precision="auto", t_end: int = 0) -> dict:
    """n DDPM chains from seed: the DDGM samples, the states x_t at :data:`SWITCH_STEPS` and x0_hat at ``one_shot``.

    Returns {"ddgm": (n, 1, 28, 28), "x@t": ..., "x0_hat@t": ...} on the CPU (samples and x0_hat clamped
    to [-1, 1], states not). The DAEs are applied afterwards (:func:`apply_dae`), so that a DAE trained
    later is scored on the same chains (common random numbers). With ``t_end`` > 0 (a generator trained
    on t > t_end only, :data:`WHOLE`) the chains stop there: {"x@t_end": ...} alone, with the x_T and
    noise draws of the full chains down to that level.
    """
    dev = next(model.parameters()).device
    out: dict = {}
    g = torch.Generator(dev).manual_seed(seed)
    for first in range(0, n, batch):
        size = min(batch, n - first)
        grabbed = {}

        def grab(t, x_t, x0_hat):
            if t in one_shot:
                grabbed[f"x0_hat@{t}"] = x0_hat.float().clamp(-1, 1).cpu()

        x_T = torch.randn(size, 1, 28, 28, generator=g, device=dev)
        with torch.no_grad(), autocast(precision, dev):
            if t_end:
                parts = {f"x@{t_end}": daed.run_chain(model, schedule, x_T, schedule.T, t_end, eta=1.0,
                                                      generator=g).float().cpu()}
            else:
                x0, kept = daed.run_chain(model, schedule, x_T, schedule.T, 0, eta=1.0, generator=g,
                                          keep=set(SWITCH_STEPS), callback=grab)
                parts = {"ddgm": x0.float().clamp(-1, 1).cpu(), **grabbed,
                         **{f"x@{t}": kept[t].float().cpu() for t in SWITCH_STEPS}}
        for key, value in parts.items():
            out.setdefault(key, []).append(value)
    return {k: torch.cat(v) for k, v in out.items()}


def apply_dae(dae, schedule, chains: dict, t_s: int, beta_1: float, seed: int, precision="auto") -> torch.Tensor:
    """DAED's samples from stored chains: x_{t_s}, topped up to beta_1 (noise from ``seed + 7919``), through the DAE."""
    dev = next(dae.parameters()).device
    x = chains[f"x@{t_s}"].to(dev)
    g = torch.Generator(dev).manual_seed(seed + 7919)
    up = daed.top_up(schedule, x, t_s, beta_1, torch.randn(x.shape, generator=g, device=dev))
    with torch.no_grad(), autocast(precision, dev):
        return dae(up).float().clamp(-1, 1).cpu()


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


def _recon_table(res: dict) -> str:
    rows = ["| cell | n | MAE | MS-SSIM |", "|---|---|---|---|"]
    for key in sorted(res.get("reconstruction", {})):
        c = res["reconstruction"][key]
        rows.append(f"| {key} | {len(c['mae'])} | {c['mae_mean']:.4f} | {c['ms_ssim_mean']:.4f} |")
    return "\n".join(rows)


def _switch_table(res: dict) -> str:
    sw = res.get("switch", {})
    if not sw.get("runs"):
        return "(not run yet)"
    rows = ["| model | config | seeds | " + " | ".join(METRICS) + " |", "|---" * (3 + len(METRICS)) + "|"]
    for model, per_seed in sw["runs"].items():
        configs = list(next(iter(per_seed.values()))["scores"])
        for cfg in configs:
            seeds = [s for s in per_seed if cfg in per_seed[s]["scores"]]
            vals = [[per_seed[s]["scores"][cfg][m] for s in seeds] for m in METRICS]
            cells = []
            for v in vals:
                t = torch.tensor(v, dtype=torch.float64)
                cells.append(f"{t.mean():.3f} +- {(t.std() / len(v) ** 0.5 if len(v) > 1 else 0):.3f}")
            rows.append(f"| {model} | {cfg} | {len(seeds)} | " + " | ".join(cells) + " |")
    b = sw.get("baseline")
    if b:
        rows.append(f"| real digits | {b['n']} training digits | {len(b['runs'])} | " + " | ".join(
            f"{torch.tensor([r[m] for r in b['runs']], dtype=torch.float64).mean():.3f}" for m in METRICS) + " |")
    return "\n".join(rows)


def _bound_table(res: dict) -> str:
    rows = ["| model | bound | digits | bits/dim (mean +- se) |", "|---|---|---|---|"]
    for model, entry in res.get("bound", {}).get("models", {}).items():
        for name, b in entry.items():
            t = torch.tensor(b["total"], dtype=torch.float64)
            rows.append(f"| {model} | {name} | {len(t)} | {t.mean():.4f} +- {t.std() / len(t) ** 0.5:.4f} |")
    return "\n".join(rows)


def write_readme(out: Path, res: dict) -> None:
    s, p = res["settings"], res["provenance"]
    text = f"""# DAED experiments (chapter "daed")

Written by `tools/daed_experiments.py` (see its docstring); read by `book/daed.md`.

Command (the latest invocation; each one is in log.txt with its date):

    {res['command']}

Settings: {json.dumps(s)}

Hardware: {p['hardware']} ({p['cpu_count']} cores; {p['platform']}); torch {p['versions']['torch']};
git {p['git']['commit']}{' (uncommitted changes in dlib/ or configs/)' if p['git']['dirty'] else ''}.
Other jobs on the machine: {s['note']}
Wall time: {res['wall_seconds'] / 60:.1f} min over {res['runs']} invocation(s).

## Switching point: DDGM, DAED and the one-shot x0_hat (mean +- spread of the mean over seeds)

{_switch_table(res)}

## Bounds on the held-out digits

{_bound_table(res)}

## Reconstruction cells (per-image values in results.json)

{_recon_table(res)}
"""
    (out / "README.md").write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="experiments/daed")
    ap.add_argument("--sections", default="reconstruction,transfer,switch,bound")
    ap.add_argument("--recon-models", default="mnist_t300,mnist_eps")
    ap.add_argument("--switch-models", default="mnist_t300,mnist_t300_vlb")
    ap.add_argument("--n-recon", type=int, default=64)
    ap.add_argument("--n", type=int, default=200, help="samples per seed in the switch section")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--n-bound", type=int, default=200)
    ap.add_argument("--cache", default="runs/daed_chains", help="where the switch section keeps its chains (not committed)")
    ap.add_argument("--bound-stride", type=int, default=5)
    ap.add_argument("--precision", default="auto", choices=runtime.PRECISIONS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu (the committed runs), cuda or auto (the chapter's full setting)")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (cleanly) after this much wall time")
    ap.add_argument("--note", default="none stated", help="what else ran on the machine (goes to the README)")
    ap.add_argument("--restart", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = runtime.device(args.device)
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    settings = {"n_recon": args.n_recon, "n": args.n, "seeds": args.seeds, "batch_size": args.batch_size,
                "n_bound": args.n_bound, "bound_stride": args.bound_stride, "precision": args.precision,
                "autocast_dtype": str(runtime.autocast_dtype(args.precision, dev)), "reference": REFERENCE,
                "recon_seed_base": 10_000, "threads": args.threads, "note": args.note,
                "data": {name: data.load(name, split="test").source for name in SETS}}
    res = json.loads(path.read_text()) if path.exists() and not args.restart else None
    fixed = ("n_recon", "n", "batch_size", "n_bound", "bound_stride", "precision", "recon_seed_base")
    if res is not None and any(res["settings"][k] != settings[k] for k in fixed):
        print(f"error: {path} was written with other settings ({', '.join(fixed)}); pass --restart", file=sys.stderr)
        return 2
    command = "OMP_NUM_THREADS={} python tools/daed_experiments.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "?"), shlex.join(argv if argv is not None else sys.argv[1:]))
    res = res or {"wall_seconds": 0.0, "runs": 0}
    res.update(command=command, settings={**res.get("settings", {}), **settings}, provenance=provenance.record(dev))
    res["runs"] += 1
    log = (out / "log.txt").open("a")
    say = lambda line: (print(line, flush=True), log.write(line + "\n"), log.flush())  # noqa: E731
    say(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {command} on {res['provenance']['hardware']}")
    began = clock = time.perf_counter()
    deadline = None if args.max_minutes is None else began + 60 * args.max_minutes

    def save():
        nonlocal clock
        now = time.perf_counter()
        res["wall_seconds"] += now - clock
        clock = now
        _write_json(path, res)
        write_readme(out, res)

    def out_of_time() -> bool:
        """True (after saving what is done and saying so) once --max-minutes has passed."""
        if deadline is None or time.perf_counter() <= deadline:
            return False
        save()
        say("stopping: --max-minutes reached; rerun to continue")
        return True

    sections = args.sections.split(",")
    sets = {name: images(name, args.n_recon) for name in SETS}
    recon = res.setdefault("reconstruction", {})
    jobs = []
    if "reconstruction" in sections:
        jobs += [(m, eta, name, t) for m in args.recon_models.split(",") for eta in (1.0, 0.0)
                 for name in SETS for t in GRIDS[m]]
    daes = {name: load_dae(name, dev) for name in committed_daes()} if set(sections) & {"transfer", "switch", "bound"} else {}
    say(f"DAEs committed: {sorted(daes) or 'none'}")
    if "transfer" in sections:
        s300 = load_model("mnist_t300", dev)[1]
        for name, (_, beta_1, _) in daes.items():
            t_s = daed.switch_step(s300, beta_1)
            jobs += [(m, 1.0, set_name, t_s) for m in ("mnist_t300", "mnist_t300_vlb") for set_name in SETS]
    models = {}
    for m, eta, set_name, t in jobs:
        key = f"{m}|eta={eta:g}|{set_name}|t={t}"
        if key in recon:
            continue
        if out_of_time():
            return 0
        if m not in models:
            models[m] = load_model(m, dev)
        start = time.perf_counter()
        recon[key] = recon_cell(*models[m], sets[set_name], t, eta, settings["recon_seed_base"], args.precision)
        save()
        say(f"{key}: MAE {recon[key]['mae_mean']:.4f}, MS-SSIM {recon[key]['ms_ssim_mean']:.4f}, "
            f"{time.perf_counter() - start:.0f} s")
    if "transfer" in sections:
        s300 = load_model("mnist_t300", dev)[1]
        for name, (dae, beta_1, _) in daes.items():
            t_s = daed.switch_step(s300, beta_1)
            for set_name in SETS:
                key = f"{name}|{set_name}|t={t_s}"
                if key not in res.setdefault("dae", {}):
                    res["dae"][key] = dae_cell(dae, s300, sets[set_name], t_s, beta_1, settings["recon_seed_base"],
                                               args.precision)
                    save()
                    say(f"{key}: MAE {res['dae'][key]['mae_mean']:.4f}, MS-SSIM {res['dae'][key]['ms_ssim_mean']:.4f}")
    if "switch" in sections:
        sw = res.setdefault("switch", {"runs": {}, "steps": {}})
        cache_dir = ROOT / args.cache
        cache_dir.mkdir(parents=True, exist_ok=True)
        if "baseline" not in sw:
            runs = [metrics.real_vs_real(args.n, metrics=METRICS, reference=REFERENCE, seed=s) for s in range(args.seeds)]
            sw["baseline"] = {"n": args.n, "runs": [{m: r[m] for m in METRICS} for r in runs]}
            save()
        for m in args.switch_models.split(","):
            model, schedule = load_model(m, dev)
            mine = {WHOLE[m]: daes[WHOLE[m]]} if m in WHOLE else daes
            steps = {name: daed.switch_step(schedule, beta_1) for name, (_, beta_1, _) in mine.items()}
            assert set(steps.values()) <= set(SWITCH_STEPS), steps
            if m in WHOLE:
                t_min = checkpoint.load(ROOT / "checkpoints" / m / "model.safetensors")[1]["train_config"]["t_min"]
                assert t_min == steps[WHOLE[m]] + 1, (m, t_min, steps)   # trained on exactly the levels above t_s
            sw["steps"][m] = {**sw["steps"].get(m, {}), **steps}
            for seed in range(args.seeds):
                entry = sw["runs"].setdefault(m, {}).get(str(seed))
                missing = [name for name in mine if entry is None or name not in entry["scores"]]
                if entry is not None and not missing:
                    continue
                if out_of_time():
                    return 0
                start = time.perf_counter()
                cache = cache_dir / f"{m}_seed{seed}_n{args.n}.pt"
                if cache.is_file():
                    chains = torch.load(cache)
                else:
                    chains = switch_chains(model, schedule, args.n, seed, args.batch_size, ONE_SHOT.get(m, ()),
                                           args.precision, t_end=steps[WHOLE[m]] if m in WHOLE else 0)
                    torch.save(chains, cache)
                outs = {} if entry is not None else {k: v for k, v in chains.items() if not k.startswith("x@")}
                for name in missing:
                    dae, beta_1, _ = mine[name]
                    outs[name] = apply_dae(dae, schedule, chains, steps[name], beta_1, seed, args.precision)
                seconds = time.perf_counter() - start
                scores = {k: {mm: metrics.evaluate(x, METRICS, reference=REFERENCE)[mm] for mm in METRICS}
                          for k, x in outs.items()}
                if entry is None:
                    entry = sw["runs"][m][str(seed)] = {"scores": {}, "seconds": round(seconds, 1)}
                entry["scores"].update(scores)
                save()
                say(f"switch {m} seed {seed}: " + ", ".join(f"{k} FID {v['classifier-fid']:.2f}"
                                                             for k, v in scores.items()) + f" ({seconds:.0f} s)")
    if "bound" in sections:
        bd = res.setdefault("bound", {"models": {}})
        x0 = images("mnist", args.n_bound).double().to(dev)
        whole = [m for m, name in WHOLE.items() if name in daes and (ROOT / "checkpoints" / m).is_dir()]
        for m in ("mnist_t300", "mnist_t300_vlb", *whole):
            model, schedule = load_model(m, dev)
            p_theta = reverse_gaussian(model, schedule)
            entry = bd["models"].setdefault(m, {})
            if m in WHOLE:   # trained on t > t_s only: its bound is DAED's with its own DAE, not the standard one
                todo = [(WHOLE[m], daes[WHOLE[m]])]
            else:
                todo = [("ddgm", None)] + [(name, daes[name]) for name in DAES if name in daes]
            for name, spec in todo:
                if name in entry:
                    continue
                if out_of_time():
                    return 0
                start = time.perf_counter()
                g = torch.Generator(dev).manual_seed(5)   # fp32 throughout: no autocast for the bound
                if spec is None:
                    b = diffusion.nll_bits_per_dim(p_theta, schedule, x0, generator=g, batch_size=args.batch_size,
                                                   progress=False, stride=args.bound_stride)
                    first = {"t_s": 0}
                else:
                    dae, beta_1, manifest = spec
                    t_s = daed.switch_step(schedule, beta_1)
                    b = daed.daed_bound(p_theta, dae, schedule, t_s, x0, manifest["metrics"]["decoder_variance"],
                                        generator=g, batch_size=args.batch_size, stride=args.bound_stride)
                    first = {"t_s": t_s, "decoder_variance": manifest["metrics"]["decoder_variance"]}
                entry[name] = {"total": b["total"].cpu().tolist(), "prior": float(b["prior"].mean()),
                               "decoder": b["decoder"].cpu().tolist(), **first,
                               "seconds": round(time.perf_counter() - start, 1)}
                save()
                say(f"bound {m} {name}: {b['total'].mean():.4f} bits/dim")
    save()
    say(f"done: {res['wall_seconds'] / 60:.1f} min in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
