import numpy as np
import pytest
import torch

from pads_stream.api import load_model
from pads_stream.geometry.camera import snap_to_rays
from pads_stream.prior.checkpoint import build_denoiser, load_checkpoint
from pads_stream.prior.guidance import guided_denoise
from pads_stream.prior.operators import Projection
from pads_stream.prior.sampler import SamplerConfig, sample, tweedie_denoise
from pads_stream.prior.schedule import (
    DiffusionConfig,
    add_noise,
    alphas_cumprod,
    predict_x0,
    solver_tables,
    timesteps,
)

ABAR = alphas_cumprod(DiffusionConfig())


def test_schedule_and_timesteps():
    for kind in ("cosine", "linear"):
        abar = alphas_cumprod(DiffusionConfig(schedule=kind))
        assert abar.shape == (1000,) and np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] < 1
    with pytest.raises(ValueError, match="schedule"):
        alphas_cumprod(DiffusionConfig(schedule="sigmoid"))
    ts = timesteps(500, 10, 0.7)
    assert ts[0] == 500 and len(ts) == 10 and np.all(np.diff(ts) < 0) and ts[-1] >= 1
    assert np.all(np.diff(-np.diff(ts)) >= -1)  # power < 1: steps denser at high noise, gaps grow towards 0
    np.testing.assert_array_equal(timesteps(400, 4, 1.0), [400, 300, 200, 100])
    for bad in ((10, 20, 1.0), (500, 0, 1.0), (500, 10, 0.0)):
        with pytest.raises(ValueError):
            timesteps(*bad)


def test_ddim_tables_are_the_closed_form_ddim_step():
    ts = timesteps(500, 6, 0.7)
    tab = solver_tables(ABAR, ts, "ddim")
    assert np.all(tab.c_prev == 0) and np.all(tab.c_now == 1)
    assert tab.a[-1] == 0 and tab.b[-1] == 1  # the last step lands on x̂₀
    rng = np.random.default_rng(0)
    x, x0 = rng.normal(size=5), rng.normal(size=5)
    for i in range(len(ts) - 1):
        abar, abar_next = ABAR[ts[i]], ABAR[ts[i + 1]]
        eps = (x - np.sqrt(abar) * x0) / np.sqrt(1 - abar)
        ddim = np.sqrt(abar_next) * x0 + np.sqrt(1 - abar_next) * eps  # DDIM Eq. 12, η = 0
        np.testing.assert_allclose(tab.a[i] * x + tab.b[i] * x0, ddim, rtol=1e-12)
    m = solver_tables(ABAR, ts, "dpm2m")
    assert m.c_prev[0] == 0 and m.c_prev[-1] == 0 and np.all(m.c_prev[1:-1] < 0)
    np.testing.assert_allclose(m.c_now + m.c_prev, 1.0)  # D is an extrapolation of x̂₀ estimates


def test_tweedie_tables_restart_from_the_data_prediction():
    tab = solver_tables(ABAR, timesteps(400, 5, 0.7), "tweedie")
    assert np.all(tab.a == 0) and np.all(tab.c_prev == 0)
    np.testing.assert_allclose(tab.b, np.sqrt(np.append(ABAR[timesteps(400, 5, 0.7)[1:]], 1.0)))


def test_tweedie_denoise_removes_the_translation_a_noisy_pelvis_caused():
    """Prior: pelvis at 0, other joints N(μ_j, s²) per coordinate, so E[x₀ | x_t] is exact.
    The observation is centred on its noisy pelvis; re-estimating that shift must pay."""
    rng = np.random.default_rng(0)
    mu = rng.normal(0, 1, (1, 17, 3))
    mu[:, 0] = 0
    s, sigma = 0.3, 0.1
    t = int(np.argmin(np.abs(np.sqrt((1 - ABAR) / ABAR) - sigma)))  # the level of the noise: σ_t / α_t = σ
    alpha = np.sqrt(ABAR[t])

    def denoise(x_t, t_, a):
        w = a * s**2 / (a**2 * s**2 + (1 - a**2))
        x0 = mu + w * (x_t - a * mu)
        x0[:, 0] = 0
        return x0.astype(np.float32), np.zeros_like(x0, np.float32)

    x0 = mu + rng.normal(0, s, (500, 17, 3))
    x0[:, 0] = 0
    y = x0 + rng.normal(0, sigma, x0.shape)
    y = y - y[:, :1]
    err = [np.linalg.norm(tweedie_denoise(denoise, y, t, alpha, n) - x0, axis=-1).mean() for n in (1, 5)]
    assert err[1] < 0.92 * err[0] < 0.92 * np.linalg.norm(y - x0, axis=-1).mean()


def test_second_order_solver_tracks_the_exact_ode_better():
    """Data N(0, s²): x̂₀ is exact (α s² x / (α² s² + σ²)) and the probability-flow ODE keeps
    x_t / √(α_t² s² + σ_t²) constant, so the exact clean sample is known."""
    s, t0 = 0.5, 500
    x_start = np.array([1.3, -0.4, 2.0], np.float32)

    def denoise(x, t, alpha):
        return (alpha * s**2 * x / (alpha**2 * s**2 + 1 - alpha**2)).astype(np.float32), np.zeros_like(x)

    exact = x_start * s / np.sqrt(ABAR[t0] * s**2 + 1 - ABAR[t0])
    errors = {}
    for solver in ("ddim", "dpm2m"):
        tab = solver_tables(ABAR, timesteps(t0, 5, 1.0), solver)
        errors[solver] = np.abs(sample(denoise, tab, x_start, 0.0) - exact).max()
    assert errors["dpm2m"] < 0.5 * errors["ddim"]


