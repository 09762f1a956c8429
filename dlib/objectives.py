"""What the network predicts, and how it is trained (chapter "objectives").

With a = sqrt(alpha_bar_t) and s = sqrt(1 - alpha_bar_t), a noisy sample is x_t = a x_0 + s eps
(eq-q-xt-x0). Given x_t, any one of the following determines the other three:

    eps                                                         (the noise, Ho et al. 2020)
    x0    = (x_t - s eps) / a                                   (eq-x0-from-eps)
    score = grad log q(x_t | x_0) = -(x_t - a x0) / s^2 = -eps / s      (eq-score-from-eps)
    v     = a eps - s x0                                        (eq-v, Salimans & Ho 2022)

A network declares which of these it outputs (its *target*, one of :data:`TARGETS`; ``"x0_eps"``
outputs x0_hat and eps_hat together, Zhang et al.). :func:`predictions` is the one adapter that
turns any declared output into the pair (x0_hat, eps_hat); the samplers use nothing else.
:func:`training_target` gives the regression target and :func:`loss` the weighted MSE
("simple", "elbo" or "min_snr"), or for ``"x0_eps"`` the joint loss (eq-loss-joint).
"""
from __future__ import annotations

import torch

from .schedules import Schedule

Tensor = torch.Tensor

#: The prediction targets a network can declare.
TARGETS = ("eps", "x0", "score", "v", "x0_eps")
#: The loss weightings of :func:`loss`.
WEIGHTINGS = ("simple", "elbo", "min_snr")

__all__ = ["TARGETS", "WEIGHTINGS", "check_target", "resolve_target", "x0_from_eps", "eps_from_x0", "score_from_eps",
           "eps_from_score", "score_from_x0", "v_from_x0_eps", "x0_from_v", "eps_from_v", "predictions",
           "predictions_from_coeffs", "target_from_coeffs", "split_joint", "training_target", "elbo_weight",
           "min_snr_weight", "joint_eps_weight", "loss", "loss_per_example"]


def check_target(target: str) -> str:
    """Return ``target`` if it is one of :data:`TARGETS`, else raise a ValueError listing them."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    return target


def resolve_target(model, target: str | None = None, default: str | None = "eps") -> str:
    """How to read a model's output: its declared ``target`` attribute when it has one.

    ``target=None`` takes the model's declared target, else ``default`` (a plain function declares
    nothing; ``default=None`` makes the argument required then). A ``target`` that contradicts the
    model's declared one is a ValueError: reading a v-prediction network as eps gives noise, not an
    error, so it is refused here.
    """
    declared = getattr(model, "target", None)
    if declared is not None:
        check_target(declared)
        if target is not None and target != declared:
            raise ValueError(f"target={target!r} contradicts the model, which declares target={declared!r}; "
                             "leave target out to use the model's")
        return declared
    if target is None and default is None:
        raise ValueError("give target= (the model has no `target` attribute)")
    return check_target(default if target is None else target)


def _coeffs(s: Schedule, t, like: Tensor) -> tuple[Tensor, Tensor]:
    """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) shaped (B, 1, ..., 1) like ``like``, t in 1..T."""
    alpha_bar = s.gather(s.alpha_bars, t, like)
    return alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()


def _check_same(reference: Tensor, other: Tensor, ref_name: str, name: str) -> None:
    if not torch.is_tensor(other):
        raise ValueError(f"{name} must be a tensor, got {type(other).__name__}")
    if other.shape != reference.shape:
        raise ValueError(f"{name} must have the shape of {ref_name} {tuple(reference.shape)}, "
                         f"got {tuple(other.shape)}")


# ----------------------------------------------------------------------------- the equations, once
# Each kernel takes a = sqrt(alpha_bar) and s = sqrt(1 - alpha_bar) as floats or tensors that
# broadcast against the images, so the same line serves discrete t and the angle phi (a = cos phi,
# s = sin phi, chapter "angular", eq-angular-x). Everything below is built from these six lines.
def _x0_from_eps(a, s, x_t, eps):
    return (x_t - s * eps) / a                    # eq-x0-from-eps


def _eps_from_x0(a, s, x_t, x0):
    return (x_t - a * x0) / s                     # eq-eps-from-x0


def _score_from_eps(s, eps):
    return -eps / s                               # eq-score-from-eps (Tweedie)


def _eps_from_score(s, score):
    return -s * score                             # eq-score-from-eps inverted


def _v_from_x0_eps(a, s, x0, eps):
    return a * eps - s * x0                       # eq-v


def _x0_eps_from_v(a, s, x_t, v):
    return a * x_t - s * v, s * x_t + a * v       # eq-v inverted with x_t = a x0 + s eps (a^2 + s^2 = 1)


# ----------------------------------------------------------------------------- conversions at timestep t
def x0_from_eps(s: Schedule, x_t: Tensor, t, eps: Tensor) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)  (chapter "objectives", eq-x0-from-eps).

    x_t, eps: (B, ...) float; t: int or int64 (B,) in 1..T. Returns (B, ...) like x_t.
    """
    _check_same(x_t, eps, "x_t", "eps")
    return _x0_from_eps(*_coeffs(s, t, x_t), x_t, eps)


