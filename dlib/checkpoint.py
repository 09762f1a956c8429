"""Checkpoints as safetensors files: weights, a self-describing manifest, and the resume state.

A checkpoint ``NAME.safetensors`` is the *published* file: one set of weights (the EMA weights when
training kept them, else the raw weights) and string metadata, each value JSON-encoded:

``format``         :data:`FORMAT`
``architecture``   class name in :data:`dlib.nets.ARCHITECTURES` (``"UNet"``, ...)
``model_config``   the network's ``config`` dict, enough to rebuild it
``train_config``   the training config, ``step``, ``data`` (what it was trained on), ``extra``
``weights``        ``"ema"`` or ``"model"``
``torch_version``, ``sha256``  (a digest of every tensor's name, dtype, shape and bytes)

Beside it, ``NAME.train.safetensors`` (written when an optimizer is given) holds what an exact
resume needs and the published file leaves out: the raw weights (``model.*``), the EMA weights
(``ema.*``), the AdamW moments (``optimizer.<i>.<name>``), and the random states (``rng.*``,
``generator.<name>``) -- all tensors plus JSON metadata; nothing is pickled. Every file is written
atomically (temp file in the same folder, fsync, ``os.replace``): a crash leaves the old file.

Loading rebuilds the network from the metadata and fills a fresh instance; any disagreement (an
unreadable or truncated file, a checksum mismatch, a missing or unexpected tensor, a shape that
differs) raises :class:`CheckpointError` naming it, and nothing is returned half-loaded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as _serialize
from torch import nn

from . import nets, schedules

FORMAT = "dlib-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, corrupt, or not matching the network."""


def train_state_path(path) -> Path:
    """``runs/x/model.safetensors`` -> ``runs/x/model.train.safetensors`` (the resume state)."""
    path = Path(path)
    if path.name.endswith(".train.safetensors"):
        return path
    return path.with_name(path.name.removesuffix(".safetensors") + ".train.safetensors")


# ---------------------------------------------------------------------------------------------- writing

def digest(tensors: dict) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a dict of tensors (in sorted name order)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable (not possible on every OS / file system)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _write(path: Path, tensors: dict, meta: dict) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**meta, "sha256": digest(tensors)}
    _atomic_write(path, _serialize(tensors, metadata={k: json.dumps(v) for k, v in meta.items()}))


def _as_dict(config) -> dict:
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def _rng_tensors() -> tuple[dict, dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.uint32).view(np.int32).copy())
    version, py_state, py_gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(gauss)], "python": [version, list(py_state), py_gauss]}
    return tensors, meta


def save(path, model: nn.Module, *, ema: nn.Module | None = None, optimizer=None, step: int, config, data,
         extra: dict | None = None, generators: dict | None = None, scaler=None) -> Path:
    """Write a checkpoint (see the module docstring for the layout).

    Args:
        path: the published weights file, ``*.safetensors``.
        model: the trained network (a :mod:`dlib.nets` class with a ``config`` dict).
        ema: the exponential-moving-average copy of ``model`` (published instead of the raw weights).
        optimizer: when given, ``*.train.safetensors`` is written too, with the raw and EMA weights,
            the optimizer state, the global random states, ``generators`` and ``scaler``.
        step: optimizer steps taken. config: the training config (dict or dataclass).
        data: a dict describing the training data (e.g. ``ImageData.describe()``).
        extra: more JSON-able facts to keep (losses, timings, ...).
        generators: named ``torch.Generator`` objects whose states the resume restores.
        scaler: a ``torch.amp.GradScaler`` (fp16 training), stored as JSON.
    Returns:
        the path of the weights file.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"a checkpoint path must end in .safetensors, got {path}")
    arch = type(model).__name__
    if arch not in nets.ARCHITECTURES or not hasattr(model, "config"):
        raise ValueError(f"cannot checkpoint a {arch}: expected one of {sorted(nets.ARCHITECTURES)}")
    meta = {"format": FORMAT, "architecture": arch, "model_config": model.config, "train_config": _as_dict(config),
            "step": int(step), "data": data, "extra": extra or {}, "torch_version": torch.__version__}
    if optimizer is not None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        if ema is not None:
            tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
        opt = optimizer.state_dict()
        scalars = {}
        for index, state in opt["state"].items():
            for name, value in state.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{index}.{name}"] = value
                else:
                    scalars.setdefault(str(index), {})[name] = value
        rng, rng_meta = _rng_tensors()
        tensors.update(rng)
        generators = generators or {}
        for name, gen in generators.items():
            tensors[f"generator.{name}"] = gen.get_state()
        train_meta = {**meta, "optimizer": {"class": type(optimizer).__name__, "param_groups": opt["param_groups"],
                                            "scalars": scalars},
                      "rng": rng_meta, "generators": {n: str(g.device) for n, g in generators.items()},
                      "scaler": scaler.state_dict() if scaler is not None else None, "has_ema": ema is not None}
        _write(train_state_path(path), tensors, train_meta)  # first, so the pair is never ahead of it
    published = ema if ema is not None else model
    _write(path, dict(published.state_dict()), {**meta, "weights": "ema" if ema is not None else "model"})
    return path


# ---------------------------------------------------------------------------------------------- reading

def read(path) -> tuple[dict, dict]:
    """(tensors, metadata) of one checkpoint file, metadata JSON-decoded, digest verified.

    Raises CheckpointError when the file is missing, unreadable, truncated, of another format or
    corrupt (its tensors do not match the sha256 in its metadata).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = {k: json.loads(v) for k, v in raw.items()}
    except Exception as err:  # SafetensorError, JSON errors, OS errors
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint (truncated or corrupt?): "
                              f"{err}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("sha256") != digest(tensors):
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the sha256 digest in its metadata")
    return tensors, meta


