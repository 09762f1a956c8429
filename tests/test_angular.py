"""The angular chapter's equations against independent computations (autograd, fine integration, brute force).

Equations checked: eq-dx-dalpha-bar, eq-angular-x, eq-dx-dphi, eq-angular-schedule, eq-angular-ode, eq-fixed-heads,
eq-rotation, eq-rk-step, eq-joint-quadratic, eq-joint-weight.
"""
import math

import numpy as np
import pytest
import torch

from dlib import gaussian_mixture as gm, objectives, schedules
from dlib import samplers as sp

MIX = gm.GaussianMixture(torch.tensor([0.3, 0.7]), torch.tensor([[-1.0, 0.5], [1.2, -0.3]]), torch.tensor([0.05, 0.1]))


def _pair(n=6, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))


def test_derivatives_in_alpha_bar_and_in_the_angle_against_autograd():
    x0, eps = _pair()
    for u in (0.3, 0.9, 1e-4, 1 - 1e-4):
        ab = torch.tensor(u, dtype=torch.float64, requires_grad=True)
        jac = torch.autograd.functional.jacobian(lambda a: a.sqrt() * x0 + (1 - a).sqrt() * eps, ab)
        closed = x0 / (2 * math.sqrt(u)) - eps / (2 * math.sqrt(1 - u))               # eq-dx-dalpha-bar
        torch.testing.assert_close(jac, closed, rtol=1e-10, atol=1e-10)
    # the x0 term blows up at alpha_bar -> 0 (t = T), the eps term at alpha_bar -> 1 (t = 0)
    assert 1 / (2 * math.sqrt(1e-8)) > 1e3 and 1 / (2 * math.sqrt(1 - (1 - 1e-8))) > 1e3
    for phi in (0.0, 0.4, math.pi / 2):
        p = torch.tensor(phi, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda f: torch.cos(f) * x0 + torch.sin(f) * eps, p)  # eq-angular-x
        torch.testing.assert_close(jac, -math.sin(phi) * x0 + math.cos(phi) * eps)                     # eq-dx-dphi
        bound = (x0.pow(2).sum(1) + eps.pow(2).sum(1)).sqrt()                    # |dx/dphi| <= |(x0, eps)|
        assert (jac.pow(2).sum(1).sqrt() <= bound + 1e-12).all()


def test_angular_schedule_is_cos_squared_with_the_end_clipped():
    T = 50
    s = schedules.angular(T, max_beta=0.999)
    phi = schedules.angular_phi(T)
    torch.testing.assert_close(s.alpha_bars[:-1], torch.cos(phi[:-1]) ** 2, rtol=1e-12, atol=1e-14)  # eq-angular-schedule
    ratio = 1 - torch.cos(phi[1:-1]) ** 2 / torch.cos(phi[:-2]) ** 2
    torch.testing.assert_close(s.betas[1:-1], ratio, rtol=1e-12, atol=1e-14)
    assert s.betas[-1] == 0.999 and float(torch.cos(phi[-1]) ** 2) < 1e-30       # beta_T would be 1
    torch.testing.assert_close(s.alpha_bars[-1], 0.001 * s.alpha_bars[-2])