def eps_from_x0(s: Schedule, x_t: Tensor, t, x0: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)  (chapter "objectives", eq-eps-from-x0).

    x_t, x0: (B, ...) float; t: int or int64 (B,) in 1..T. Returns (B, ...) like x_t.
    """
    _check_same(x_t, x0, "x_t", "x0")
    return _eps_from_x0(*_coeffs(s, t, x_t), x_t, x0)


def score_from_eps(s: Schedule, t, eps: Tensor) -> Tensor:
    """Tweedie's link: grad_{x_t} log q(x_t) = -E[eps | x_t] / sqrt(1 - alpha_bar_t).

    Chapter "objectives", eq-score-from-eps. For one x_0 it is exact: the score of
    q(x_t | x_0) = N(a x_0, s^2 I) is -(x_t - a x_0)/s^2 = -eps/s. eps: (B, ...); t in 1..T.
    """
    return _score_from_eps(_coeffs(s, t, eps)[1], eps)


def eps_from_score(s: Schedule, t, score: Tensor) -> Tensor:
    """eps = -sqrt(1 - alpha_bar_t) score, the inverse of :func:`score_from_eps`.

    Chapter "objectives", eq-score-from-eps. score: (B, ...); t in 1..T.
    """
    return _eps_from_score(_coeffs(s, t, score)[1], score)


def score_from_x0(s: Schedule, x_t: Tensor, t, x0: Tensor) -> Tensor:
    """score = -(x_t - sqrt(alpha_bar_t) x0) / (1 - alpha_bar_t).

    Chapter "objectives", eq-score-from-eps with eq-eps-from-x0. x_t, x0: (B, ...); t in 1..T.
    """
    _check_same(x_t, x0, "x_t", "x0")
    a, sd = _coeffs(s, t, x_t)
    return _score_from_eps(sd, _eps_from_x0(a, sd, x_t, x0))


def v_from_x0_eps(s: Schedule, x0: Tensor, t, eps: Tensor) -> Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0  (chapter "objectives", eq-v).

    On the quarter circle (alpha_bar = cos^2 phi) v = d x_t / d phi, the velocity of x_t in the
    angle (chapter "angular", eq-dx-dphi). x0, eps: (B, ...); t: int or int64 (B,) in 1..T.
    """
    _check_same(x0, eps, "x0", "eps")
    return _v_from_x0_eps(*_coeffs(s, t, x0), x0, eps)


def x0_from_v(s: Schedule, x_t: Tensor, t, v: Tensor) -> Tensor:
    """x0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v  (chapter "objectives", eq-v inverted)."""
    _check_same(x_t, v, "x_t", "v")
    return _x0_eps_from_v(*_coeffs(s, t, x_t), x_t, v)[0]


def eps_from_v(s: Schedule, x_t: Tensor, t, v: Tensor) -> Tensor:
    """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v  (chapter "objectives", eq-v inverted)."""
    _check_same(x_t, v, "x_t", "v")
    return _x0_eps_from_v(*_coeffs(s, t, x_t), x_t, v)[1]


