"""Samplers: ancestral DDPM, DDIM and the angular ODE, and one front door (chapter "ddpm", chapter "ddim", chapter "angular").

=====================  ==========================================================================
``common``             the target a model declares, starting noise, fresh noise, :class:`Trajectory`
``ddpm``               :func:`ddpm_step`, :func:`ddpm_sample` (Ho et al. 2020, Algorithm 2)
``ddim``               :func:`timesteps`, :func:`ddim_sigma`, :func:`ddim_step`, :func:`ddim_sample`,
                       :func:`ddim_invert_step`, :func:`ddim_invert`
``angular``            :func:`rk_step` (Butcher tableaus), :func:`rotation_step`, :func:`angular_sample`
``batched``            :func:`sample`: n images in batches with any sampler (the front door)
=====================  ==========================================================================

Every loop reads the model's output through :func:`dlib.objectives.predictions` and advances with
its public step function; nothing here depends on what the model predicts.
"""
from .angular import METHODS, TABLEAUS, ButcherTableau, angular_sample, model_time, rk_step, rotation_step
from .batched import DEFAULT_BATCH, default_batch_size, sample
from .common import SAMPLERS, Trajectory
from .ddim import SPACINGS, ddim_chain, ddim_invert, ddim_invert_step, ddim_sample, ddim_sigma, ddim_step, timesteps
from .ddpm import ddpm_sample, ddpm_step

__all__ = ["SAMPLERS", "SPACINGS", "METHODS", "TABLEAUS", "ButcherTableau", "Trajectory",
           "timesteps", "ddpm_step", "ddpm_sample", "ddim_sigma", "ddim_step", "ddim_sample", "ddim_chain", "ddim_invert_step",
           "ddim_invert", "rk_step",
           "rotation_step", "model_time", "angular_sample", "sample", "default_batch_size", "DEFAULT_BATCH"]
