"""What a training run depends on: :class:`TrainConfig`, where configs come from, and precision.

A config is a :class:`dlib.config.Config` dataclass that round-trips through YAML
(``configs/*.yaml``) and is stored in every checkpoint, so a run can be resumed and a published
model rebuilt from it. Building one checks every field: numbers written the usual ways (``1e-3``,
which YAML reads as a string, ``"5_000"``) are converted and range-checked, names are checked
against their lists, and a typo at the top level or inside ``model``, ``data`` or ``schedule`` is
a :class:`dlib.config.ConfigError` (a ``ValueError``) listing the known keys. The precision setting
(``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``) becomes an autocast dtype only once the device
is known (:func:`dlib.runtime.autocast_dtype`).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import data as datasets, schedules
from .config import Config, ConfigError, as_number, choice, number
from .nets import UNet
from .objectives import TARGETS, WEIGHTINGS
from .runtime import PRECISIONS, ROOT, check_device_name
from .samplers import SAMPLERS
from .timesteps import KINDS as T_SAMPLINGS

#: UNet arguments a config does not set in ``model``: the data fixes the first two, ``target`` the third.
MODEL_FIXED = ("in_channels", "image_size", "target")


#: Learning-rate schedules after the warm-up (see :class:`TrainConfig`).
LR_SCHEDULES = ("constant", "cosine")


def _parameters(fn, skip=()) -> dict:
    """{name: inspect.Parameter} of the keyword arguments of ``fn`` (``self`` and ``skip`` left out)."""
    return {name: p for name, p in inspect.signature(fn).parameters.items()
            if name != "self" and name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


@functools.lru_cache(maxsize=None)
def model_keys() -> tuple:
    """The keys of a config's ``model`` section: :class:`dlib.nets.UNet`'s arguments but :data:`MODEL_FIXED`."""
    return tuple(_parameters(UNet.__init__, MODEL_FIXED))


@functools.lru_cache(maxsize=None)
def data_keys() -> tuple:
    """The keys of a config's ``data`` section: the arguments of :func:`dlib.data.load`."""
    return tuple(_parameters(datasets.load))


def schedule_keys(kind) -> tuple:
    """The keys of a ``schedule`` section of this ``kind``: ``kind`` and :data:`dlib.schedules.KINDS` [kind]
    (every kind's keys when ``kind`` is unknown, so that the kind itself is reported)."""
    if isinstance(kind, str) and kind in schedules.KINDS:
        return ("kind", *schedules.KINDS[kind])
    return ("kind", *sorted({k for keys in schedules.KINDS.values() for k in keys}))


def _coerce_numbers(section: dict, params: dict, where: str) -> dict:
    """Numeric strings (YAML's ``1e-3``) under keys whose default is an int or a float, as numbers."""
    out = dict(section)
    for key, value in section.items():
        default = params[key].default if key in params else None
        if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
            out[key] = as_number(value, type(default), f"{where}.{key}")
    return out