def test_fixed_heads_solution_and_the_rotation():
    x0_hat, eps_hat = _pair(seed=1)
    phi, phi_next = 1.2, 0.5
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)   # off the heads' circle
    closed = x + (math.cos(phi_next) - math.cos(phi)) * x0_hat + (math.sin(phi_next) - math.sin(phi)) * eps_hat
    f = lambda y, p: (-math.sin(p) * x0_hat + math.cos(p) * eps_hat, None)  # noqa: E731  eq-angular-ode, heads frozen
    y, n = x.clone(), 400
    for k in range(n):
        y, _ = sp.rk_step(f, y, phi + k * (phi_next - phi) / n, (phi_next - phi) / n, "rk4")
    torch.testing.assert_close(y, closed, rtol=1e-10, atol=1e-10)                                # eq-fixed-heads
    # on the heads' circle it is the rotation, x rotated towards v_hat, and DDIM's eta = 0 jump
    x_on = math.cos(phi) * x0_hat + math.sin(phi) * eps_hat
    closed_on = x_on + (math.cos(phi_next) - math.cos(phi)) * x0_hat + (math.sin(phi_next) - math.sin(phi)) * eps_hat
    v_hat = math.cos(phi) * eps_hat - math.sin(phi) * x0_hat
    d = phi_next - phi
    torch.testing.assert_close(sp.rotation_step(x0_hat, eps_hat, phi_next), closed_on)
    torch.testing.assert_close(math.cos(d) * x_on + math.sin(d) * v_hat, closed_on)              # eq-rotation
    s = schedules.angular(200)
    t, t_prev = 170, 40
    p, pp = (float(schedules.angular_phi(200)[k]) for k in (t, t_prev))
    x_t = math.cos(p) * x0_hat + math.sin(p) * eps_hat
    torch.testing.assert_close(sp.ddim_step(s, x_t, t, t_prev, eps_hat), sp.rotation_step(x0_hat, eps_hat, pp),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method,lo,hi", [("euler", 0.8, 1.2), ("rk2", 1.7, 2.3), ("rk4", 3.5, 4.6)])
def test_measured_order_on_a_two_component_mixture(method, lo, hi):
    # eq-rk-step on eq-angular-ode with the exact mixture denoiser; the reference is RK4 with 2,000 steps
    model = gm.exact_angular_model(MIX, 1000, "x0_eps")
    s = schedules.angular(1000)
    x_T = torch.randn(128, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda m, k: sp.angular_sample(model, s, None, k, m, x_T=x_T, progress=False)  # noqa: E731
    ref = run("rk4", 2000)
    steps = [8, 16, 32, 64]
    errors = [(run(method, k) - ref).pow(2).sum(1).sqrt().mean().item() for k in steps]
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert lo <= order <= hi, (errors, order)


def test_integrating_in_alpha_bar_loses_the_order():
    # the same ODE in u = alpha_bar (eq-dx-dalpha-bar with the heads): RK4 with equal steps in u stays below order 1
    def f(x, u):
        u = min(max(u, 1e-6), 1 - 1e-6)
        d = MIX.denoise(x, math.sqrt(u), math.sqrt(1 - u))
        return d.x0_hat / (2 * math.sqrt(u)) - d.eps_hat / (2 * math.sqrt(1 - u)), None

    model = gm.exact_angular_model(MIX, 1000, "x0_eps")
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = sp.angular_sample(model, schedules.angular(1000), None, 1000, "rk4", x_T=x_T, progress=False)
    errors = []
    for k in (16, 32, 64):
        x = x_T.clone()
        for i in range(k):
            x, _ = sp.rk_step(f, x, i / k, 1 / k, "rk4")
        errors.append((x - ref).pow(2).sum(1).sqrt().mean().item())
    order = -np.polyfit(np.log([16, 32, 64]), np.log(errors), 1)[0]
    assert order < 1.2, (errors, order)


def test_joint_loss_is_a_consistency_term_plus_the_v_error():
    s = schedules.angular(100)
    g = torch.Generator().manual_seed(2)
    x0, eps, x0_hat, eps_hat = (torch.randn(8, 1, 3, 3, generator=g, dtype=torch.float64) for _ in range(4))
    t = torch.randint(1, 100, (8,), generator=g)
    a = s.alpha_bars[t].sqrt().reshape(-1, 1, 1, 1)
    sd = (1 - s.alpha_bars[t]).sqrt().reshape(-1, 1, 1, 1)
    mse = lambda z: z.pow(2).flatten(1).mean(1)  # noqa: E731
    for gamma in (0.0, 0.5, 3.0):
        got = objectives.loss_per_example(s, torch.cat([x0_hat, eps_hat], 1), x0, eps, t, "x0_eps", joint_gamma=gamma)
        ex, ee = x0_hat - x0, eps_hat - eps
        quad = mse(a * ex + sd * ee) + (1 + gamma) * mse(a * ee - sd * ex)                       # eq-joint-quadratic
        torch.testing.assert_close(got, quad, rtol=1e-10, atol=1e-12)
        # consistent heads (x0_hat from eps_hat): the loss is joint_eps_weight times the eps MSE   eq-joint-weight
        x_t = a * x0 + sd * eps
        x0_c = (x_t - sd * eps_hat) / a
        got_c = objectives.loss_per_example(s, torch.cat([x0_c, eps_hat], 1), x0, eps, t, "x0_eps", joint_gamma=gamma)
        torch.testing.assert_close(got_c, objectives.joint_eps_weight(s, t, gamma) * mse(eps_hat - eps), rtol=1e-9,
                                   atol=1e-12)
    with pytest.raises(ValueError, match="joint_gamma"):
        objectives.joint_eps_weight(s, t, -1.0)