# ----------------------------------------------------------------------------- the adapter
def split_joint(output, like: Tensor) -> tuple[Tensor, Tensor]:
    """Read an ``"x0_eps"`` output as (x0_hat, eps_hat).

    Accepted forms: a tuple/list (x0_hat, eps_hat), each shaped like ``like`` (B, C, ...), or one
    tensor (B, 2C, ...) whose first C channels (dim 1) are x0_hat and last C are eps_hat -- the
    layout of :class:`dlib.nets.UNet` with ``target="x0_eps"``.
    """
    if isinstance(output, (tuple, list)):
        if len(output) != 2:
            raise ValueError(f"an 'x0_eps' output tuple must hold (x0_hat, eps_hat), got {len(output)} items")
        _check_same(like, output[0], "x_t", "x0_hat of the 'x0_eps' output")
        _check_same(like, output[1], "x_t", "eps_hat of the 'x0_eps' output")
        return output[0], output[1]
    if not torch.is_tensor(output):
        raise ValueError(f"model output must be a tensor or a tuple, got {type(output).__name__}")
    want = (like.shape[0], 2 * like.shape[1], *like.shape[2:]) if like.ndim >= 2 else None
    if want is None or tuple(output.shape) != want:
        raise ValueError(f"an 'x0_eps' output must have shape {want} (x0_hat and eps_hat stacked on dim 1) "
                         f"for x_t of shape {tuple(like.shape)}, got {tuple(output.shape)}")
    return output.chunk(2, dim=1)


def predictions_from_coeffs(sqrt_alpha_bar, sqrt_one_minus_alpha_bar, x_t: Tensor, output, target: str):
    """Turn a model output declared as ``target`` into (x0_hat, eps_hat) (chapter "objectives").

    The coefficients a = sqrt(alpha_bar) and s = sqrt(1 - alpha_bar) are floats or tensors that
    broadcast against x_t (B, ...), so this works for discrete t and for the angle phi
    (a = cos phi, s = sin phi, chapter "angular", eq-angular-x) alike. With x_t = a x0 + s eps:

        "eps":    eps_hat = out,           x0_hat = (x_t - s eps_hat)/a     (eq-x0-from-eps)
        "x0":     x0_hat = out,            eps_hat = (x_t - a x0_hat)/s     (eq-eps-from-x0)
        "score":  eps_hat = -s out,        x0_hat = (x_t + s^2 out)/a       (eq-score-from-eps)
        "v":      x0_hat = a x_t - s out,  eps_hat = s x_t + a out          (eq-v; needs a^2 + s^2 = 1)
        "x0_eps": both read from the output (see :func:`split_joint`)

    "eps" and "score" divide by a (undefined at alpha_bar = 0), "x0" by s (undefined at
    alpha_bar = 1); "v" and "x0_eps" never divide.

    Raises:
        ValueError: unknown target, or an output whose shape does not match x_t.
    """
    check_target(target)
    a, sd = sqrt_alpha_bar, sqrt_one_minus_alpha_bar
    if target == "x0_eps":
        return split_joint(output, x_t)
    _check_same(x_t, output, "x_t", f"model output for target {target!r}")
    if target == "eps":
        return _x0_from_eps(a, sd, x_t, output), output
    if target == "x0":
        return output, _eps_from_x0(a, sd, x_t, output)
    if target == "score":
        eps_hat = _eps_from_score(sd, output)
        return _x0_from_eps(a, sd, x_t, eps_hat), eps_hat
    return _x0_eps_from_v(a, sd, x_t, output)  # "v"


def target_from_coeffs(sqrt_alpha_bar, sqrt_one_minus_alpha_bar, x0: Tensor, eps: Tensor, target: str):
    """What a network predicting ``target`` should output when x_t = a x0 + s eps (chapter "objectives").

    The inverse of :func:`predictions_from_coeffs`: "eps" -> eps, "x0" -> x0, "score" -> -eps/s
    (eq-score-from-eps), "v" -> a eps - s x0 (eq-v), "x0_eps" -> cat([x0, eps], dim=1), shape
    (B, 2C, ...). a, s: floats or tensors broadcasting against x0 (B, C, ...); eps like x0.
    """
    check_target(target)
    _check_same(x0, eps, "x0", "eps")
    a, sd = sqrt_alpha_bar, sqrt_one_minus_alpha_bar
    if target == "eps":
        return eps
    if target == "x0":
        return x0
    if target == "score":
        return _score_from_eps(sd, eps)
    if target == "v":
        return _v_from_x0_eps(a, sd, x0, eps)
    return torch.cat([x0, eps], dim=1)


def predictions(s: Schedule, x_t: Tensor, t, output, target: str) -> tuple[Tensor, Tensor]:
    """(x0_hat, eps_hat) from a model output predicting ``target`` at timesteps t.

    Chapter "objectives" (eq-x0-from-eps, eq-eps-from-x0, eq-score-from-eps, eq-v). x_t: (B, ...)
    float; t: int or int64 (B,) in 1..T; output: (B, ...) like x_t, or for ``"x0_eps"`` a tuple or a
    (B, 2C, ...) tensor (:func:`split_joint`). Returns two tensors shaped like x_t.
    """
    return predictions_from_coeffs(*_coeffs(s, t, x_t), x_t, output, target)