@dataclass
class TrainConfig(Config):
    """Everything a run depends on; ``TrainConfig.from_yaml("configs/mnist_eps.yaml")``.

    ``model`` holds :class:`dlib.nets.UNet` arguments (all but :data:`MODEL_FIXED`: the data gives
    ``in_channels`` and ``image_size``, ``target`` comes from ``target`` here);
    ``schedule`` is ``{"kind": "linear"|"cosine"|"angular", "T": ..., other arguments}`` (the keys of
    :data:`dlib.schedules.KINDS`; it is built once here, so a bad value fails at once);
    ``data`` holds :func:`dlib.data.load` arguments; ``batch_size`` is the global batch.
    ``weighting``, ``snr_gamma`` (min-SNR's gamma) and ``joint_gamma`` (weight of the gradient
    term of the x0_eps loss) go to :func:`dlib.objectives.loss`. ``t_min``: timesteps are drawn
    uniformly from t_min..T (default 1: all of them); DAED's generator, which the bound only asks
    for above the switching step t_s, trains with t_min = t_s + 1 (chapter "daed", eq-daed-bound).
    ``t_sampling``: ``"uniform"`` (as above) or ``"logsnr_normal"``: log SNR ~ N(``t_logsnr_mean``,
    ``t_logsnr_std``^2), sent to the nearest step of t_min..T (:func:`dlib.timesteps.probabilities`).
    ``adam_beta2``: AdamW's second-moment decay (PyTorch's default 0.999). A shorter memory is a
    common choice for short runs; in the two-minute MNIST search 0.99 and 0.95 did worse than 0.999
    (``benchmarks/results/recipe_search_p2_epyc``).
    ``lr_schedule``: after ``warmup`` steps of linear warm-up, ``"constant"`` keeps ``lr``;
    ``"cosine"`` decays it to 0 along a half cosine over the run -- over ``steps``, or over the
    wall-clock budget when ``minutes`` is set. ``minutes``: a wall-clock budget for the whole run
    (counted across resumed segments); training stops cleanly at whichever of ``steps`` and
    ``minutes`` comes first, writing the checkpoint and EMA as at any end. A time-based schedule
    or stop makes the run depend on the machine's speed: it is reproducible in its recorded step
    count, not in advance.
    ``precision``: ``"auto"` (bf16 where fast: CUDA GPUs of compute capability >= 8.0, or a CPU with
    AVX512-BF16/AMX; fp16 on older GPUs; else fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA only,
    with a GradScaler). ``device``: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``
    (checked to exist when training starts). ``checkpoint_every``, ``sample_every``, ``log_every``:
    in steps, 0 = only at the end (samples: never). ``sampler``/``sample_steps``: how the periodic
    grids are drawn (one of :data:`dlib.samplers.SAMPLERS`).

    Raises:
        ConfigError (a ValueError): a value of the wrong type or outside its range, or an unknown key.
    """

    name: str = "run"
    model: dict = field(default_factory=dict)
    schedule: dict = field(default_factory=lambda: {"kind": "linear", "T": 1000})
    target: str = choice("eps", TARGETS)
    weighting: str = choice("simple", WEIGHTINGS)
    joint_gamma: float = number(0.0, low=0)
    snr_gamma: float = number(5.0, low=0, low_open=True)
    t_min: int = number(1, low=1)
    t_sampling: str = choice("uniform", T_SAMPLINGS)
    t_logsnr_mean: float = number(2.4)
    t_logsnr_std: float = number(2.4, low=0, low_open=True)
    data: dict = field(default_factory=lambda: {"name": "mnist"})
    batch_size: int = number(128, low=1)
    lr: float = number(5e-4, low=0, low_open=True)
    weight_decay: float = number(0.0, low=0)
    adam_beta2: float = number(0.999, low=0, high=1, high_open=True)
    steps: int = number(5000, low=1)
    warmup: int = number(200, low=0)
    lr_schedule: str = choice("constant", LR_SCHEDULES)
    minutes: float | None = None
    ema_decay: float = number(0.999, low=0, high=1, high_open=True)
    grad_clip: float = number(1.0, low=0)
    precision: str = choice("auto", PRECISIONS)
    device: str = "auto"
    checkpoint_every: int = number(1000, low=0)
    sample_every: int = number(1000, low=0)
    log_every: int = number(50, low=0)
    sampler: str = choice("ddim", SAMPLERS)
    sample_steps: int = number(50, low=1)
    n_samples: int = number(64, low=1)
    seed: int = number(0, low=0)
    out_dir: str | None = None

    def __post_init__(self):
        super().__post_init__()
        try:
            self.device = check_device_name(self.device)
        except ValueError as err:
            raise ConfigError(f"device: {err}") from None
        if self.minutes is not None:
            self.minutes = as_number(self.minutes, float, "minutes")
            if not self.minutes > 0:
                raise ConfigError(f"minutes must be > 0 (or null: no budget), got {self.minutes!r}")
        if isinstance(self.out_dir, Path):
            self.out_dir = str(self.out_dir)
        if self.out_dir is not None and not isinstance(self.out_dir, str):
            raise ConfigError(f"out_dir must be a folder name or null, got {self.out_dir!r}")
        load_args = _parameters(datasets.load)
        missing = [k for k, p in load_args.items() if p.default is p.empty and k not in self.data]
        if missing:
            raise ConfigError(f"the data section needs {', '.join('data.' + k for k in missing)} "
                              f"(e.g. data: {{name: mnist}})")
        self.data = _coerce_numbers(self.data, load_args, "data")
        self.model = _coerce_numbers(self.model, _parameters(UNet.__init__), "model")
        kind = self.schedule.get("kind", "linear")
        if isinstance(kind, str) and kind in schedules.KINDS:
            self.schedule = _coerce_numbers(self.schedule, _parameters(getattr(schedules, kind)), "schedule")
        try:
            T = schedules.from_config(self.schedule).T
        except ValueError as err:
            raise ConfigError(f"schedule {self.schedule}: {err}") from None
        if self.t_min > T:
            raise ConfigError(f"t_min must lie in 1..T = 1..{T} (the timesteps training draws from), got {self.t_min}")

    def section_keys(self) -> dict[str, tuple]:
        """Known keys of ``model`` (UNet's arguments), ``data`` (load's) and ``schedule`` (its kind's)."""
        kind = self.schedule.get("kind", "linear")
        return {"model": model_keys(), "data": data_keys(), "schedule": schedule_keys(kind)}

    @classmethod
    def kind_name(cls) -> str:
        return "training config"


def load_config(config) -> TrainConfig:
    """A TrainConfig from a TrainConfig, a dict, a YAML path, or a name under ``configs/``.

    Raises:
        ValueError: no such file or config name; ConfigError (a ValueError): a bad value or key.
    """
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    path = Path(config)
    if not path.is_file():
        path = ROOT / "configs" / f"{config}.yaml"
    if not path.is_file():
        raise ValueError(f"no config {str(config)!r}: not a file and not a name in {ROOT / 'configs'}")
    return TrainConfig.from_yaml(path)
