"""A small MNIST classifier: the feature extractor behind classifier-FID, classifier-KID and classifier-IS.

Inception-v3 (the network of the usual FID) needs torchvision, torch-fidelity and a download; this
CNN of about 100k parameters is trained here, offline, in about two CPU-minutes, and its weights (0.4 MB)
are committed under ``checkpoints/mnist_classifier/``. Metrics computed with it are *not*
comparable with published Inception FIDs, which is why :mod:`dlib.metrics` calls them
"classifier-FID" etc.

    python -m dlib.classifier configs/mnist_classifier.yaml [--out checkpoints/mnist_classifier]

Layout: conv 1->16 (28x28), pool, conv 16->32 (14x14), pool, conv 32->64 (7x7), pool to 3x3,
linear 576->``num_features`` + ReLU (the embedding; :meth:`MNISTClassifier.features` returns it
divided by a fixed scale), dropout, linear ->10 logits. Inputs are images (B, 1, 28, 28) in [-1, 1],
as everywhere in the book.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from .checkpoint import digest
from .runtime import ROOT, describe, seed_everything

FORMAT = "dlib-mnist-classifier-1"
DEFAULT_PATH = ROOT / "checkpoints" / "mnist_classifier" / "model.safetensors"
TRAIN_COMMAND = "python -m dlib.classifier configs/mnist_classifier.yaml"
IMAGE_SHAPE = (1, 28, 28)
DEFAULT_CONFIG = {
    "name": "mnist_classifier",
    "model": {"channels": [16, 32, 64], "num_features": 128, "dropout": 0.3},
    "data": {"name": "mnist", "source": "offline", "n": None},
    "max_shift": 2,
    "batch_size": 128,
    "steps": 500,
    "lr": 3.0e-3,
    "weight_decay": 1.0e-2,
    "log_every": 25,
    "seed": 0,
}


class ClassifierMissing(FileNotFoundError, ValueError):
    """The classifier's weights file is not there; the message says how to train it."""


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


def load_config(config) -> dict:
    """The classifier's training config: :data:`DEFAULT_CONFIG` updated by a dict or a YAML file."""
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"no classifier config at {path}")
        config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict or a YAML path, got {type(config).__name__}")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown classifier config keys {unknown}; known keys: {sorted(DEFAULT_CONFIG)}")
    cfg = {**DEFAULT_CONFIG, **config}
    cfg["model"] = {**DEFAULT_CONFIG["model"], **(config.get("model") or {})}
    cfg["data"] = {**DEFAULT_CONFIG["data"], **(config.get("data") or {})}
    for key in ("batch_size", "steps"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"{key} must be a positive int, got {cfg[key]!r}")
    return cfg


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


def _git_commit() -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def train_classifier(config=None, out_dir=None, command: str | None = None, progress: bool = True) -> dict:
    """Train the classifier on the MNIST train split and write it to ``out_dir``; return the manifest.

    Training: AdamW with a cosine learning-rate decay, cross-entropy, random shifts of up to
    ``max_shift`` pixels, on the CPU in float32 (bit-reproducible for a given seed and machine).
    Held-out accuracy is measured on the test split of the same source (offline: 500 digits).

    Args:
        config: a dict or YAML path (keys of :data:`DEFAULT_CONFIG`); None: the defaults.
        out_dir: folder for ``model.safetensors``, ``manifest.json``, ``train_log.jsonl`` and
            ``config.yaml`` (default: ``checkpoints/<name>``).
        command: the command line recorded in the manifest.
        progress: print a line every ``log_every`` steps.
    """
    from .data import load

    cfg = load_config(config if config is not None else {})
    out = Path(out_dir) if out_dir is not None else ROOT / "checkpoints" / cfg["name"]
    out.mkdir(parents=True, exist_ok=True)
    generator = seed_everything(cfg["seed"])
    data = cfg["data"]
    train = load(data["name"], "train", n=data["n"], source=data["source"])
    test = load(data["name"], "test", source=data["source"])
    if train.shape != IMAGE_SHAPE:
        raise ValueError(f"the classifier needs {IMAGE_SHAPE} images, {data['name']} has {train.shape}")
    model = MNISTClassifier(**cfg["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps, batch_size = cfg["steps"], cfg["batch_size"]
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
        x = random_shift(train.images[idx], cfg["max_shift"], generator)
        logits = model(x)
        loss = F.cross_entropy(logits, train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % cfg["log_every"] == 0 or step == steps:
            window = losses[-cfg["log_every"]:]
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
    final_window = losses[-cfg["log_every"]:]
    meta = {"format": FORMAT, "model_config": model.config, "test_accuracy": test_accuracy,
            "data": test.describe(), "sha256": digest(state)}
    (out / "model.safetensors").write_bytes(save(state, metadata={k: json.dumps(v) for k, v in meta.items()}))
    if isinstance(config, (str, Path)):  # keep the file as written, comments included
        shutil.copyfile(config, out / "config.yaml")
    else:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    manifest = {
        "name": cfg["name"],
        "what": "MNIST classifier for classifier-FID / classifier-KID / classifier-IS (not Inception)",
        "command": command or f"dlib.classifier.train_classifier({config!r}, out_dir={str(out_dir)!r})",
        "config": cfg,
        "git": _git_commit(),
        "data": {"train": train.describe(), "test": test.describe(), "augmentation": f"random shifts of up to "
                 f"{cfg['max_shift']} px (background filled with -1)"},
        "steps": steps,
        "epochs": round(steps * batch_size / len(train), 2),
        "wall_seconds": round(seconds, 1),
        "hardware": describe(),
        "platform": platform.platform(),
        "torch_version": torch.__version__,
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
            "(or pass the path of a model.safetensors written by dlib.classifier.train_classifier)")
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
    """``python -m dlib.classifier [CONFIG] [--out DIR]``: train, write the checkpoint, print a summary."""
    parser = argparse.ArgumentParser(prog="python -m dlib.classifier", description="Train the MNIST classifier "
                                     "used by classifier-FID/KID/IS.")
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs" / "mnist_classifier.yaml"))
    parser.add_argument("--out", default=None, help="output folder (default: checkpoints/<name>)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    command = "python -m dlib.classifier " + " ".join(argv if argv is not None else sys.argv[1:])
    manifest = train_classifier(args.config, args.out, command=command.strip(), progress=not args.quiet)
    print(json.dumps({k: manifest[k] for k in ("steps", "wall_seconds", "final_loss", "test_accuracy",
                                               "parameters")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
