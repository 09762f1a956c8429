"""What a training run depends on: :class:`TrainConfig`, where configs come from, and precision.

A config is a plain dataclass that round-trips through YAML (``configs/*.yaml``) and is stored in
every checkpoint, so a run can be resumed and a published model rebuilt from it. The precision
setting (``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``) becomes an autocast dtype only once the
device is known (:func:`resolve_precision`). :mod:`dlib.train` re-exports every name here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from .runtime import ROOT

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything a run depends on; ``TrainConfig.from_yaml("configs/mnist_eps.yaml")``.

    ``model`` holds :class:`dlib.nets.UNet` arguments (``target`` is taken from ``target`` here);
    ``schedule`` is ``{"kind": "linear"|"cosine"|"angular", "T": ..., other arguments}``;
    ``data`` holds :func:`dlib.data.load` arguments; ``batch_size`` is the global batch.
    ``weighting``, ``snr_gamma`` (min-SNR's gamma) and ``joint_gamma`` (weight of the gradient
    term of the x0_eps loss) go to :func:`dlib.objectives.loss`.
    ``precision``: ``"auto"`` (bf16 where fast: CUDA, or a CPU with AVX512-BF16/AMX; else fp32),
    ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only, with a GradScaler). ``checkpoint_every``,
    ``sample_every``, ``log_every``: in steps, 0 = only at the end (samples: never).
    ``sampler``/``sample_steps``: how the periodic grids are drawn (``"ddim"``, ``"ddpm"``, ``"angular"``).
    """

    name: str = "run"
    model: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=lambda: {"kind": "linear", "T": 1000})
    target: str = "eps"
    weighting: str = "simple"
    joint_gamma: float = 0.0
    snr_gamma: float = 5.0
    data: dict = field(default_factory=lambda: {"name": "mnist"})
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 0.0
    steps: int = 5000
    warmup: int = 200
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    precision: str = "auto"
    device: str = "auto"
    checkpoint_every: int = 1000
    sample_every: int = 1000
    log_every: int = 50
    sampler: str = "ddim"
    sample_steps: int = 50
    n_samples: int = 64
    seed: int = 0
    out_dir: str | None = None

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("batch_size", "steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.sampler not in ("ddim", "ddpm", "angular"):
            raise ValueError(f"sampler must be 'ddim', 'ddpm' or 'angular', got {self.sampler!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known keys: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path) -> "TrainConfig":
        values = yaml.safe_load(Path(path).read_text()) or {}
        values.setdefault("name", Path(path).stem)
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(config) -> TrainConfig:
    """A TrainConfig from a TrainConfig, a dict, a YAML path, or a name under ``configs/``."""
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    path = Path(config)
    if not path.is_file():
        path = ROOT / "configs" / f"{config}.yaml"
    if not path.is_file():
        raise ValueError(f"no config {config!r}: not a file and not a name in {ROOT / 'configs'}")
    return TrainConfig.from_yaml(path)


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 matrix units (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: plain fp32) for a precision setting on a device."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs CUDA (use 'bf16' or 'fp32' on this device)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
