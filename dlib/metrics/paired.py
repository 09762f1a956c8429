"""Paired metrics: how close each reconstruction is to its original (MAE and MS-SSIM).

Unlike the distribution metrics, these compare image i of ``preds`` with image i of ``target``:
two batches (B, C, H, W) of the same shape, values in [-1, 1]. MS-SSIM: Wang, Simoncelli and
Bovik 2003 (Multiscale structural similarity for image quality assessment).
"""
from __future__ import annotations

import torch

from .images import check_images

# MS-SSIM at 28-32 px: 3 scales (28 -> 14 -> 7) with the first three of Wang et al.'s five exponents,
# renormalised to sum to 1, and a 7x7 Gaussian window of std 0.8 (see ms_ssim).
MS_SSIM_BETAS = tuple(b / 0.6305 for b in (0.0448, 0.2856, 0.3001))
MS_SSIM_KERNEL_SIZE, MS_SSIM_SIGMA = 7, 0.8


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
    values near 0 instead of NaN from a negative base under a fractional power. The formulas are in
    chapter "measuring", eq-ssim and eq-ms-ssim.

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
