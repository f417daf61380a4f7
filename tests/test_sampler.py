import numpy as np
import pytest
import torch

from pads_stream.api import load_model
from pads_stream.checkpoint import build_denoiser, load_checkpoint
from pads_stream.operators import Projection
from pads_stream.sampler import SamplerConfig, guided_step, make_schedule
from pads_stream.schedule import (
    DiffusionConfig,
    add_noise,
    alphas_cumprod,
    ddim_coefficients,
    ddim_timesteps,
    predict_x0,
)


def test_schedule_tables():
    for kind in ("cosine", "linear"):
        abar = alphas_cumprod(DiffusionConfig(schedule=kind))
        assert abar.shape == (1000,) and np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] < 1
    with pytest.raises(ValueError, match="schedule"):
        alphas_cumprod(DiffusionConfig(schedule="sigmoid"))
    ts = ddim_timesteps(400, 10)
    assert ts[0] == 400 and len(ts) == 10 and np.all(np.diff(ts) < 0) and ts[-1] > 0
    abar = alphas_cumprod(DiffusionConfig())
    c = ddim_coefficients(abar, ts, eta=0.0)
    assert c.c_x0[-1] == 1.0 and c.c_eps[-1] == 0.0 and np.all(c.sigma == 0)
    np.testing.assert_allclose(c.c_x0[:-1] ** 2, abar[ts[1:]])
    ce = ddim_coefficients(abar, ts, eta=1.0)
    assert np.all(ce.sigma[:-1] > 0) and np.all(ce.c_x0**2 + ce.c_eps**2 + ce.sigma**2 <= 1 + 1e-12)


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
    net, diffusion, scale = build_denoiser(load_checkpoint(tiny_checkpoint))
    net = net.double()
    sched = make_schedule(alphas_cumprod(diffusion), 400, 5)
    sched = type(sched)(timesteps=sched.timesteps.double(), coef=sched.coef.double())
    op = _projection_problem()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(3, 17, 3, generator=g, dtype=torch.float64)
    z = torch.zeros_like(x_t)
    rho = 0.7
    # the guided step minus the unguided one is -rho * ∇_{x_t} Σ_b ‖r_b‖
    grad = (guided_step(net, sched, 1, x_t, z, None, 0.0, "dps", scale)
            - guided_step(net, sched, 1, x_t, z, op, rho, "dps", scale)) / rho  # fmt: skip

    def objective(x: torch.Tensor) -> float:
        with torch.no_grad():
            eps = net(x, sched.timesteps[1].expand(3))
            x0 = predict_x0(x, eps, sched.sqrt_abar[1] ** 2)
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
    grad2 = (guided_step(net, sched, 1, x_t, z, None, 0.0, "dps", scale)
             - guided_step(net, sched, 1, x_t, z, op2, rho, "dps", scale)) / rho  # fmt: skip
    torch.testing.assert_close(grad2[0], grad[0])
    assert not torch.allclose(grad2[1], grad[1])


def test_estimate_is_deterministic_and_batched(tiny_checkpoint, test_set):
    model = load_model(tiny_checkpoint, backend="torch", sampler=SamplerConfig(hypotheses=2, eta=0.5))
    kp, K, root = test_set["kp2d"][:6], test_set["K"][:6], test_set["root"][:6]
    a = model.estimate(kp, K, root, steps=4, seed=7)
    b = model.estimate(kp, K, root, steps=4, seed=7)
    c = model.estimate(kp, K, root, steps=4, seed=8)
    assert a.shape == (6, 17, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6
    np.testing.assert_allclose(a[:, 0], 0.0, atol=1e-7)  # pelvis-relative


@pytest.mark.parametrize("guidance", ["dps", "cheap"])
def test_guidance_reduces_reprojection_error(tiny_checkpoint, test_set, guidance):
    """Even a random prior must fit the 2D better with guidance than without."""
    from pads_stream.camera import project

    kp, K, root = test_set["kp2d"][:16], test_set["K"][:16], test_set["root"][:16]

    def reproj(rho: float) -> float:
        model = load_model(tiny_checkpoint, backend="torch", sampler=SamplerConfig(rho=rho, guidance=guidance))
        x = model.estimate(kp, K, root, steps=10, seed=0)
        return float(np.linalg.norm(project(x + root[:, None], K) - kp, axis=-1).mean())

    assert reproj(0.5) < 0.8 * reproj(0.0)
