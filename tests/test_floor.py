"""A camera's floor from the feet of tracked people (pads_stream.floor)."""

from __future__ import annotations

import numpy as np

from pads_stream.floor import Floor, FloorConfig, estimate_floor, fit_floor


def camera_floor(pitch_deg: float, height: float) -> Floor:
    """The floor of a camera ``height`` m up, pitched down by ``pitch_deg``, no roll."""
    a = np.radians(pitch_deg)
    up = np.array([0.0, -np.cos(a), -np.sin(a)])  # looking down: the world's up leans towards the camera's −z
    return Floor(up=up, height=height, contacts=0, rms=0.0, confidence=1.0)


def floor_points(floor: Floor, n: int, rng: np.random.Generator) -> np.ndarray:
    """Points on ``floor`` 3-7 m in front of the camera, 2 m either side (camera frame)."""
    R, t = floor.extrinsics()
    centre = -R.T @ t
    world = np.stack([rng.uniform(-2, 2, n), rng.uniform(3, 7, n), np.zeros(n)], -1) + centre * [1, 1, 0]
    return world @ R.T + t


def test_the_implied_world_has_the_floor_at_zero_and_the_camera_above_it():
    floor = camera_floor(12.0, 1.6)
    assert abs(floor.pitch_deg - 12.0) < 1e-9 and abs(floor.roll_deg) < 1e-9
    R, t = floor.extrinsics()
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) > 0 and abs((-R.T @ t)[2] - 1.6) < 1e-12
    points = floor_points(floor, 50, np.random.default_rng(0))
    np.testing.assert_allclose(((points - t) @ R)[:, 2], 0.0, atol=1e-9)  # on the world's floor z = 0


def test_a_plane_through_feet_ignores_lifted_ones():
    rng = np.random.default_rng(1)
    truth = camera_floor(8.0, 1.4)
    points = floor_points(truth, 300, rng) + rng.normal(0, 0.01, (300, 3))
    lifted = rng.random(300) < 0.25  # a quarter of the "contacts" 10-40 cm up (a foot in swing)
    points[lifted] += truth.up * rng.uniform(0.1, 0.4, (lifted.sum(), 1))
    est = fit_floor(points, FloorConfig())
    assert est is not None and abs(est.height - 1.4) < 0.02 and abs(est.pitch_deg - 8.0) < 0.5
    assert fit_floor(points[:10], FloorConfig()) is None  # too few contacts: no estimate


def test_contacts_off_in_depth_keep_the_plane_and_a_ceiling_is_no_floor():
    """Contacts whose depth is a few per cent off along their rays (a body-size depth) still give
    the floor; the same points mirrored above the camera are refused."""
    rng = np.random.default_rng(3)
    truth = camera_floor(10.0, 1.5)
    points = floor_points(truth, 400, rng) * rng.normal(1.0, 0.03, (400, 1))  # each contact's depth 3 % off
    est = fit_floor(points, FloorConfig())
    assert est is not None and abs(est.height - 1.5) < 0.05 and abs(est.pitch_deg - 10.0) < 1.0
    assert fit_floor(points * [1.0, -1.0, 1.0], FloorConfig()) is None  # a plane above the camera


def test_the_floor_of_people_standing_and_walking_about():
    """Tracks whose lowest joint rests on the floor at times (and moves at others)."""
    rng = np.random.default_rng(2)
    truth = camera_floor(15.0, 2.0)
    R, t = truth.extrinsics()
    tracks, times = [], []
    for _ in range(4):
        base = floor_points(truth, 1, rng)[0]
        body = rng.normal(0, 0.2, (17, 3)) @ R.T + truth.up * 0.9  # a body above its lowest joint
        body[3] = 0.0  # the lowest joint at the foot
        f = np.arange(100)
        sway = np.sin(f / 7.0)[:, None] * R[:, 0] * 0.3  # steps sideways now and then
        joints = base + sway[:, None] + body[None] + rng.normal(0, 0.01, (100, 17, 3))
        tracks.append(joints)
        times.append(f / 25.0)
    est = estimate_floor(tracks, times, FloorConfig())
    assert est is not None and abs(est.height - 2.0) < 0.05 and abs(est.pitch_deg - 15.0) < 2.0


def test_a_node_publishes_the_floor_of_a_stream_without_extrinsics(test_set):
    """People standing about in front of a camera without extrinsics: after a second the node's
    pose3d carries the floor and world joints with the feet on it."""
    import time

    from pads_stream.api import load_model
    from pads_stream.rig import load_rig

    from .conftest import CAMERAS
    from .test_node import Harness, poses

    rig = load_rig(str(CAMERAS), "S9")
    R, t, K = rig.R[0], rig.t[0], rig.K[0]
    rng = np.random.default_rng(3)
    world = []
    for m in range(4):  # four people standing 0.5-2 m from where the rig looks
        x = test_set["gt"][m * 500] @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T  # camera axes, roughly upright
        x = x - x[:, 2].min() * np.array([0, 0, 1.0])
        angle = rng.uniform(0, 2 * np.pi)
        world.append(x + rig.look_at_floor() + (0.5 + 1.5 * m / 3) * np.array([np.cos(angle), np.sin(angle), 0.0]))
    world = np.stack(world)
    cam = world @ R.T + t
    kp = cam[..., :2] / cam[..., 2:3] @ K[:2, :2].T + K[:2, 2]
    h = Harness(load_model(), steps=3, warm_steps=3, status_period_s=0.05, latency_budget_ms=60_000)
    try:
        last = None
        for f in range(60):
            persons = [{"id": m, "kp": np.c_[kp[m] + rng.normal(0, 1.0, (17, 2)), np.ones(17)].tolist()}
                       for m in range(4)]  # fmt: skip
            out = poses(h.exchange(h.frame("solo", f, persons, camera=True) if f == 0 else
                                   h.frame("solo", f, persons), spins=2), "solo")  # fmt: skip
            last = out[-1] if out else last
            if last is not None and "floor" in last:
                break
            time.sleep(0.03)
    finally:
        h.close()
    assert last is not None and "floor" in last, "no floor after 60 frames"
    truth_height = (-R.T @ t)[2]
    assert abs(last["floor"]["height_m"] - truth_height) < 0.3 and last["floor"]["confidence"] >= 0.3
    feet = np.array([np.array(p["joints_world"])[:, 2].min() for p in last["persons"]])
    assert np.abs(feet).max() < 0.15  # m: each person's lowest joint on the estimated floor
