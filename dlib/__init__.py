"""dlib -- the code of *diffusion book*, an executable textbook on denoising diffusion models.

One module per concept (d2l style: chapters explain, the package keeps what later chapters reuse):

===================  ==================================================================================
``runtime``          device choice, seeding, the fast/full setting switch
``schedules``        noise schedules: beta_t, alpha_t, alpha_bar_t, SNR (chapter "forward")
``diffusion``        q(x_t | x_0), the posterior, KL terms and the variational bound
``gaussian_chain``   scalar linear-Gaussian chains with an exact likelihood (chapter "elbo")
``objectives``       conversions between eps, x0, score and v targets; the training losses
``samplers``         DDPM, DDIM and angular (ODE) samplers
``reverse``          a trained network as the Gaussian reverse step p_theta(x_{t-1} | x_t) (chapter "ddpm")
``exact``            exact denoisers and scores of Gaussian-mixture data (no network)
``langevin``         Langevin and annealed Langevin sampling (chapter "scores")
``toy``              a small score network for 2-D data and its training loop
``nets``             the time-conditioned U-Net and the denoising auto-encoder
``train``            the training loop, EMA, mixed precision, resumable runs
``train_config``     the training config (YAML), its loading and the precision setting
``checkpoint``       safetensors checkpoints: atomic writes, strict pickle-free loading
``classifier``       the small MNIST classifier behind the classifier-based metrics
``metrics``          classifier-FID/KID/IS, precision/recall, MAE, MS-SSIM: the ``evaluate`` front door
``feature_metrics``  FID, KID, IS and precision/recall computed on feature vectors
``inception``        Inception-v3 FID/KID/IS where torch-fidelity and the network exist (Colab)
``data``             datasets scaled to [-1, 1], offline fallbacks, 2-D toy sets
``plotting``         image grids shared by chapters and training
``exercises``        automatic checks for the chapters' exercises
===================  ==================================================================================

Not to be confused with the face-recognition library that is also imported as ``dlib``: this
package sets ``IS_DIFFUSION_BOOK = True`` so a notebook can check which one it got.
"""
from .runtime import ROOT, describe, device, pick, seed_everything, setting

IS_DIFFUSION_BOOK = True
__version__ = "0.1.0"
__all__ = ["ROOT", "describe", "device", "pick", "seed_everything", "setting", "IS_DIFFUSION_BOOK"]
