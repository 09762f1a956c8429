"""One training loop for every diffusion target (chapters "ddpm", "objectives" and "angular").

Each step draws a batch x_0, timesteps t ~ Uniform{1..T} and noise eps, forms
x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (chapter "forward", eq-q-xt-x0) and takes
an AdamW step on :func:`dlib.objectives.loss` -- eps, x0, score or v prediction (eq-loss-eps ...
eq-loss-v, weighted as in eq-elbo-weights / eq-min-snr) or the joint x0+eps loss with its gradient
term (eq-loss-joint). Around it: linear learning-rate warm-up, gradient clipping, EMA weights,
mixed precision (bf16 autocast on CPUs with bf16 units and on CUDA, fp16 + GradScaler on older
GPUs), a JSONL log, sample grids, atomic checkpoints and an exact ``resume``.

Reproducibility: on the CPU the same config and seed give bit-identical weights, and a run that is
interrupted and resumed ends with the same weights as one that is not: the data order is a pure
function of (seed, epoch) (each epoch a seeded permutation), t and eps come from a seeded generator
whose state is checkpointed, and so are the global RNG, the optimizer and the EMA.

Several processes (``torchrun --nproc_per_node N -m dlib train ...``): each rank takes a slice of
every global batch (``batch_size`` is the global batch) and DDP averages the gradients; every rank
draws the same global t and eps and keeps its slice, so the run matches a 1-process run up to
floating-point summation order. Only rank 0 writes files.

The config dataclass, :func:`load_config <dlib.train_config.load_config>` and the precision helpers
live in :mod:`dlib.train_config`; the rules that keep a run folder from being overwritten by
accident (``resume`` / ``overwrite``) in :mod:`dlib.run_folder`.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from . import (checkpoint, data as datasets, objectives, run_folder, runtime, samplers, schedules, timesteps,
               train_config)
from .diffusion import q_sample
from .nets import UNet
from .plotting import save_grid
from .run_folder import CHECKPOINT_NAME
from .runtime import ROOT


def build_model(cfg: train_config.TrainConfig, image_shape) -> UNet:
    """The UNet of a config, for images of shape (C, H, W).

    Raises:
        ValueError: the ``model`` section does not make a UNet (e.g. ``groups`` not dividing the
            channel counts, or a value of the wrong type).
    """
    c, h, _ = image_shape
    kwargs = {"in_channels": c, "image_size": h, **cfg.model, "target": cfg.target}
    try:
        return UNet(**kwargs)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"the model section {cfg.model} does not build a UNet for images {tuple(image_shape)}: "
                         f"{err}") from None


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Indices of the global batch of step ``step`` (0-based) in an endless run of seeded epochs.

    Epoch e visits the data in the order ``randperm(n)`` drawn from a generator seeded with
    (seed, e); batches run on across epoch boundaries. A pure function of its arguments, so a
    resumed run sees exactly the batches an uninterrupted one would.
    """
    positions = torch.arange(step * batch_size, (step + 1) * batch_size)
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in positions.div(n, rounding_mode="floor").unique().tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        mask = positions // n == epoch
        out[mask] = perm[positions[mask] % n]
    return out


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, beta2: float = 0.999) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters, betas (0.9, ``beta2``); the fused kernel where PyTorch has one.

    On CPUs and CUDA GPUs the fused AdamW does the whole update in one kernel: for the ~100 small
    tensors of the two-minute U-Net it takes about a sixth of the time of the per-tensor loop
    (~0.6 ms against ~3 ms per step on a 2-core CPU, a few % of a training step).
    """
    params = list(model.parameters())
    fused = True if params and params[0].device.type in ("cpu", "cuda") else None  # None: PyTorch's default
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, beta2), weight_decay=weight_decay, fused=fused)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, for every parameter and buffer (one foreach call for the parameters)."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of all parameters and buffers with their names, dtypes and shapes (to compare runs)."""
    return checkpoint.digest(model.state_dict())


