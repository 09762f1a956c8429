"""The sampling front door: n images from a trained network with any sampler, drawn in batches.

:func:`sample` is what the command line (``python -m dlib sample``), the publishing tool, the
benchmarks and the chapters call; it picks the loop (:func:`dlib.samplers.ddpm_sample`,
:func:`dlib.samplers.ddim_sample` or :func:`dlib.samplers.angular_sample`), runs it batch by batch
under ``torch.inference_mode()`` and leaves the global random state and the model's mode as they were.
"""
from __future__ import annotations

import torch

from ..objectives import resolve_target
from ..runtime import autocast_dtype
from ..schedules import Schedule
from .angular import METHODS, angular_sample
from .common import SAMPLERS, model_device
from .ddim import ddim_sample
from .ddpm import ddpm_sample

Tensor = torch.Tensor

#: Images per model call when ``batch_size`` is not given, by device type (see benchmarks/sampling_throughput.py).
DEFAULT_BATCH = {"cpu": 128, "cuda": 1000, "mps": 250}


def default_batch_size(device) -> int:
    """The batch size :func:`sample` uses on ``device`` when none is given (:data:`DEFAULT_BATCH`)."""
    return DEFAULT_BATCH.get(torch.device(device).type, 128)


def sample(model, schedule: Schedule, n: int, sampler: str = "ddim", steps: int = 50, eta: float = 0.0,
           method: str = "rk2", spacing: str = "uniform", variance: str = "beta_tilde", target: str | None = None,
           clip_x0: float | None = None, shape: tuple | None = None, batch_size: int | None = None, seed: int = 0,
           device=None, precision: str = "fp32", callback=None, progress: bool = False) -> Tensor:
    """Draw ``n`` samples from ``model`` with one of :data:`SAMPLERS`, in batches.

    ``"ddpm"``: all T ancestral steps (chapter "ddpm", eq-ddpm-step; ``variance``); ``"ddim"``:
    ``steps`` jumps with ``eta`` and ``spacing`` (chapter "ddim", eq-ddim-step, eq-ddim-sigma); ``"angular"``:
    ``steps`` steps of the angular ODE with ``method`` (chapter "angular", eq-angular-ode, eq-rk-step).

    Args:
        model: a network ``model(x (B, C, H, W), t (B,))``; its ``target`` attribute says how to read
            its output (a contradicting ``target`` is a ValueError). Put in eval mode for the call.
        schedule: the schedule it was trained with (``checkpoint.load_pipeline`` returns both).
        n: number of samples (>= 1).
        shape: (C, H, W) of one sample; default ``(model.in_channels, model.image_size, model.image_size)``.
        batch_size: images per batch; default :func:`default_batch_size` of the device.
        seed: the samples are a function of (seed, batch_size): batch i draws from one generator
            seeded with ``seed`` on the sampling device, in order.
        precision: the network runs under autocast to :func:`dlib.runtime.autocast_dtype` of this
            setting ("fp32": none; "auto": bf16 only where the hardware computes it natively, fp16
            on older GPUs); the sampler's own arithmetic stays in float32.
        callback: ``callback(t, x_t, x0_hat)`` once per model call of every batch.
    Returns:
        float32 tensor (n, C, H, W) on the sampling device, clamped to [-1, 1] (images) -- for other
        data pass ``clip_x0=None`` and use the loops directly.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    target = resolve_target(model, target)
    if shape is None:
        try:
            shape = (model.in_channels, model.image_size, model.image_size)
        except AttributeError:
            raise ValueError("give shape=(C, H, W): the model has no in_channels/image_size attributes") from None
    device = torch.device(device) if device is not None else model_device(model)
    batch_size = default_batch_size(device) if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    amp = autocast_dtype(precision, device)
    was_training = model.training if isinstance(model, torch.nn.Module) else None
    if was_training:
        model.eval()
    parts = []
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode(), \
                torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            generator = torch.Generator(device).manual_seed(int(seed))
            for start in range(0, n, batch_size):
                size = (min(batch_size, n - start), *shape)
                common = dict(target=target, generator=generator, device=device, callback=callback, progress=progress)
                if sampler == "ddpm":
                    x = ddpm_sample(model, schedule, size, variance=variance, clip_x0=clip_x0, **common)
                elif sampler == "ddim":
                    x = ddim_sample(model, schedule, size, steps, eta=eta, spacing=spacing, clip_x0=clip_x0, **common)
                else:
                    x = angular_sample(model, schedule, size, steps, method=method, **common)
                parts.append(x.float().clamp(-1.0, 1.0))
    finally:
        if was_training:
            model.train()
    return torch.cat(parts)
