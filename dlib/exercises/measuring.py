"""Exercises of chapter "measuring", registered with :mod:`dlib.exercises.checking`.

References: the Frechet distance between Gaussians (:func:`dlib.metrics.gaussian_frechet_distance`,
here with diagonal covariances), the unbiased kernel distance (:func:`dlib.metrics.kernel_distance`
on one subset holding every row), improved precision and recall (:func:`dlib.metrics.precision_recall`)
and the Inception score (:func:`dlib.metrics.inception_score` on one split).
"""
from __future__ import annotations

import torch

from ..metrics.features import gaussian_frechet_distance, inception_score, kernel_distance, precision_recall
from .checking import Exercise, register


def _diagonal_gaussians(gen: torch.Generator) -> dict:
    d = int(torch.randint(1, 7, (1,), generator=gen))
    return {"mu1": torch.randn(d, generator=gen, dtype=torch.float64),
            "var1": torch.rand(d, generator=gen, dtype=torch.float64) * 2 + 0.05,
            "mu2": torch.randn(d, generator=gen, dtype=torch.float64),
            "var2": torch.rand(d, generator=gen, dtype=torch.float64) * 2 + 0.05}


register(Exercise(
    name="frechet-diagonal", chapter="measuring",
    reference=lambda mu1, var1, mu2, var2: torch.tensor(
        gaussian_frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2)), dtype=torch.float64),
    inputs=_diagonal_gaussians,
))


def _two_feature_sets(gen: torch.Generator) -> dict:
    m, d = int(torch.randint(5, 31, (1,), generator=gen)), int(torch.randint(2, 9, (1,), generator=gen))
    shift = float(torch.rand(1, generator=gen))
    return {"real": torch.randn(m, d, generator=gen, dtype=torch.float64),
            "fake": torch.randn(m, d, generator=gen, dtype=torch.float64) * 1.5 + shift}


register(Exercise(
    # one subset of every row: the estimator is a function of the two sets alone, so no randomness
    name="kid-unbiased", chapter="measuring",
    reference=lambda real, fake: torch.tensor(
        kernel_distance(real, fake, subsets=1, subset_size=len(real))[0], dtype=torch.float64),
    inputs=_two_feature_sets,
))


def _precision_recall_inputs(gen: torch.Generator) -> dict:
    n, m, d = (int(torch.randint(lo, hi, (1,), generator=gen)) for lo, hi in ((10, 41), (10, 41), (2, 6)))
    return {"real": torch.randn(n, d, generator=gen, dtype=torch.float64),
            "fake": torch.randn(m, d, generator=gen, dtype=torch.float64) * 0.7 + 0.5,
            "k": int(torch.randint(1, 5, (1,), generator=gen))}


def _precision_recall(real, fake, k):
    pr = precision_recall(real, fake, k=k)
    return torch.tensor(pr["precision"], dtype=torch.float64), torch.tensor(pr["recall"], dtype=torch.float64)


register(Exercise(
    name="precision-recall", chapter="measuring",
    reference=_precision_recall,
    inputs=_precision_recall_inputs,
))


def _logits(gen: torch.Generator) -> dict:
    n, k = int(torch.randint(5, 51, (1,), generator=gen)), int(torch.randint(3, 11, (1,), generator=gen))
    return {"logits": torch.randn(n, k, generator=gen, dtype=torch.float64) * 3}


register(Exercise(
    name="inception-score", chapter="measuring",
    reference=lambda logits: torch.tensor(inception_score(logits)[0], dtype=torch.float64),
    inputs=_logits,
))