def training_target(s: Schedule, x0: Tensor, eps: Tensor, t, target: str) -> Tensor:
    """The regression target of a network predicting ``target`` (chapter "objectives").

    "eps" -> eps (eq-loss-eps); "x0" -> x0 (eq-loss-x0); "score" -> -eps/sqrt(1 - alpha_bar_t)
    (eq-loss-score); "v" -> sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0 (eq-loss-v);
    "x0_eps" -> cat([x0, eps], dim=1), shape (B, 2C, ...) (eq-loss-joint). x0, eps: (B, C, ...);
    t: int or int64 (B,) in 1..T. :func:`target_from_coeffs` at the coefficients of t.
    """
    return target_from_coeffs(*_coeffs(s, t, x0), x0, eps, target)


# ----------------------------------------------------------------------------- weights
def elbo_weight(s: Schedule, t, target: str, variance: str = "beta_tilde") -> Tensor:
    """Weights w_t that turn a target's per-dimension MSE into the bound's term (eq-elbo-weights).

    With both reverse and posterior Gaussians sharing the variance sigma_t^2, the KL term is
    (chapter "elbo", eq-kl-term, eq-kl-gauss; chapter "posterior", eq-posterior-mean)

        L_{t-1} = ||mu_tilde - mu_theta||^2 / (2 sigma_t^2) = c_t^2 / (2 sigma_t^2) ||x0 - x0_hat||^2,
        c_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t).

    Rewriting the x0 error as each target's error (same x_t, so x0 - x0_hat is a fixed multiple):

        w_x0    = c_t^2 / (2 sigma_t^2)
        w_eps   = w_x0 / SNR(t) = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t))
        w_score = w_eps (1 - alpha_bar_t)          (eps error = sqrt(1 - alpha_bar_t) score error)
        w_v     = w_x0 (1 - alpha_bar_t)           (x0 error = sqrt(1 - alpha_bar_t) v error)

    so w * MSE equals L_{t-1} / D in nats per dimension (D = elements per example).

    sigma_t^2: ``"beta_tilde"`` (eq-beta-tilde) for t >= 2 and beta_1 at t = 1, where
    beta_tilde_1 = 0; there c_1 = 1 and w_x0 ||x0 - x0_hat||^2 is the Gaussian decoder term L_0
    with variance beta_1 up to a constant (eq-decoder-term). ``"beta"``: sigma_t^2 = beta_t for every t.

    Args:
        t: int or int64 tensor (B,) in 1..T. target: "eps", "x0", "score" or "v".
    Returns:
        float64 tensor shaped like t (CPU).
    """
    if target not in TARGETS[:4]:
        raise ValueError(f"elbo_weight needs a target in {TARGETS[:4]}, got {target!r}")
    sigma2 = s.reverse_variances(variance)   # checks the name; beta_1 at t = 1 for "beta_tilde"
    tt = s.check_t(t).cpu()
    alpha_bar = s.alpha_bars[tt]
    w_x0 = s.coef_x0[tt] ** 2 / (2.0 * sigma2[tt])   # c_t = coef_x0[t], eq-posterior-mean
    snr = alpha_bar / (1.0 - alpha_bar)
    return {"x0": w_x0, "eps": w_x0 / snr, "score": w_x0 / snr * (1.0 - alpha_bar),
            "v": w_x0 * (1.0 - alpha_bar)}[target]


