"""Several calibrated views of one person: the multi-view geometry, the rig's forward operator and
``PoseModel.estimate_rig`` on the shipped model (V-H36M's 4-camera rig)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pads_stream
from pads_stream.geometry import multiview
from pads_stream.geometry.camera import camera_to_world, normalized_rays
from pads_stream.geometry.skeleton import bones_plausible
from pads_stream.prior.operators import Rig


def random_rays(rng: np.random.Generator, views: int, n: int) -> tuple[multiview.Rays, np.ndarray]:
    """Rays of random points (N, 17, 3) near the origin from cameras 4-6 m away, random weights."""
    points = rng.normal(0, 0.4, (n, 17, 3))
    centres = rng.normal(0, 1, (views, n, 3))
    centres *= rng.uniform(4, 6, (views, n, 1)) / np.linalg.norm(centres, axis=-1, keepdims=True)
    d = points[None] - centres[:, :, None]
    e = d / np.linalg.norm(d, axis=-1, keepdims=True)
    c = centres[:, :, None]
    foot = c - np.sum(c * e, axis=-1, keepdims=True) * e
    return multiview.Rays(foot, e, rng.uniform(0.2, 1.0, (views, n, 17))), points


def ray_cost(p: np.ndarray, r: multiview.Rays) -> np.ndarray:
    """Σ_v w² × squared distance of p from each ray, by brute force: (N, 17)."""
    rel = p[None] - r.foot
    across = rel - np.sum(rel * r.direction, axis=-1, keepdims=True) * r.direction
    return np.einsum("vnj,vnj->nj", r.weight**2, np.sum(across**2, axis=-1))


def test_joint_forms_are_the_summed_ray_distances():
    rng = np.random.default_rng(0)
    r, _ = random_rays(rng, 3, 5)
    forms = multiview.joint_forms(r)
    p = rng.normal(0, 0.5, (5, 17, 3))
    d = p - forms.centre
    quad = np.einsum("nja,njab,njb->nj", d, forms.s, d) + forms.slack**2
    np.testing.assert_allclose(quad, ray_cost(p, r), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(forms.sqrt_s @ forms.sqrt_s, forms.s, atol=1e-12)


def test_triangulation_is_exact_for_exact_rays_and_a_once_seen_joint_stays_on_its_ray():
    rng = np.random.default_rng(1)
    r, points = random_rays(rng, 2, 4)
    r = multiview.Rays(r.foot, r.direction, np.ones_like(r.weight))
    np.testing.assert_allclose(multiview.triangulate(r), points, atol=1e-4)  # 0.1 mm
    w = r.weight.copy()
    w[1, :, 5] = 0.0  # the left knee seen by view 0 only
    w[:, :, 6] = 0.0  # the left ankle by none
    x = multiview.triangulate(multiview.Rays(r.foot, r.direction, w))
    one = multiview.Rays(r.foot[:1, :, 5:6], r.direction[:1, :, 5:6], np.ones((1, 4, 1)))
    assert ray_cost(x[:, 5:6], one).max() < 1e-10  # on its ray
    np.testing.assert_allclose(x[:, 6], x[:, 5])  # at its parent
    np.testing.assert_allclose(x[:, :5], points[:, :5], atol=1e-4)


def test_fitted_root_minimises_the_ray_distances():
    rng = np.random.default_rng(2)
    r, points = random_rays(rng, 3, 6)
    forms = multiview.joint_forms(r)
    rel = points - points[:, :1] + rng.normal(0, 0.02, points.shape)  # a slightly wrong pose
    root = multiview.fitted_root(rel, forms)
    best = ray_cost(rel + root[:, None], r).sum(axis=1)
    for step in np.eye(3) * 1e-3:
        assert np.all(ray_cost(rel + (root + step)[:, None], r).sum(axis=1) > best)
        assert np.all(ray_cost(rel + (root - step)[:, None], r).sum(axis=1) > best)


def test_rig_operator_residual_norm_is_the_ray_cost_at_the_fitted_root():
    rng = np.random.default_rng(3)
    r, points = random_rays(rng, 4, 3)
    forms = multiview.joint_forms(r)
    solve, offset = multiview.root_solve(forms)
    op = Rig(*(torch.from_numpy(a) for a in (forms.sqrt_s, forms.centre, forms.slack, solve, offset)))
    x = points - points[:, :1] + rng.normal(0, 0.05, points.shape)
    res = op.residual(torch.from_numpy(x)).numpy()
    cost = ray_cost(x + multiview.fitted_root(x, forms)[:, None], r).sum(axis=1)
    np.testing.assert_allclose(np.sum(res**2, axis=1), cost, rtol=1e-7)


def test_ray_noise_reads_the_views_disagreement():
    rng = np.random.default_rng(4)
    r, _ = random_rays(rng, 4, 200)
    assert np.all(multiview.ray_noise(r) < 1e-6)  # exact rays agree
    across = rng.normal(0, 0.02, r.foot.shape)
    across -= np.sum(across * r.direction, axis=-1, keepdims=True) * r.direction
    noisy = multiview.Rays(r.foot + across, r.direction, r.weight)
    assert 0.015 < np.median(multiview.ray_noise(noisy)) < 0.025  # 2 cm per coordinate across each ray


@pytest.fixture(scope="module")
def model():
    return pads_stream.load_model(backend="onnxruntime")


def world_mpjpe(pred: np.ndarray, world: np.ndarray) -> float:
    return float(1000 * np.linalg.norm((pred - pred[:, :1]) - (world - world[:, :1]), axis=-1).mean())


def test_exact_2d_from_two_or_four_views_is_the_true_pose(model, rig_views):
    v = rig_views
    for views in ([0, 1, 2, 3], [0, 2]):
        out = model.estimate_rig(v["kp2d"][views], v["K"][views], v["R"][views], v["t"][views])
        assert out.shape == v["world"].shape and out.dtype == np.float32
        assert world_mpjpe(out, v["world"]) < 3.0
        assert 1000 * np.linalg.norm(out[:, 0] - v["world"][:, 0], axis=-1).max() < 10.0  # root, world frame


def test_detected_2d_four_views_beat_one_and_a_triangulation(model, rig_views):
    v = rig_views
    kp, conf, K, R, t = v["kp2d_det"], v["conf_det"], v["K"], v["R"], v["t"]
    rig = model.estimate_rig(kp, K, R, t, conf=conf)
    n = kp.shape[1]
    R0, t0 = np.broadcast_to(R[0], (n, 3, 3)), np.broadcast_to(t[0], (n, 3))
    x, root = model.estimate(kp[0], K[0], conf=conf[0], extrinsics=(R0, t0), return_root=True)
    mono = camera_to_world(x + root[:, None], R0, t0)
    rays = normalized_rays(kp, K)[..., :2]
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    Rv, tv = np.broadcast_to(R[:, None], (4, n, 3, 3)), np.broadcast_to(t[:, None], (4, n, 3))
    dlt = multiview.triangulate(multiview.rays_in_frame(rays, Rv, tv, conf**2, eye, np.zeros((n, 3))))
    assert world_mpjpe(rig, v["world"]) < 0.6 * world_mpjpe(mono, v["world"])
    assert world_mpjpe(rig, v["world"]) < world_mpjpe(dlt, v["world"])
    assert bones_plausible(rig - rig[:, :1]).all()


def test_a_joint_no_view_sees_comes_from_the_prior_and_one_view_keeps_a_limb(model, rig_views):
    v = rig_views
    conf = v["conf_det"].copy()
    conf[:, :, 16] = 0.0  # the right wrist: no view
    conf[1:, :, 12:14] = 0.0  # the left elbow and wrist: view 0 only
    out = model.estimate_rig(v["kp2d_det"], v["K"], v["R"], v["t"], conf=conf)
    assert np.isfinite(out).all() and bones_plausible(out - out[:, :1]).all()
    gt = v["world"] - v["world"][:, :1]
    err = 1000 * np.linalg.norm((out - out[:, :1]) - gt, axis=-1).mean(axis=0)
    seen = np.ones((len(gt), 17), bool)
    seen[:, 16] = False
    completed = model.complete(gt, seen)  # the prior's wrist given every other joint exactly
    assert err[16] < 1000 * np.linalg.norm(completed[:, 16] - gt[:, 16], axis=-1).mean()
    n = len(gt)
    R0, t0 = np.broadcast_to(v["R"][0], (n, 3, 3)), np.broadcast_to(v["t"][0], (n, 3))
    x, root = model.estimate(v["kp2d_det"][0], v["K"][0], conf=conf[0], extrinsics=(R0, t0), return_root=True)
    mono = camera_to_world(x + root[:, None], R0, t0)
    mono_err = 1000 * np.linalg.norm((mono - mono[:, :1]) - gt, axis=-1).mean(axis=0)
    assert err[12:14].mean() < mono_err[12:14].mean()  # the arm only view 0 sees: better than view 0 alone


def test_one_view_is_the_monocular_estimate_in_the_world(model, rig_views):
    v = rig_views
    kp, conf, K = v["kp2d_det"][:1, :8], v["conf_det"][:1, :8], v["K"][:1, :8]
    out = model.estimate_rig(kp, K, v["R"][:1], v["t"][:1], conf=conf)
    R0, t0 = np.broadcast_to(v["R"][0], (8, 3, 3)), np.broadcast_to(v["t"][0], (8, 3))
    x, root = model.estimate(kp[0], K[0], conf=conf[0], extrinsics=(R0, t0), return_root=True)
    np.testing.assert_allclose(out, camera_to_world(x + root[:, None], R0, t0), atol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: {**a, "kp2d": a["kp2d"][0]}, "kp2d must have shape"),
        (lambda a: {**a, "K": a["K"][:, :, :2]}, "K must have shape"),
        (lambda a: {**a, "R": a["R"][:3]}, "R must have shape"),
        (lambda a: {**a, "R": a["R"] * 2}, "rotation"),
        (lambda a: {**a, "t": np.full_like(a["t"], np.nan)}, "finite"),
        (lambda a: {**a, "conf": np.ones((4, 2, 16))}, "conf must have shape"),
        (lambda a: {**a, "conf": np.zeros((4, 2, 17))}, "no joint with confidence"),
        (lambda a: {**a, "kp2d": a["kp2d"] / 1000}, "pixels"),
        (lambda a: {**a, "steps": 0}, "steps"),
    ],
)
def test_bad_rig_arguments_raise_value_error_naming_them(model, rig_views, change, message):
    args = {"kp2d": rig_views["kp2d"][:, :2], "K": rig_views["K"][:, :2], "R": rig_views["R"], "t": rig_views["t"],
            "conf": None}  # fmt: skip
    with pytest.raises(ValueError, match=message):
        model.estimate_rig(**change(args))