def test_add_noise_and_predict_x0_are_inverse():
    rng = np.random.default_rng(0)
    x0, eps = rng.normal(size=(4, 17, 3)), rng.normal(size=(4, 17, 3))
    np.testing.assert_allclose(predict_x0(add_noise(x0, eps, 0.3), eps, 0.3), x0)


def _projection_problem(seed: int = 0, b: int = 3):
    g = torch.Generator().manual_seed(seed)
    x_true = torch.randn(b, 17, 3, generator=g, dtype=torch.float64) * 0.3
    x_true = x_true - x_true[:, :1]
    root = torch.tensor([[0.2, -0.1, 4.5]] * b, dtype=torch.float64)
    p = x_true + root[:, None]
    rays = p[..., :2] / p[..., 2:]
    weights = torch.rand(b, 17, generator=g, dtype=torch.float64)
    return Projection(rays, root, weights)


def test_dps_gradient_matches_finite_differences(tiny_checkpoint):
    net, _, scale = build_denoiser(load_checkpoint(tiny_checkpoint))
    net = net.double()
    op = _projection_problem()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, 17, 3, generator=g, dtype=torch.float64)
    t, alpha = torch.tensor([300.0], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    x0, grad = guided_denoise(net, x_t, t, alpha, op, scale)
    _, no_grad = guided_denoise(net, x_t, t, alpha, None, scale)
    assert torch.all(no_grad == 0)

    def objective(x: torch.Tensor) -> float:
        with torch.no_grad():
            x0 = predict_x0(x, net(x, t.expand(3)), alpha**2)
            return float(op.residual(x0 * scale).flatten(1).norm(dim=1).sum())

    h = 1e-6
    for b, j, c in [(0, 3, 0), (1, 10, 2), (2, 16, 1), (0, 0, 2)]:
        e = torch.zeros_like(x_t)
        e[b, j, c] = h
        fd = (objective(x_t + e) - objective(x_t - e)) / (2 * h)
        assert grad[b, j, c].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)
    # the norm is per sample: sample 0's gradient does not depend on sample 1's residual
    op2 = Projection(op.rays.clone(), op.root, op.weights / op.root[:, 2:3])
    op2.rays[1] += 0.05
    _, grad2 = guided_denoise(net, x_t, t, alpha, op2, scale)
    torch.testing.assert_close(grad2[0], grad[0])
    assert not torch.allclose(grad2[1], grad[1])
    # a sample without any weighted joint has no guidance at all (finite, zero)
    op3 = Projection(op.rays, op.root, torch.zeros_like(op.weights))
    _, grad3 = guided_denoise(net, x_t, t, alpha, op3, scale)
    assert torch.all(grad3 == 0)


def test_snap_to_rays_moves_confident_joints_onto_their_rays():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (2, 17, 3))
    x -= x[:, :1]
    root = np.array([[0.1, -0.2, 4.0], [0.0, 0.3, 6.0]])
    rays = rng.normal(0, 0.1, (2, 17, 3)) + [0, 0, 1]
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    conf = np.ones((2, 17))
    conf[:, 5] = 0.0
    y = snap_to_rays(x, rays, root, conf, 3.0)
    p = y + root[:, None]
    off_ray = np.linalg.norm(np.cross(p, rays), axis=-1)  # distance of each joint to its ray
    assert np.all(off_ray[:, 1:5] < 1e-9) and np.all(off_ray[:, 6:] < 1e-9)
    np.testing.assert_array_equal(y[:, 0], x[:, 0])  # the pelvis stays at the origin
    np.testing.assert_array_equal(y[:, 5], x[:, 5])  # a missing joint is not moved
    np.testing.assert_array_equal(snap_to_rays(x, rays, root, conf, 0.0), x)


def test_estimate_is_deterministic(tiny_checkpoint, test_set):
    model = load_model(tiny_checkpoint, backend="torch")
    kp, K, root = test_set["kp2d"][:6], test_set["K"][:6], test_set["root"][:6]
    a = model.estimate(kp, K, root, steps=4)
    b = model.estimate(kp, K, root, steps=4)
    assert a.shape == (6, 17, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # per person: a smaller batch gives the same poses (to float32 rounding: torch's kernels differ by batch size)
    np.testing.assert_allclose(model.estimate(kp[:3], K[:3], root[:3], steps=4), a[:3], atol=1e-5)
    np.testing.assert_allclose(a[:, 0], 0.0, atol=1e-7)  # pelvis-relative


def test_guidance_reduces_reprojection_error(tiny_checkpoint, test_set):
    """Even a random prior must fit the 2D better with guidance than without."""
    from pads_stream.geometry.camera import project

    kp, K, root = test_set["kp2d"][:16], test_set["K"][:16], test_set["root"][:16]

    def reproj(rho: float) -> float:
        model = load_model(tiny_checkpoint, backend="torch", sampler=SamplerConfig(rho=rho, snap_power=0.0))
        x = model.estimate(kp, K, root, steps=10)
        return float(np.linalg.norm(project(x + root[:, None], K) - kp, axis=-1).mean())

    assert reproj(0.5) < 0.8 * reproj(0.0)


def test_restart_split_keeps_the_budget():
    from pads_stream.prior.sampler import split_steps

    assert split_steps(10, 0.3) == (7, 3) and split_steps(1, 0.3) == (1, 0) and split_steps(2, 0.9) == (1, 1)
    assert split_steps(10, 0.0) == (10, 0)
    with pytest.raises(ValueError, match="restart_fraction"):
        SamplerConfig(restart_fraction=1.0)
