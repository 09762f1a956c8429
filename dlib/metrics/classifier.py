"""A small MNIST classifier: the feature extractor behind classifier-FID, classifier-KID and classifier-IS.

Inception-v3 (the network of the usual FID) needs torchvision, torch-fidelity and a download; this
CNN of about 100k parameters is trained here, offline, in about two CPU-minutes, and its weights (0.4 MB)
are committed under ``checkpoints/mnist_classifier/``. Metrics computed with it are *not*
comparable with published Inception FIDs, which is why :mod:`dlib.metrics` calls them
"classifier-FID" etc.

    python -m dlib.metrics.classifier configs/mnist_classifier.yaml [--out checkpoints/mnist_classifier]

Layout: conv 1->16 (28x28), pool, conv 16->32 (14x14), pool, conv 32->64 (7x7), pool to 3x3,
linear 576->``num_features`` + ReLU (the embedding; :meth:`MNISTClassifier.features` returns it
divided by a fixed scale), dropout, linear ->10 logits. Inputs are images (B, 1, 28, 28) in [-1, 1],
as everywhere in the book.

The training settings are a :class:`ClassifierConfig` (``configs/mnist_classifier.yaml``); the
manifest written next to the weights records them with the provenance of :mod:`dlib.provenance`.
The committed checkpoint was trained when this module was ``dlib.classifier``, so its manifest
records the command ``python -m dlib.classifier configs/mnist_classifier.yaml`` (the same training
as :data:`TRAIN_COMMAND` today).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from ..checkpoint import digest
from ..config import Config, ConfigError, as_number, number
from ..provenance import record
from ..runtime import ROOT, seed_everything
from .images import IMAGE_SHAPE

FORMAT = "dlib-mnist-classifier-1"
DEFAULT_PATH = ROOT / "checkpoints" / "mnist_classifier" / "model.safetensors"
DEFAULT_CONFIG_PATH = ROOT / "configs" / "mnist_classifier.yaml"
TRAIN_COMMAND = "python -m dlib.metrics.classifier configs/mnist_classifier.yaml"
MODEL_DEFAULTS = {"channels": [16, 32, 64], "num_features": 128, "dropout": 0.3}
DATA_DEFAULTS = {"name": "mnist", "source": "offline", "n": None}


class ClassifierMissing(FileNotFoundError, ValueError):
    """The classifier's weights file is not there; the message says how to train it."""


def _in_range(value, kind: type, name: str, low, high=None, high_open: bool = False):
    """``value`` read as ``kind`` (int or float) and checked to lie in [low, high] (or [low, high))."""
    number_ = as_number(value, kind, name)
    if number_ < low or (high is not None and (number_ >= high if high_open else number_ > high)):
        span = f"[{low}, {'inf' if high is None else high}{')' if high_open else ']'}"
        raise ConfigError(f"{name} must lie in {span}, got {value!r}")
    return number_


@dataclasses.dataclass
class ClassifierConfig(Config):
    """The classifier's training settings; ``ClassifierConfig.from_yaml("configs/mnist_classifier.yaml")``.

    ``model``: :class:`MNISTClassifier` arguments (``channels``: three widths, ``num_features``,
    ``dropout`` in [0, 1)); ``data``: :func:`dlib.data.load` arguments (``name``, ``source``, ``n``:
    None = all training images). Keys left out of a section keep their defaults. Training: AdamW
    (``lr``, ``weight_decay``) with a cosine decay over ``steps`` batches of ``batch_size``,
    random shifts of up to ``max_shift`` pixels, a log line every ``log_every`` steps.
    """

    name: str = "mnist_classifier"
    model: dict = dataclasses.field(default_factory=lambda: dict(MODEL_DEFAULTS))
    data: dict = dataclasses.field(default_factory=lambda: dict(DATA_DEFAULTS))
    max_shift: int = number(2, low=0, doc="augmentation: random translations of up to this many pixels")
    batch_size: int = number(128, low=1)
    steps: int = number(500, low=1)
    lr: float = number(3.0e-3, low=0, low_open=True)
    weight_decay: float = number(1.0e-2, low=0)
    log_every: int = number(25, low=1)
    seed: int = number(0, low=0)

    def section_keys(self) -> dict[str, tuple]:
        return {"model": tuple(MODEL_DEFAULTS), "data": tuple(DATA_DEFAULTS)}

    @classmethod
    def kind_name(cls) -> str:
        return "classifier config"

    def __post_init__(self):
        super().__post_init__()  # types, ranges, unknown keys (sections included)
        model, data = {**MODEL_DEFAULTS, **self.model}, {**DATA_DEFAULTS, **self.data}
        channels = model["channels"]
        if not isinstance(channels, (list, tuple)) or len(channels) != 3:
            raise ConfigError(f"model.channels must be a list of three widths, got {channels!r}")
        model["channels"] = [_in_range(c, int, "model.channels", 1) for c in channels]
        model["num_features"] = _in_range(model["num_features"], int, "model.num_features", 1)
        model["dropout"] = _in_range(model["dropout"], float, "model.dropout", 0, 1, high_open=True)
        if not isinstance(data["name"], str):
            raise ConfigError(f"data.name must be a string, got {data['name']!r}")
        if data["source"] not in ("auto", "torchvision", "offline"):
            raise ConfigError(f"data.source must be one of ['auto', 'torchvision', 'offline'], got {data['source']!r}")
        if data["n"] is not None:
            data["n"] = _in_range(data["n"], int, "data.n", 2)
        self.model, self.data = model, data