class _Distributed:
    """World size, rank and device of this process; sets up torch.distributed under torchrun."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = runtime.device(device)  # ValueError: no such device here
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.owns_group = True

    def close(self):
        if self.owns_group:
            dist.destroy_process_group()


@functools.lru_cache(maxsize=4)
def _load_data(spec: str):
    """dlib.data.load(**spec), cached per process (tests and notebooks train several times)."""
    return datasets.load(**json.loads(spec))


def _optimizer_step(loss, model, optimizer, scaler, grad_clip: float) -> torch.Tensor:
    """Backward pass, gradient clipping (to norm ``grad_clip``; 0 = off), AdamW step; returns the norm."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:  # fp16: scale the loss, unscale the gradients before clipping
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else math.inf)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return grad_norm


def _over_budget(elapsed: float, budget: float | None, world: int, device) -> bool:
    """Whether the wall-clock budget is spent; under torchrun every rank takes rank 0's answer."""
    if budget is None:
        return False
    over = elapsed >= budget
    if world > 1:
        flag = torch.tensor(float(over), device=device)
        dist.broadcast(flag, src=0)
        over = bool(flag.item())
    return over


def learning_rate(cfg, step: int, progress: float) -> float:
    """The learning rate of optimizer step ``step`` (0-based): linear warm-up, then ``cfg.lr_schedule``.

    ``progress`` in [0, 1] is how far the run is: step / steps, or elapsed / budget when the config
    has ``minutes``. ``"constant"``: lr; ``"cosine"``: lr (1 + cos(pi progress)) / 2, reaching 0 at the end.
    """
    warm = min(1.0, (step + 1) / max(cfg.warmup, 1))
    if cfg.lr_schedule == "constant":
        return cfg.lr * warm
    return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def train(config, out_dir=None, steps: int | None = None, resume: bool = False, progress: bool = True,
          callback=None, overwrite: bool = False, minutes: float | None = None) -> dict:
    """Train (or continue training) a diffusion model; the API behind ``python -m dlib train``.

    Args:
        config: a :class:`dlib.train_config.TrainConfig`, a dict, a YAML path or a config name (``"mnist_eps"``).
        out_dir: where the checkpoint, ``log.jsonl``, ``config.yaml`` and ``samples/`` go (default:
            the config's ``out_dir``, else ``runs/<name>``).
        steps: total optimizer steps, >= 1 (None: the config's).
        minutes: a wall-clock budget for the whole run in minutes, counted across resumed segments
            (None: the config's ``minutes``). Training stops at whichever of steps and budget comes
            first and ends as any run does (checkpoint with the EMA, log line, summary); the summary
            says ``stopped_by`` ("steps" or "budget").
        resume: continue from ``out_dir/model.train.safetensors`` when present.
        overwrite: ``out_dir`` may hold a finished or partial run: its files are deleted (only
            once everything below is validated) and training starts afresh.
        progress: show a tqdm bar.
        callback: called as ``callback(step, loss, ema)`` after every optimizer step, with the step
            count so far, the batch loss (a 0-d tensor) and the EMA model (read it, do not modify it).
            Raising an exception stops the run without a checkpoint (tests use it to interrupt;
            benchmarks to snapshot the EMA weights and stop at a time budget).
    Returns:
        a summary dict: steps, start_step, final_loss, images_per_s, seconds, parameters, precision,
        device, world_size, checkpoint, weights_digest (and rank_digests under torchrun).
    Raises:
        ValueError: a bad config (:class:`dlib.config.ConfigError`), ``steps`` < 1, a device this
            machine lacks, data or a model the config cannot build, a precision the device cannot
            run, or an ``out_dir`` that holds a run while neither ``resume`` nor ``overwrite`` is
            given (see :mod:`dlib.run_folder`). Nothing is written to ``out_dir`` before all of
            these are checked.
    """
    from tqdm.auto import tqdm

    cfg = train_config.load_config(config)
    if steps is not None:
        cfg = cfg.replace(steps=steps)
    if minutes is not None:
        cfg = cfg.replace(minutes=minutes)
    budget = cfg.minutes * 60.0 if cfg.minutes is not None else None
    out = Path(out_dir or cfg.out_dir or ROOT / "runs" / cfg.name)
    run_folder.check(out, resume=resume, overwrite=overwrite)  # reads only
    env = _Distributed(cfg.device)
    try:
        if cfg.batch_size % env.world:
            raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the world size {env.world}")
        local_batch = cfg.batch_size // env.world
        torch.manual_seed(cfg.seed)  # same on every rank: identical initial weights
        image_data = _load_data(json.dumps(cfg.data, sort_keys=True))
        images = image_data.images.to(env.device)
        schedule = schedules.from_config(cfg.schedule)
        model = build_model(cfg, image_data.shape).to(env.device)
        ema = build_model(cfg, image_data.shape).to(env.device)
        ema.load_state_dict(model.state_dict())
        ema.requires_grad_(False)
        optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.adam_beta2)
        amp_dtype = runtime.autocast_dtype(cfg.precision, env.device)
        scaler = torch.amp.GradScaler(env.device.type) if amp_dtype == torch.float16 else None
        noise = torch.Generator(env.device).manual_seed(cfg.seed + 1)
        ckpt_path = out / CHECKPOINT_NAME
        start, spent = 0, 0.0   # steps and wall-clock seconds of earlier segments
        if resume and checkpoint.train_state_path(ckpt_path).is_file():
            stored = checkpoint.read(checkpoint.train_state_path(ckpt_path))[1]["train_config"]
            differ = run_folder.config_differences(stored, cfg.to_dict())
            if differ:
                raise ValueError(f"cannot resume {out}: the config differs in {differ}")
            restored = checkpoint.restore(ckpt_path, model, ema=ema, optimizer=optimizer,
                                          generators={"noise": noise}, scaler=scaler)
            start, spent = restored["step"], float((restored.get("extra") or {}).get("elapsed_seconds", 0.0))
            if start > cfg.steps:
                raise ValueError(f"{out} holds a run at step {start}, beyond the requested {cfg.steps} steps")
        net = model
        if env.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        main = env.rank == 0
        log_path = out / "log.jsonl"
        if main:  # everything is validated: the first write to the run folder
            run_folder.prepare(out, cfg.to_dict(), start, overwrite=overwrite)

        def elapsed() -> float:
            return spent + time.perf_counter() - t_begin

        def save(step):
            extra = {"precision": str(amp_dtype or "fp32"), "world_size": env.world, "schedule": schedule.name,
                     "elapsed_seconds": elapsed()}
            checkpoint.save(ckpt_path, model, ema=ema, optimizer=optimizer, step=step, config=cfg.to_dict(),
                            data=image_data.describe(), extra=extra, generators={"noise": noise}, scaler=scaler)

        t_law = None if cfg.t_sampling == "uniform" else timesteps.probabilities(
            schedule, cfg.t_sampling, cfg.t_logsnr_mean, cfg.t_logsnr_std, cfg.t_min)
        model.train()
        bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and main), desc=cfg.name)
        t_begin = tick = time.perf_counter()
        loss_sum, loss_count, rate, last_loss = torch.zeros((), device=env.device), 0, float("nan"), float("nan")
        step, stopped_by = start, "steps"
        while step < cfg.steps:
            idx = batch_indices(step, len(images), cfg.batch_size, cfg.seed)
            sl = slice(env.rank * local_batch, (env.rank + 1) * local_batch)
            if t_law is None:   # uniform: the draw every committed run made
                t = torch.randint(cfg.t_min, schedule.T + 1, (cfg.batch_size,), generator=noise, device=env.device)[sl]
            else:
                t = timesteps.draw(t_law, cfg.batch_size, generator=noise)[sl]
            eps = torch.randn((cfg.batch_size, *images.shape[1:]), generator=noise, device=env.device)[sl]
            x0 = images[idx[sl].to(env.device)]
            x_t = q_sample(schedule, x0, t, eps)
            with torch.autocast(env.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                output = net(x_t, t)
            loss = objectives.loss(schedule, output.float(), x0, eps, t, target=cfg.target,
                                   weighting=cfg.weighting, gamma=cfg.snr_gamma, joint_gamma=cfg.joint_gamma)
            lr = learning_rate(cfg, step, elapsed() / budget if budget is not None else step / cfg.steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            grad_norm = _optimizer_step(loss, model, optimizer, scaler, cfg.grad_clip)
            step += 1
            update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
            loss_sum += loss.detach()
            loss_count += 1
            if callback is not None:
                callback(step, loss, ema)
            if _over_budget(elapsed(), budget, env.world, env.device) and step < cfg.steps:
                stopped_by = "budget"
            done = step == cfg.steps or stopped_by == "budget"
            if step % max(cfg.log_every, 1) == 0 or done:
                now = time.perf_counter()
                mean_loss = loss_sum / loss_count
                if env.world > 1:  # the loss of the global batch, as a 1-process run would log it
                    dist.all_reduce(mean_loss)
                    mean_loss /= env.world
                last_loss = mean_loss.item()
                rate = loss_count * cfg.batch_size / (now - tick)
                if main:
                    with open(log_path, "a") as f:
                        f.write(json.dumps({"step": step, "loss": last_loss, "images_per_s": rate, "lr": lr,
                                            "grad_norm": float(grad_norm)}) + "\n")
                bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{rate:.0f}")
                loss_sum.zero_()
                loss_count, tick = 0, now
            bar.update(1)
            if main and (done or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0)):
                save(step)
            if main and cfg.sample_every and (step % cfg.sample_every == 0 or done):
                grid = samplers.sample(ema, schedule, cfg.n_samples, sampler=cfg.sampler, steps=cfg.sample_steps,
                                       seed=cfg.seed)
                save_grid(grid, out / "samples" / f"step_{step:06d}.png", nrow=int(math.sqrt(cfg.n_samples)) or 1)
            if done:
                break
        bar.close()
        seconds = time.perf_counter() - t_begin
        summary = {"name": cfg.name, "steps": step, "planned_steps": cfg.steps, "stopped_by": stopped_by,
                   "start_step": start, "elapsed_seconds": spent + seconds, "final_loss": last_loss,
                   "images_per_s": (step - start) * cfg.batch_size / seconds if step > start else rate,
                   "seconds": seconds, "parameters": model.num_parameters(), "precision": str(amp_dtype or "fp32"),
                   "device": str(env.device), "world_size": env.world, "checkpoint": str(ckpt_path),
                   "out_dir": str(out), "weights_digest": weights_digest(model)}
        if env.world > 1:
            digests = [None] * env.world
            dist.all_gather_object(digests, summary["weights_digest"])
            summary["rank_digests"] = digests
        if main:
            (out / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary
    finally:
        env.close()


def load_or_train(name_or_config, steps: int | None = None, out_dir=None, device=None, progress: bool = True,
                  ema: bool = True):
    """The model of a config: the committed checkpoint when there is one, else trained here.

    Looks for ``checkpoints/<name>/model.safetensors`` (committed with the book), then for a
    finished run in ``out_dir`` (default ``runs/<name>``) with at least ``steps`` steps; otherwise
    trains (resuming a partial run) and loads the result. Returns (model in eval mode, info).
    """
    cfg = train_config.load_config(name_or_config)
    published = ROOT / "checkpoints" / cfg.name / CHECKPOINT_NAME
    if published.is_file():
        return checkpoint.load(published, device=device, ema=ema)
    out = Path(out_dir or cfg.out_dir or ROOT / "runs" / cfg.name)
    want = steps if steps is not None else cfg.steps
    local = out / CHECKPOINT_NAME
    if not (local.is_file() and checkpoint.load(local)[1]["step"] >= want):
        train(cfg, out, steps=want, resume=True, progress=progress)
    return checkpoint.load(local, device=device, ema=ema)