def _check_state(module: nn.Module, tensors: dict, what: str) -> None:
    """Raise CheckpointError unless ``tensors`` has exactly the keys and shapes of ``module``."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{what} does not match {type(module).__name__}: missing keys {missing[:5]}"
                              f"{' ...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                              f"{' ...' if len(unexpected) > 5 else ''}")
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{what}: tensor {key!r} has shape {tuple(tensors[key].shape)} in the "
                                  f"checkpoint but {tuple(value.shape)} in the network")


def _prefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _info(meta: dict, path) -> dict:
    keys = ("format", "architecture", "model_config", "train_config", "step", "data", "extra", "torch_version",
            "weights")
    return {**{k: meta.get(k) for k in keys}, "path": str(path)}


def _weights(path, ema: bool) -> tuple[dict, dict]:
    """(state dict, metadata) of the requested weights: EMA (when present) or the raw ones."""
    tensors, meta = read(path)
    if ema or meta.get("weights") == "model":
        return tensors, meta
    train_path = train_state_path(path)
    if not train_path.is_file():
        raise CheckpointError(f"{path} publishes only the EMA weights; the raw weights live in {train_path}, "
                              f"which is missing (load with ema=True)")
    train_tensors, train_meta = read(train_path)
    return _prefixed(train_tensors, "model."), {**meta, "weights": "model", "step": train_meta["step"]}


def load(path, device=None, ema: bool = True) -> tuple[nn.Module, dict]:
    """Rebuild the network stored at ``path`` and load its weights.

    Args:
        path: a ``*.safetensors`` file written by :func:`save`.
        device: where to put the network (default: CPU).
        ema: the EMA weights (default) or, with False, the raw weights (read from the
            ``*.train.safetensors`` beside it when the published file holds the EMA weights).
    Returns:
        (model in eval mode, info dict with architecture, model_config, train_config, step, data,
        extra, torch_version, weights, path).
    Raises:
        CheckpointError (a ValueError): unreadable/truncated/corrupt file, or weights that do not fit
        the architecture named in the metadata.
    """
    state, meta = _weights(path, ema)
    try:
        model = nets.build(meta["architecture"], meta["model_config"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot rebuild the network from its metadata: {err}") from None
    _check_state(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return model.to(device or "cpu").eval(), _info(meta, path)


def load_pipeline(path, device=None, ema: bool = True) -> tuple[nn.Module, "schedules.Schedule"]:
    """A trained diffusion network and the schedule it was trained with, ready for :func:`dlib.samplers.sample`.

        model, schedule = checkpoint.load_pipeline("checkpoints/mnist_eps/model.safetensors")
        images = samplers.sample(model, schedule, 64)

    The schedule is rebuilt from the ``schedule`` section of the training config stored in the file
    (:func:`dlib.schedules.from_config`). Arguments as :func:`load`.

    Raises:
        CheckpointError: as :func:`load`, or when the file holds a network that does not generate
            images (not a U-Net) or no training config with a schedule.
    """
    model, info = load(path, device=device, ema=ema)
    if info["architecture"] != "UNet":
        raise CheckpointError(f"{path} holds a {info['architecture']}, not a diffusion U-Net: it has no sampler")
    spec = (info.get("train_config") or {}).get("schedule")
    if not spec:
        raise CheckpointError(f"{path} stores no training config with a schedule; build the schedule yourself")
    try:
        schedule = schedules.from_config(spec)
    except ValueError as err:
        raise CheckpointError(f"{path}: its stored schedule {spec!r} cannot be rebuilt: {err}") from None
    return model, schedule


def check_compatible(model: nn.Module, meta: dict, path) -> None:
    """Raise CheckpointError when ``model`` is not the architecture/config stored in ``meta``."""
    arch = type(model).__name__
    if meta.get("architecture") != arch:
        raise CheckpointError(f"{path} holds a {meta.get('architecture')}, not a {arch}")
    stored, ours = meta.get("model_config") or {}, getattr(model, "config", {})
    diff = {k: (stored.get(k), ours.get(k)) for k in sorted(set(stored) | set(ours)) if stored.get(k) != ours.get(k)}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items())
        raise CheckpointError(f"{path} was saved from a {arch} with a different config ({detail})")


def load_into(model: nn.Module, path, ema: bool = True) -> dict:
    """Load the weights at ``path`` into an existing ``model`` after checking it is the same network.

    Raises CheckpointError naming the differing config entries, keys or shapes; the model is left
    untouched unless everything matches. Returns the info dict of :func:`load`.
    """
    state, meta = _weights(path, ema)
    check_compatible(model, meta, path)
    _check_state(model, state, str(path))
    model.load_state_dict(state, strict=True)
    return _info(meta, path)


def restore(path, model: nn.Module, *, ema: nn.Module | None = None, optimizer=None, generators: dict | None = None,
            scaler=None) -> dict:
    """Restore a training run from ``*.train.safetensors`` (or the weights file beside it).

    Sets the raw weights of ``model``, the EMA weights of ``ema``, the optimizer state, the global
    torch/CUDA/NumPy/Python random states, the named ``generators`` and the ``scaler``, so that
    training continues exactly as if never interrupted. Everything is validated before anything is
    changed. Returns the info dict (with ``step``).
    """
    path = train_state_path(path)
    tensors, meta = read(path)
    check_compatible(model, meta, path)
    model_state = _prefixed(tensors, "model.")
    _check_state(model, model_state, f"{path} (model)")
    ema_state = _prefixed(tensors, "ema.")
    if ema is not None:
        if not meta.get("has_ema"):
            raise CheckpointError(f"{path} has no EMA weights but the run keeps an EMA")
        _check_state(ema, ema_state, f"{path} (ema)")
    opt_state = None
    if optimizer is not None:
        saved = meta["optimizer"]
        if saved["class"] != type(optimizer).__name__:
            raise CheckpointError(f"{path} holds a {saved['class']} state, the run uses {type(optimizer).__name__}")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        state = {int(i): dict(s) for i, s in saved["scalars"].items()}
        for key, value in _prefixed(tensors, "optimizer.").items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        if len(saved["param_groups"]) != len(optimizer.param_groups) or \
                sum(len(g["params"]) for g in saved["param_groups"]) != len(params):
            raise CheckpointError(f"{path}: the optimizer state has other parameter groups than the run")
        for index, entries in state.items():
            for name, value in entries.items():
                if torch.is_tensor(value) and value.ndim and tuple(value.shape) != tuple(params[index].shape):
                    raise CheckpointError(f"{path}: optimizer state {name!r} of parameter {index} has shape "
                                          f"{tuple(value.shape)}, the parameter {tuple(params[index].shape)}")
        groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in saved["param_groups"]]
        opt_state = {"state": state, "param_groups": groups}
    generators = generators or {}
    missing = sorted(set(generators) - set(meta.get("generators", {})))
    if missing:
        raise CheckpointError(f"{path} holds no state for the generators {missing}")
    for name, gen in generators.items():
        if torch.device(meta["generators"][name]).type != gen.device.type:
            raise CheckpointError(f"{path}: generator {name!r} was saved on {meta['generators'][name]}, "
                                  f"the run has it on {gen.device} (resume on the same kind of device)")
    # --- everything checked: apply
    model.load_state_dict(model_state, strict=True)
    if ema is not None:
        ema.load_state_dict(ema_state, strict=True)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    kind, pos, has_gauss, gauss = meta["rng"]["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().view(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = meta["rng"]["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    for name, gen in generators.items():
        gen.set_state(tensors[f"generator.{name}"])
    return _info(meta, path)