class MNISTClassifier(nn.Module):
    """CNN for 28x28 digits. ``forward(x)``: logits (B, 10); ``features(x)``: embedding (B, num_features).

    Args:
        channels: output channels of the three convolutions.
        num_features: size of the penultimate embedding (the features of classifier-FID/KID).
        dropout: dropout rate between the embedding and the logits (training only).
        num_classes: number of logits.
    """

    def __init__(self, channels=(16, 32, 64), num_features: int = 128, dropout: float = 0.3,
                 num_classes: int = 10):
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.config = {"channels": [c1, c2, c3], "num_features": int(num_features), "dropout": float(dropout),
                       "num_classes": int(num_classes)}
        self.num_features = int(num_features)
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 28 -> 14
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 7 -> 3
            nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(c3 * 3 * 3, self.num_features), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        # RMS of the embedding's entries over the training digits, set after training: features()
        # divides by it so that entries are O(1), as KID's kernel (a.b / d + 1)^3 assumes.
        self.register_buffer("feature_scale", torch.ones(()))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"the MNIST classifier takes images of shape (B, 1, 28, 28), got {tuple(x.shape)}")

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate layer: x (B, 1, 28, 28) float in [-1, 1] -> (B, num_features), >= 0 (after a ReLU)."""
        self._check(x)
        return self.embed(self.body(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding divided by ``feature_scale`` (entries of RMS 1 on training digits): (B, num_features)."""
        return self.embedding(x) / self.feature_scale

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) from :meth:`features` (eval mode: no dropout)."""
        return self.head(self.dropout(features * self.feature_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes) of images x (B, 1, 28, 28) in [-1, 1]."""
        return self.head(self.dropout(self.embedding(x)))

    def num_parameters(self) -> int:
        """Number of trainable weights."""
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------------------------- training

