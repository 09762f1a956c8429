"""Telling a difference between two scores from resampling noise: the rule every table of the book follows.

A metric computed from n samples is a random number: another sampling seed (or another draw of n
real digits) gives another value. The *spread* of a printed number is the standard deviation of
that number over sampling seeds: :func:`seed_spread` of one value per seed for a single-seed number,
that divided by sqrt(k) for a mean over k seeds. :func:`compare` calls a difference only when it
exceeds ``z`` times the spread of the difference (chapter "measuring", eq-tie); smaller differences
are ties.
"""
from __future__ import annotations

import math

import numpy as np

TIE_Z = 2.0  # a difference is called when it exceeds this many standard deviations of the difference
VERDICTS = ("lower", "tie", "higher")


def seed_spread(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) of one metric computed with k >= 2 sampling seeds."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) < 2 or not np.isfinite(values).all():
        raise ValueError(f"need at least 2 finite values (one per seed), got {values.tolist()}")
    return float(values.mean()), float(values.std(ddof=1))


def compare(a: float, b: float, spread_a: float, spread_b: float, z: float = TIE_Z) -> str:
    """The book's verdict on two scores a and b with spreads s_a and s_b (chapter "measuring", eq-tie).

    ``"tie"`` when |a - b| <= z sqrt(s_a^2 + s_b^2) (the spread of a - b for independent
    resampling), else ``"lower"`` (a < b) or ``"higher"`` (a > b). For lower-is-better metrics
    (FID, KID) ``"lower"`` means a is the better score.

    Raises:
        ValueError: a non-finite score, a negative or non-finite spread, or z <= 0.
    """
    if not all(math.isfinite(v) for v in (a, b, spread_a, spread_b, z)):
        raise ValueError(f"scores, spreads and z must be finite, got {a}, {b}, {spread_a}, {spread_b}, {z}")
    if spread_a < 0 or spread_b < 0 or z <= 0:
        raise ValueError(f"spreads must be >= 0 and z > 0, got {spread_a}, {spread_b}, {z}")
    if abs(a - b) <= z * math.hypot(spread_a, spread_b):
        return "tie"
    return "lower" if a < b else "higher"
