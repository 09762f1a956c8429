"""dlib -- the code of *diffusion book*, an executable textbook on denoising diffusion models.

One module per concept (d2l style: chapters explain, the package keeps what later chapters reuse):

=====================  ===============================================================================
``runtime``            device choice and precision, seeding, the fast/full setting switch
``config``             the one config style of the trainers: typed, range-checked, YAML round-trip
``schedules``          noise schedules: beta_t, alpha_bar_t, SNR, posterior coefficients (chapter "forward")
``diffusion``          q(x_t | x_0), the posterior, KL terms and the variational bound
``gaussian_chain``     scalar linear-Gaussian chains with an exact likelihood (chapter "elbo")
``objectives``         what a network predicts: eps, x0, score, v conversions; the training losses
``timesteps``          the law training draws t from: uniform, or normal in log SNR (chapter "objectives")
``gaussian_mixture``   Gaussian-mixture data and its exact denoisers and scores (the oracle, no network)
``samplers``           DDPM, DDIM and angular (ODE) samplers and the ``sample`` front door (package)
``reverse``            a trained network as the Gaussian reverse step p_theta(x_{t-1} | x_t) (chapter "ddpm")
``langevin``           Langevin and annealed Langevin sampling (chapter "scores")
``score_mlp``          a small score network for 2-D data and its denoising score matching loop
``nn_blocks``, ``nets``  the time-conditioned U-Net and the denoising auto-encoder
``train_config``       the training config and where configs come from
``train``              the training loop, EMA, mixed precision, resumable runs (``run_folder``: its files)
``checkpoint``         safetensors checkpoints: atomic writes, strict pickle-free loading, ``load_pipeline``
``metrics``            classifier-FID/KID/IS, precision/recall, MAE, MS-SSIM, the MNIST classifier (package)
``provenance``         git commit, hardware and library versions recorded beside every result
``data``               datasets scaled to [-1, 1], offline fallbacks, 2-D toy sets
``plotting``           image grids shared by chapters and training
``exercises``          automatic checks for the chapters' exercises (package)
=====================  ===============================================================================

The maths core (schedules, diffusion, gaussian_chain, objectives, timesteps, gaussian_mixture, samplers,
reverse, langevin) does no file IO and imports no network or training code.

Not to be confused with the face-recognition library that is also imported as ``dlib``: this
package sets ``IS_DIFFUSION_BOOK = True`` so a notebook can check which one it got.
"""
from .runtime import ROOT, describe, device, pick, seed_everything, setting

IS_DIFFUSION_BOOK = True
__version__ = "0.1.0"
__all__ = ["ROOT", "describe", "device", "pick", "seed_everything", "setting", "IS_DIFFUSION_BOOK"]
