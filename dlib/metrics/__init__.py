"""Sample-quality metrics for generated digits; :func:`evaluate` is the front door.

Distribution metrics (a set of samples against a set of real images), computed on the features of
the small MNIST classifier of :mod:`dlib.metrics.classifier` -- *not* on Inception-v3, so the names
say so:

==================  ================================================================================
``classifier-fid``  Frechet distance between Gaussians fitted to the classifier's 128-d embeddings
``classifier-kid``  unbiased squared MMD with the cubic polynomial kernel on the same embeddings
``classifier-is``   exp(E_x KL(p(y|x) || p(y))) with the classifier's class probabilities
``precision``       improved precision (Kynkaanniemi et al. 2019): share of samples on the real manifold
``recall``          improved recall: share of real images on the samples' manifold
``fid kid is``      the usual Inception-v3 versions (torch-fidelity + torchvision + a download)
==================  ================================================================================

Classifier-FID numbers are comparable with each other (same classifier, same reference, same
sample count), never with published Inception FIDs. Everything takes images (N, 1, 28, 28) in
[-1, 1]. The package, module by module (every public name is importable from here):

==============  ====================================================================================
``images``      :func:`check_images` and :func:`reference_images` (the real digits compared with)
``features``    the classifier's features (:func:`classifier_outputs`, :class:`ClassifierFeatures`)
                and the statistics on them: FID, KID, IS, precision/recall
``inception``   the Inception-v3 FID/KID/IS where torch-fidelity and the network exist (Colab)
``paired``      :func:`mae` and :func:`ms_ssim` of reconstructions against their originals
``resampling``  :func:`seed_spread` and :func:`compare`: when a difference between two scores is a tie
``classifier``  the MNIST classifier itself: network, config, training (``python -m
                dlib.metrics.classifier``), loading (imported only when a classifier is needed)
==============  ====================================================================================
"""
from __future__ import annotations

import torch
from torch import nn

from . import inception
from .features import (ClassifierFeatures, _GivenFeatures, cached_classifier, classifier_outputs,  # noqa: F401
                       frechet_distance, gaussian_frechet_distance, inception_score, kernel_distance, knn_radii,
                       precision_recall)
from .images import (DEFAULT_N_REFERENCE, IMAGE_SHAPE, RANGE_TOLERANCE, check_images,  # noqa: F401
                     reference_images)
from .inception import INCEPTION_METRICS, MetricUnavailable, inception_metrics, inception_missing  # noqa: F401
from .paired import MS_SSIM_BETAS, MS_SSIM_KERNEL_SIZE, MS_SSIM_SIGMA, mae, ms_ssim  # noqa: F401
from .resampling import TIE_Z, compare, seed_spread  # noqa: F401

CLASSIFIER_METRICS = ("classifier-fid", "classifier-kid", "classifier-is", "precision", "recall")
METRICS = CLASSIFIER_METRICS + INCEPTION_METRICS
DEFAULT_METRICS = CLASSIFIER_METRICS


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
        classifier: a trained :class:`dlib.metrics.classifier.MNISTClassifier` (default: the committed one).
        k: neighbours of precision/recall; kid_subsets: rounds of KID; seed: subset choices.
    Returns:
        a dict: every asked metric (KID and IS add ``...-std``; classifier-IS adds
        ``classifier-is-reference``, the IS of the reference images, an upper reference) plus
        ``n_samples``, ``n_reference``, ``reference`` and ``feature_extractor``. Precision and recall
        use equally many samples and reference images (a seeded random subset of the larger set).
    """
    from ..runtime import ROOT, device as best_device

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
        model = classifier if classifier is not None else cached_classifier(str(dev))
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
        from .classifier import DEFAULT_PATH  # imported here, not on top: see dlib.metrics.features

        source = ("dlib.metrics.classifier.MNISTClassifier" if classifier is not None
                  else DEFAULT_PATH.relative_to(ROOT).as_posix())
        result["feature_extractor"] = f"MNIST classifier ({source}), not Inception-v3"
    if wanted_inception:
        result.update(inception_metrics(x, real, wanted_inception, device=dev))
    return result


def real_vs_real(n: int, metrics=("classifier-fid",), reference="mnist-test", seed: int = 0, **kwargs) -> dict:
    """The metrics of ``n`` real training digits scored exactly as ``n`` samples would be: the baseline.

    A perfect generator would score like real images; at a finite sample count even real images
    do not score FID 0 (FID is biased upward at small n). Every table that prints a model's score
    at n samples prints this beside it, with the same ``reference`` (by default the held-out
    ``"mnist-test"`` digits, disjoint from the training digits drawn here). ``kwargs`` go to
    :func:`evaluate`; ``seed`` picks the n training digits.

    Raises:
        ValueError: n < 2 or more than the training split holds.
    """
    from ..data import load

    train = load("mnist", "train").images
    if not 2 <= n <= len(train):
        raise ValueError(f"n must lie in 2..{len(train)} (the training digits available here), got {n}")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n]
    result = evaluate(train[pick], metrics, reference=reference, seed=seed, **kwargs)
    return {**result, "samples": f"{n} real training digits (seed {seed})"}
