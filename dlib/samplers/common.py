"""What every sampling loop shares: the target a model declares, the starting noise, fresh noise, callbacks.

Conventions of the loops in :mod:`dlib.samplers`: ``model(x, t)`` gets x (B, ...) and t (B,) and
returns its output for its *target* (chapter "objectives"). Noise comes from ``generator`` (drawn on
the generator's device, then moved), or a fresh generator seeded with ``seed`` on the sampling device,
or else the global torch RNG. ``device=None`` means the device of the model's parameters (CPU for a
plain function). A ``callback(t, x_t, x0_hat)`` is called once per model call, k-diffusion style,
with the timestep (or model time) of the call, the current x_t and the model's x0_hat.
"""
from __future__ import annotations

import torch

from ..objectives import eps_from_x0, predictions

Tensor = torch.Tensor

#: The sampler names understood by :func:`dlib.samplers.sample`, the CLI and training configs.
SAMPLERS = ("ddpm", "ddim", "angular")


def model_device(model) -> torch.device:
    """The device of a module's first parameter, else the CPU."""
    param = next(iter(model.parameters()), None) if isinstance(model, torch.nn.Module) else None
    return param.device if param is not None else torch.device("cpu")


def start(model, shape, generator, seed, device, dtype, x_T):
    """Resolve device, generator and the starting noise x_T of a sampling loop: returns (x_T, generator)."""
    if x_T is not None:
        if not torch.is_tensor(x_T) or not x_T.is_floating_point():
            raise ValueError("x_T must be a floating-point tensor of shape (B, ...)")
        device = x_T.device if device is None else torch.device(device)
        dtype = x_T.dtype if dtype is None else dtype
        shape = tuple(x_T.shape)
    dtype = torch.float32 if dtype is None else dtype
    if (not isinstance(shape, (tuple, list)) or len(shape) < 1
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise ValueError(f"shape must be a tuple of positive ints (B, ...), got {shape!r}")
    device = torch.device(device) if device is not None else model_device(model)
    if generator is None and seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    x = noise_like(tuple(shape), generator, device, dtype) if x_T is None else x_T.to(device=device, dtype=dtype)
    return x, generator


def noise_like(shape, generator, device, dtype) -> Tensor:
    """Standard normal noise of ``shape`` drawn from ``generator`` (or the global RNG) onto ``device``."""
    if generator is None:
        return torch.randn(shape, device=device, dtype=dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=dtype).to(device)


def batch_times(t, x: Tensor, dtype=torch.long) -> Tensor:
    """The model's time input: ``t`` repeated for each of the B examples of x, shape (B,)."""
    return torch.full((x.shape[0],), t, dtype=dtype, device=x.device)


class Trajectory:
    """A callback that keeps every model call's (t, x_t, x0_hat) on the CPU, for figures.

        traj = Trajectory(); ddim_sample(model, schedule, shape, 50, callback=traj)
        traj.t, traj.x_t, traj.x0_hat      # lists, one entry per model call, in sampling order
    """

    def __init__(self):
        self.t, self.x_t, self.x0_hat = [], [], []

    def __call__(self, t, x_t: Tensor, x0_hat: Tensor) -> None:
        self.t.append(t)
        self.x_t.append(x_t.detach().cpu())
        self.x0_hat.append(x0_hat.detach().cpu())

    def __len__(self) -> int:
        return len(self.t)


def check_like(x_t: Tensor, other, name: str) -> None:
    """Raise a ValueError unless ``other`` is None or a tensor shaped like x_t."""
    if other is not None and (not torch.is_tensor(other) or other.shape != x_t.shape):
        shape = tuple(other.shape) if torch.is_tensor(other) else type(other).__name__
        raise ValueError(f"{name} must have the shape of x_t {tuple(x_t.shape)}, got {shape}")


def predict(model, schedule, x_t: Tensor, t: int, target: str, clip_x0: float | None):
    """(x0_hat, eps_hat) of the model at integer timestep t (chapter "objectives", eq-x0-from-eps ...).

    The model's output is read as ``target`` by :func:`dlib.objectives.predictions`. ``clip_x0=c``
    clamps x0_hat to [-c, c] and re-derives eps_hat from it (eq-eps-from-x0), so the step that
    follows stays consistent with the clamped image.
    """
    x0_hat, eps_hat = predictions(schedule, x_t, t, model(x_t, batch_times(t, x_t)), target)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps_hat = eps_from_x0(schedule, x_t, t, x0_hat)
    return x0_hat, eps_hat
