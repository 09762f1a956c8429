"""Feature vectors and the distribution metrics on them: Frechet distance, kernel distance, IS, precision/recall.

First the features: :class:`ClassifierFeatures` and :func:`classifier_outputs` run dlib's MNIST
classifier (:mod:`dlib.metrics.classifier`) on images and return its 128-d embeddings and 10
logits. Then the statistics, which compare two sets of feature vectors, real (N, d) and generated
(M, d), or score one set of class logits, whatever network produced them; fed the classifier's
outputs they are classifier-FID, -KID and -IS. The Inception-v3 versions are in
:mod:`dlib.metrics.inception`. Every public name here is importable from :mod:`dlib.metrics`.

Sources: FID, Heusel et al. 2017 (GANs trained by a two time-scale update rule...); KID,
Binkowski et al. 2018 (Demystifying MMD GANs); IS, Salimans et al. 2016 (Improved techniques for
training GANs); precision/recall, Kynkaanniemi et al. 2019 (Improved precision and recall metric
for assessing generative models).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .images import check_images


# ------------------------------------------------------------------------------------------ the classifier's features
# (dlib.metrics.classifier is imported where it is used, so that importing dlib.metrics does not
# import it, and ``python -m dlib.metrics.classifier`` runs it cleanly as a script)

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
        if classifier is None:
            from .classifier import load_classifier

            classifier = load_classifier()
        self.classifier = classifier
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
def cached_classifier(device: str) -> nn.Module:
    """The committed classifier (:data:`dlib.metrics.classifier.DEFAULT_PATH`) on ``device``, loaded once."""
    from .classifier import DEFAULT_PATH, load_classifier

    return load_classifier(DEFAULT_PATH, device=torch.device(device))


@torch.no_grad()
def classifier_outputs(images, classifier: nn.Module | None = None, batch_size: int = 500, device=None):
    """Embeddings and logits of the MNIST classifier.

    Args:
        images: (N, 1, 28, 28) float in [-1, 1] (tensor or array; validated by :func:`check_images`).
        classifier: a :class:`dlib.metrics.classifier.MNISTClassifier` (default: the committed checkpoint).
        device: where the classifier runs (default: the classifier's device, else ``runtime.device()``).
    Returns:
        ``(features, logits)``: float32 tensors (N, num_features) and (N, 10) on the CPU.
    """
    from ..runtime import device as best_device

    x = check_images(images, "images", min_count=1)
    if classifier is None:
        classifier = cached_classifier(str(torch.device(device) if device is not None else best_device()))
    dev = next(classifier.parameters()).device if device is None else torch.device(device)
    classifier = classifier.to(dev).eval()
    features, logits = [], []
    for i in range(0, len(x), batch_size):
        f = classifier.features(x[i:i + batch_size].to(dev))
        features.append(f.float().cpu())
        logits.append(classifier.logits_from_features(f).float().cpu())  # = classifier(x) in eval mode
    return torch.cat(features), torch.cat(logits)


# ---------------------------------------------------------------------------------------------- statistics on features

def _check_features(real: torch.Tensor, fake: torch.Tensor) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, d) and (M, d) with the same d, got {tuple(real.shape)} "
                         f"and {tuple(fake.shape)}")


class _GivenFeatures(nn.Module):
    """Identity 'extractor': lets torchmetrics' FID/KID consume features computed once beforehand."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


# ---------------------------------------------------------------------------------------------- FID, KID, IS

def gaussian_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2) (chapter "measuring", eq-frechet).

    d^2 = |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1^(1/2) sigma2 sigma1^(1/2))^(1/2)), where the
    last trace equals tr (sigma1 sigma2)^(1/2): both matrices have the same non-negative eigenvalues.
    Means (d,) and symmetric positive semi-definite covariances (d, d), tensors or arrays. Computed by
    the routine that :func:`frechet_distance` runs on fitted statistics (torchmetrics' ``_compute_fid``,
    float64 on the CPU), so the two never disagree.
    """
    from torchmetrics.image.fid import _compute_fid

    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64).reshape(-1) for m in (mu1, mu2))
    sigma1, sigma2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    d = len(mu1)
    if len(mu2) != d or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"expected means (d,) and covariances (d, d) with one d, got {tuple(mu1.shape)}, "
                         f"{tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}")
    return float(_compute_fid(mu1, sigma1, mu2, sigma2))


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, d) and (M, d), N, M >= 2.

    FID = |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)), with sample means mu and unbiased
    covariances S; computed by torchmetrics' FrechetInceptionDistance in float64 on the CPU. With the
    classifier's embeddings this is **classifier-FID** (not Inception FID). The formula is
    :func:`gaussian_frechet_distance` of the fitted Gaussians (chapter "measuring", eq-fid).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_features(real_features, fake_features)
    metric = FrechetInceptionDistance(feature=_GivenFeatures(real_features.shape[1]))
    metric.update(real_features.detach().cpu().double(), real=True)
    metric.update(fake_features.detach().cpu().double(), real=False)
    return float(metric.compute())


def kernel_distance(real_features: torch.Tensor, fake_features: torch.Tensor, subsets: int = 100,
                    subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel distance (KID): unbiased squared MMD with k(a, b) = (a.b / d + 1)^3, averaged over subsets.

    For subsets r_1..r_m and f_1..f_m of the two feature sets (N, d) and (M, d):
    KID = [sum_{i != j} k(r_i, r_j) + k(f_i, f_j)] / (m (m - 1)) - 2 sum_{i, j} k(r_i, f_j) / m^2.
    Each of ``subsets`` rounds draws ``min(subset_size, N, M)`` rows of each set without replacement
    (torchmetrics' KernelInceptionDistance, seeded by ``seed``, float64 on the CPU). Returns
    ``(mean, std)`` over the rounds. With the classifier's embeddings this is **classifier-KID**.
    The estimator is unbiased, so values near 0 may be slightly negative (chapter "measuring", eq-kid).
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    _check_features(real_features, fake_features)
    size = min(subset_size, len(real_features), len(fake_features))
    if size < 2:
        raise ValueError("KID needs at least 2 real and 2 fake feature vectors")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(feature=_GivenFeatures(real_features.shape[1]), subsets=subsets,
                                         subset_size=size)
    metric.update(real_features.detach().cpu().double(), real=True)
    metric.update(fake_features.detach().cpu().double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, splits: int = 1) -> tuple[float, float]:
    """Inception score exp(E_x KL(p(y|x) || p(y))) from logits (N, K); ``(mean, std)`` over splits.

    p(y|x) = softmax(logits); p(y) is the mean of p(y|x) over the split. The N rows are cut into
    ``splits`` consecutive chunks (the usual report uses 10; 1 uses the whole set, the least
    biased for small N). 1 <= IS <= K: K when every prediction is confident and the classes are
    balanced, 1 when every image gets the same distribution. With the classifier: **classifier-IS**
    (chapter "measuring", eq-is).
    """
    if logits.ndim != 2 or logits.shape[0] < splits or splits < 1:
        raise ValueError(f"logits must be (N, K) with N >= splits >= 1, got {tuple(logits.shape)}, splits={splits}")
    log_p = torch.log_softmax(logits.detach().cpu().double(), dim=1)
    scores = []
    for chunk in torch.tensor_split(log_p, splits):
        log_marginal = torch.logsumexp(chunk, dim=0) - np.log(len(chunk))  # log of mean_x p(y|x)
        kl = (chunk.exp() * (chunk - log_marginal)).sum(1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------------------------- precision, recall

def knn_radii(features: torch.Tensor, k: int = 3, batch_size: int = 1024) -> torch.Tensor:
    """Distance from each of N points (N, d) to its k-th nearest neighbour in the same set (itself excluded).

    The radii of the hyperspheres whose union is the k-NN estimate of the set's manifold
    (Kynkaanniemi et al. 2019). Rows are processed ``batch_size`` at a time (``torch.cdist``).
    """
    if not 1 <= k < len(features):
        raise ValueError(f"k must be in 1..N-1 = 1..{len(features) - 1}, got {k}")
    radii = []
    for i in range(0, len(features), batch_size):
        d = torch.cdist(features[i:i + batch_size], features)
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # index 0 is the point itself
    return torch.cat(radii)


def _inside_any(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> torch.Tensor:
    inside = []
    for i in range(0, len(points), batch_size):
        d = torch.cdist(points[i:i + batch_size], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3,
                     batch_size: int = 1024) -> dict:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of fake against real feature sets.

    The manifold of a set is the union of balls around its points, each of radius the distance to
    the point's k-th nearest neighbour (:func:`knn_radii`):
    precision = (1/M) sum_j 1[exists i: |f_j - r_i| <= NN_k(r_i)]  (are samples realistic?),
    recall    = (1/N) sum_i 1[exists j: |r_i - f_j| <= NN_k(f_j)]  (is the data covered?).
    Both in [0, 1]. Use sets of equal size: a denser set has smaller balls (chapter "measuring",
    eq-precision-recall).

    Args:
        real_features, fake_features: float tensors (N, d) and (M, d) on one device, N, M > k.
    Returns:
        ``{"precision": float, "recall": float}``.
    """
    _check_features(real_features, fake_features)
    real, fake = real_features.float(), fake_features.to(real_features.device).float()
    real_radii, fake_radii = knn_radii(real, k, batch_size), knn_radii(fake, k, batch_size)
    precision = _inside_any(fake, real, real_radii, batch_size).float().mean()
    recall = _inside_any(real, fake, fake_radii, batch_size).float().mean()
    return {"precision": float(precision), "recall": float(recall)}