def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of x (B, C, H, W) by its own integer offset in [-max_shift, max_shift]^2.

    Pixels shifted in from outside are background (-1). Offsets come from ``generator`` (on the CPU).
    """
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s), value=-1.0)
    dy, dx = (torch.randint(-s, s + 1, (2, b), generator=generator)).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + s + dy[:, None]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + s + dx[:, None]  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def load_config(config=None) -> ClassifierConfig:
    """The classifier's training config from a :class:`ClassifierConfig`, a dict or a YAML path (None: defaults).

    Raises:
        ConfigError (a ValueError): a missing file, an unknown key (the message lists the known
            ones), a value of the wrong type or out of its range.
    """
    if config is None:
        return ClassifierConfig()
    if isinstance(config, ClassifierConfig):
        return config
    if isinstance(config, (str, Path)):
        if not Path(config).is_file():
            raise ConfigError(f"no classifier config at {config}")
        return ClassifierConfig.from_yaml(config)
    if isinstance(config, dict):
        return ClassifierConfig.from_dict(config)
    raise ConfigError(f"config must be a ClassifierConfig, a dict or a YAML path, got {type(config).__name__}")


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of images (N, 1, 28, 28) whose arg-max logit equals the label (N,)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i:i + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == labels[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(images)


def train_classifier(config=None, out_dir=None, command: str | None = None, progress: bool = True) -> dict:
    """Train the classifier on the MNIST train split and write it to ``out_dir``; return the manifest.

    Training: AdamW with a cosine learning-rate decay, cross-entropy, random shifts of up to
    ``max_shift`` pixels, on the CPU in float32 (bit-reproducible for a given seed and machine).
    Held-out accuracy is measured on the test split of the same source (offline: 500 digits).

    Args:
        config: a :class:`ClassifierConfig`, a dict of its fields or a YAML path; None: the defaults.
        out_dir: folder for ``model.safetensors``, ``manifest.json``, ``train_log.jsonl`` and
            ``config.yaml`` (default: ``checkpoints/<name>``).
        command: the command line recorded in the manifest.
        progress: print a line every ``log_every`` steps.
    """
    from ..data import load

    cfg = load_config(config)
    out = Path(out_dir) if out_dir is not None else ROOT / "checkpoints" / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    generator = seed_everything(cfg.seed)
    data = cfg.data
    train = load(data["name"], "train", n=data["n"], source=data["source"])
    test = load(data["name"], "test", source=data["source"])
    if train.shape != IMAGE_SHAPE:
        raise ValueError(f"the classifier needs {IMAGE_SHAPE} images, {data['name']} has {train.shape}")
    model = MNISTClassifier(**cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps, batch_size = cfg.steps, cfg.batch_size
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    log_path = out / "train_log.jsonl"
    log = log_path.open("w")
    order, position = torch.randperm(len(train), generator=generator), 0
    losses, start = [], time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        if position + batch_size > len(train):  # a new epoch: reshuffle
            order, position = torch.randperm(len(train), generator=generator), 0
        idx = order[position:position + batch_size]
        position += batch_size
        x = random_shift(train.images[idx], cfg.max_shift, generator)
        logits = model(x)
        loss = F.cross_entropy(logits, train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == steps:
            window = losses[-cfg.log_every:]
            row = {"step": step, "loss": sum(window) / len(window), "lr": optimizer.param_groups[0]["lr"],
                   "batch_accuracy": float((logits.argmax(1) == train.labels[idx]).float().mean()),
                   "seconds": round(time.perf_counter() - start, 2)}
            log.write(json.dumps(row) + "\n")
            log.flush()
            if progress:
                print(json.dumps(row), flush=True)
    log.close()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        squares = sum(float(model.embedding(train.images[i:i + 500]).square().sum())
                      for i in range(0, len(train), 500))
        model.feature_scale.fill_(math.sqrt(squares / (len(train) * model.num_features)))
    test_accuracy = accuracy(model, test.images, test.labels)
    train_accuracy = accuracy(model, train.images, train.labels)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    final_window = losses[-cfg.log_every:]
    meta = {"format": FORMAT, "model_config": model.config, "test_accuracy": test_accuracy,
            "data": test.describe(), "sha256": digest(state)}
    (out / "model.safetensors").write_bytes(save(state, metadata={k: json.dumps(v) for k, v in meta.items()}))
    if isinstance(config, (str, Path)):  # keep the file as written, comments included
        shutil.copyfile(config, out / "config.yaml")
    else:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    provenance = record("cpu")  # trained on the CPU, whatever else the machine has
    manifest = {
        "name": cfg.name,
        "what": "MNIST classifier for classifier-FID / classifier-KID / classifier-IS (not Inception)",
        "command": command or f"dlib.metrics.classifier.train_classifier({config!r}, out_dir={str(out_dir)!r})",
        "config": cfg.to_dict(),
        "git": provenance["git"],
        "data": {"train": train.describe(), "test": test.describe(), "augmentation": f"random shifts of up to "
                 f"{cfg.max_shift} px (background filled with -1)"},
        "steps": steps,
        "epochs": round(steps * batch_size / len(train), 2),
        "wall_seconds": round(seconds, 1),
        "hardware": provenance["hardware"],
        "platform": provenance["platform"],
        "torch_version": torch.__version__,
        "versions": provenance["versions"],
        "parameters": model.num_parameters(),
        "final_loss": sum(final_window) / len(final_window),
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "test_examples": len(test),
        "num_features": model.num_features,
        "feature_scale": float(model.feature_scale),
        "weights": {"file": "model.safetensors", "sha256": meta["sha256"]},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------------------------------------- loading

def load_classifier(path=None, device=None) -> MNISTClassifier:
    """The trained classifier in eval mode, gradients off (default: :data:`DEFAULT_PATH`).

    Reads a safetensors file (no pickle), rebuilds the network from its ``model_config`` metadata and
    checks that every tensor is present with the expected shape.

    Raises:
        ClassifierMissing: no file at ``path`` (the message gives the command that trains it).
        ValueError: the file is not a classifier checkpoint, a tensor is missing, extra or misshapen,
            or the weights do not match their recorded sha256.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise ClassifierMissing(
            f"no MNIST classifier weights at {path}. Train them (about two CPU-minutes) with\n    {TRAIN_COMMAND}\n"
            "(or pass the path of a model.safetensors written by dlib.metrics.classifier.train_classifier)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises several error types for unreadable files
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    if json.loads(meta.get("format", "null")) != FORMAT:
        raise ValueError(f"{path} is not an MNIST classifier checkpoint (format {meta.get('format')!r}, "
                         f"expected {FORMAT!r})")
    model = MNISTClassifier(**json.loads(meta["model_config"]))
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: missing tensors {missing}, unexpected tensors {unexpected}")
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise ValueError(f"{path}: tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                             f"the network expects {tuple(value.shape)}")
    if "sha256" in meta and json.loads(meta["sha256"]) != digest(tensors):
        raise ValueError(f"{path}: the weights do not match their recorded sha256 (corrupt or edited file)")
    model.load_state_dict(tensors)
    model.eval().requires_grad_(False)
    return model.to(device) if device is not None else model


def main(argv=None) -> int:
    """``python -m dlib.metrics.classifier [CONFIG] [--out DIR]``: train, write the checkpoint, print a summary."""
    parser = argparse.ArgumentParser(prog="python -m dlib.metrics.classifier", description="Train the MNIST "
                                     "classifier used by classifier-FID/KID/IS.")
    parser.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG_PATH))
    parser.add_argument("--out", default=None, help="output folder (default: checkpoints/<name>)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    command = "python -m dlib.metrics.classifier " + " ".join(argv if argv is not None else sys.argv[1:])
    manifest = train_classifier(args.config, args.out, command=command.strip(), progress=not args.quiet)
    print(json.dumps({k: manifest[k] for k in ("steps", "wall_seconds", "final_loss", "test_accuracy",
                                               "parameters")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