def min_snr_weight(s: Schedule, t, target: str, gamma: float = 5.0) -> Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023) for each target (chapter "objectives", eq-min-snr).

    All four weight the x0 error by min(SNR(t), gamma); per target (same conversions as
    :func:`elbo_weight`): x0: min(SNR, g); eps: min(SNR, g)/SNR; v: min(SNR, g)/(SNR + 1);
    score: (1 - alpha_bar_t) min(SNR, g)/SNR (the eps weight in score units). float64, like t.
    """
    if target not in TARGETS[:4]:
        raise ValueError(f"min_snr_weight needs a target in {TARGETS[:4]}, got {target!r}")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    tt = s.check_t(t).cpu()
    alpha_bar = s.alpha_bars[tt]
    snr = alpha_bar / (1.0 - alpha_bar)
    clipped = snr.clamp(max=float(gamma))
    return {"x0": clipped, "eps": clipped / snr, "v": clipped / (snr + 1.0),
            "score": (1.0 - alpha_bar) * clipped / snr}[target]


def joint_eps_weight(s: Schedule, t, joint_gamma: float = 0.0) -> Tensor:
    """The eps-scale weight of the joint loss for a consistent pair of heads (chapter "angular", eq-joint-weight).

    When a x0_hat + s eps_hat = x_t (a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t)), the x0 error is
    -(s/a) times the eps error and the v error 1/a times it, so the joint loss (eq-loss-joint) is
    (1 + joint_gamma) / alpha_bar_t = (1 + joint_gamma)(1 + 1/SNR(t)) times the eps MSE. float64, like t.
    """
    if not joint_gamma >= 0:
        raise ValueError(f"joint_gamma must be >= 0, got {joint_gamma!r}")
    return (1.0 + joint_gamma) / s.alpha_bars[s.check_t(t).cpu()]


# ----------------------------------------------------------------------------- losses
def _mse(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


def loss_per_example(s: Schedule, output, x0: Tensor, eps: Tensor, t, target: str = "eps",
                     weighting: str = "simple", gamma: float = 5.0, joint_gamma: float = 0.0,
                     variance: str = "beta_tilde") -> Tensor:
    """Per-example training loss (B,) for a model output predicting ``target``.

    For "eps", "x0", "score" and "v": w_t * mean_d (output - target)^2 with the target of
    :func:`training_target` (eq-loss-eps, eq-loss-x0, eq-loss-score, eq-loss-v) and w_t = 1
    ("simple"), :func:`elbo_weight` ("elbo", eq-elbo-weights; ``variance`` picks sigma_t^2) or
    :func:`min_snr_weight` ("min_snr", eq-min-snr, with ``gamma``).

    For "x0_eps" the joint loss of Zhang et al. (their eq. 12; chapter "objectives", eq-loss-joint),
    with mean squared errors where the paper writes norms:

        mse(x0_hat, x0) + mse(eps_hat, eps) + joint_gamma * mse(xdot_hat, xdot),
        xdot = -sin(phi) x0 + cos(phi) eps,  phi = arctan(sqrt((1 - alpha_bar_t)/alpha_bar_t)),

    i.e. sin(phi) = sqrt(1 - alpha_bar_t), cos(phi) = sqrt(alpha_bar_t), so xdot is the v of
    eq-v. The paper's constant factor phi'(t) (d phi / d t) is dropped. Only "simple" weighting.

    Args:
        output: model output (B, ...) like x0; for "x0_eps" a tuple or (B, 2C, ...) tensor.
        x0, eps: (B, ...) the clean data and the noise that made x_t. t: int64 (B,) in 1..T.
    Returns:
        float tensor (B,) in the dtype of x0.
    """
    check_target(target)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
    _check_same(x0, eps, "x0", "eps")
    a, sd = _coeffs(s, t, x0)  # also checks t: values in 1..T, batch size B
    if target == "x0_eps":
        if weighting != "simple":
            raise ValueError("target 'x0_eps' uses the joint loss (eq-loss-joint); weighting must be 'simple'")
        x0_hat, eps_hat = split_joint(output, x0)
        per = _mse(x0_hat, x0) + _mse(eps_hat, eps)
        if joint_gamma:
            per = per + joint_gamma * _mse(_v_from_x0_eps(a, sd, x0_hat, eps_hat), _v_from_x0_eps(a, sd, x0, eps))
        return per
    _check_same(x0, output, "x0", f"model output for target {target!r}")
    per = _mse(output, training_target(s, x0, eps, t, target))
    if weighting == "simple":
        return per
    tt = s.check_t(t)
    w = elbo_weight(s, tt, target, variance) if weighting == "elbo" else min_snr_weight(s, tt, target, gamma)
    return per * w.to(device=per.device, dtype=per.dtype).expand(per.shape)


def loss(s: Schedule, output, x0: Tensor, eps: Tensor, t, target: str = "eps", weighting: str = "simple",
         gamma: float = 5.0, joint_gamma: float = 0.0, variance: str = "beta_tilde") -> Tensor:
    """Scalar mean over the batch of :func:`loss_per_example` (same arguments; chapter "objectives")."""
    return loss_per_example(s, output, x0, eps, t, target, weighting, gamma, joint_gamma, variance).mean()
