"""dlib -- the code of *diffusion book*, an executable textbook on denoising diffusion models.

One module per concept (d2l style: chapters explain, the package keeps what later chapters reuse):

=================  ==========================================================================
``runtime``        device choice, seeding, the fast/full setting switch
``schedules``      noise schedules: beta_t, alpha_t, alpha_bar_t, SNR (chapter "forward")
``diffusion``      q(x_t | x_0), the posterior, KL terms and the variational bound
``objectives``     conversions between eps, x0, score and v targets; the training losses
``samplers``       DDPM, DDIM and angular (ODE) samplers
``data``           datasets scaled to [-1, 1], offline fallbacks, 2-D toy sets
``plotting``       figures shared by chapters
=================  ==========================================================================

Not to be confused with the face-recognition library that is also imported as ``dlib``: this
package sets ``IS_DIFFUSION_BOOK = True`` so a notebook can check which one it got.
"""
from .runtime import ROOT, describe, device, pick, seed_everything, setting

IS_DIFFUSION_BOOK = True
__version__ = "0.1.0"
__all__ = ["ROOT", "describe", "device", "pick", "seed_everything", "setting", "IS_DIFFUSION_BOOK"]
