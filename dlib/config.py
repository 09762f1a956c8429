"""One config style for every trainer: typed, range-checked dataclasses that round-trip through YAML.

A trainer's settings are a dataclass deriving from :class:`Config`. Each field declares its type by
annotation and its allowed range with :func:`number`; nested sections (``model``, ``data``,
``schedule``) are plain dicts whose known keys a subclass lists in :meth:`Config.section_keys`.
Building a config (``from_dict``, ``from_yaml`` or the constructor)

* turns numbers written the usual ways into the field's type (YAML reads ``1e-3`` as the string
  ``"1e-3"``; ``"1e-3"``, ``1e-3``, ``5000``, ``"5_000"`` and ``5e3`` are all accepted where they fit),
* checks every numeric field against its range (``ema_decay: 1.5`` is refused),
* refuses unknown keys at the top level and inside each section, listing the known ones,

and raises :class:`ConfigError` (a ``ValueError``) naming the field. The trainers of
:mod:`dlib.train` (:class:`dlib.train_config.TrainConfig`), :mod:`dlib.metrics.classifier` and
:mod:`dlib.score_mlp` use it.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import yaml

__all__ = ["Config", "ConfigError", "number", "choice", "as_number"]


class ConfigError(ValueError):
    """A config value of the wrong type, outside its range, or under an unknown key."""


def number(default, *, low=None, high=None, low_open: bool = False, high_open: bool = False, doc: str = ""):
    """A numeric dataclass field with an allowed range [low, high] (``*_open``: the end excluded)."""
    meta = {"low": low, "high": high, "low_open": low_open, "high_open": high_open, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


def choice(default, options: tuple, doc: str = ""):
    """A string dataclass field restricted to ``options``."""
    return dataclasses.field(default=default, metadata={"options": tuple(options), "doc": doc})


def as_number(value, kind: type, name: str):
    """``value`` as an int or float (``kind``), accepting numeric strings; ConfigError otherwise.

    Ints accept integral floats (``5e3``) and strings (``"5000"``, ``"5_000"``, ``"5e3"``); floats
    accept ints and strings (``"1e-3"``). Booleans are never numbers.
    """
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            value = int(text) if kind is int and text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if kind is int:
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return value


def _check_range(value, meta: dict, name: str) -> None:
    low, high = meta.get("low"), meta.get("high")
    too_low = low is not None and (value <= low if meta.get("low_open") else value < low)
    too_high = high is not None and (value >= high if meta.get("high_open") else value > high)
    if too_low or too_high:
        left = "(" if meta.get("low_open") else "["
        right = ")" if meta.get("high_open") else "]"
        span = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        raise ConfigError(f"{name} must lie in {span}, got {value!r}")


@dataclasses.dataclass
class Config:
    """Base of the trainers' configs (see the module docstring). Subclasses are dataclasses."""

    def section_keys(self) -> dict[str, tuple]:
        """{section name: its known keys} for the dict-valued fields that are checked key by key."""
        return {}

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            kind = hints.get(f.name)
            name = f"{self.describe_field(f.name)}"
            if kind in (int, float) or kind in (typing.Optional[int], typing.Optional[float]):
                if value is None and kind not in (int, float):
                    continue
                base = int if kind in (int, typing.Optional[int]) else float
                value = as_number(value, base, name)
                _check_range(value, meta, name)
            elif kind is str:
                if not isinstance(value, str):
                    raise ConfigError(f"{name} must be a string, got {value!r}")
                if "options" in meta and value not in meta["options"]:
                    raise ConfigError(f"{name} must be one of {list(meta['options'])}, got {value!r}")
            elif kind is dict:
                if value is None:
                    value = {}
                if not isinstance(value, dict):
                    raise ConfigError(f"{name} must be a mapping, got {value!r}")
                value = dict(value)
            object.__setattr__(self, f.name, value)
        for section, known in self.section_keys().items():
            unknown = sorted(set(getattr(self, section)) - set(known))
            if unknown:
                raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                                  f"{', '.join(f'{section}.{k}' for k in unknown)} in {self.kind_name()}; "
                                  f"the known keys of {section!r} are: {', '.join(sorted(known))}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def kind_name(cls) -> str:
        return cls.__name__

    @classmethod
    def describe_field(cls, name: str) -> str:
        return name

    @classmethod
    def from_dict(cls, values: dict):
        """A config from a mapping; unknown keys are a ConfigError listing the known ones."""
        if not isinstance(values, dict):
            raise ConfigError(f"a {cls.kind_name()} must be a mapping of keys to values, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown {cls.kind_name()} key{'s' if len(unknown) > 1 else ''} {unknown}; "
                              f"known keys: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path):
        """A config from a YAML file; its ``name`` defaults to the file's stem when the class has one."""
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of keys to values")
        if "name" in {f.name for f in dataclasses.fields(cls)}:
            values.setdefault("name", path.stem)
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        """Plain JSON/YAML-able values (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
