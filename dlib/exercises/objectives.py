"""Exercises of chapter "objectives", registered with :mod:`dlib.exercises.checking`.

Every reference is a ``dlib.objectives`` function: the conversion eps_from_x0 (eq-eps-from-x0), the
v target (eq-v), the bound's weight on the eps error (eq-loss-eps, eq-elbo-weights) and the min-SNR
weight of the v loss (eq-min-snr).
"""
from __future__ import annotations

import torch

from .. import diffusion, objectives
from .checking import Exercise, random_images, random_schedule, register


def _eps_from_x0_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    t = torch.randint(1, s.T + 1, (3,), generator=gen)
    x0 = random_images(gen)
    x_t = diffusion.q_sample(s, x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    # an x0 prediction that is not the x0 which made x_t, as a network's would be
    return {"schedule": s, "x_t": x_t, "t": t, "x0": random_images(gen)}


register(Exercise(
    name="eps-from-x0", chapter="objectives",
    reference=lambda schedule, x_t, t, x0: objectives.eps_from_x0(schedule, x_t, t, x0),
    inputs=_eps_from_x0_inputs,
))


def _v_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    return {"schedule": s, "x0": random_images(gen),
            "eps": torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64),
            "t": torch.randint(1, s.T + 1, (3,), generator=gen)}


register(Exercise(
    name="v-target", chapter="objectives",
    reference=lambda schedule, x0, eps, t: objectives.v_from_x0_eps(schedule, x0=x0, eps=eps, t=t),
    inputs=_v_inputs,
))


def _weight_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    return {"schedule": s, "t": torch.randint(2, s.T + 1, (4,), generator=gen)}


register(Exercise(
    name="elbo-weight-eps", chapter="objectives",
    reference=lambda schedule, t: objectives.elbo_weight(schedule, t, "eps", variance="beta_tilde"),
    inputs=_weight_inputs,
))


def _min_snr_inputs(gen: torch.Generator) -> dict:
    s = random_schedule(gen)
    return {"schedule": s, "t": torch.randint(1, s.T + 1, (4,), generator=gen),
            "gamma": float(0.5 + 9.5 * torch.rand(1, generator=gen))}


register(Exercise(
    name="min-snr-v", chapter="objectives",
    reference=lambda schedule, t, gamma: objectives.min_snr_weight(schedule, t, "v", gamma=gamma),
    inputs=_min_snr_inputs,
))
