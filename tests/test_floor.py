"""A camera's floor from the feet of tracked people (pads_stream.geometry.floor)."""

from __future__ import annotations

import numpy as np

from pads_stream.geometry.floor import Floor, FloorConfig, estimate_floor, fit_floor


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


def walking_contacts(truth: Floor, sizes: tuple[float, ...], walk_m: float, rng: np.random.Generator):
    """Foot contacts of people walking ``walk_m`` in straight lines of random headings 3.5-6 m in
    front of the camera (100 contacts each over 4 s), as a body-size depth sees them: a person
    ``size`` times the mean skeleton reads ``size`` times nearer, and each contact's depth is 1 % off.
    Returns (points (M, 3) camera frame, persons (M,), times (M,) seconds)."""
    R, t = truth.extrinsics()
    centre = (-R.T @ t) * [1.0, 1.0, 0.0]
    points, persons = [], []
    for p, size in enumerate(sizes):
        start = centre + [rng.uniform(-1.5, 1.5), rng.uniform(3.5, 6.0), 0.0]
        heading = rng.uniform(0, 2 * np.pi)
        world = start + np.linspace(0, walk_m, 100)[:, None] * [np.cos(heading), np.sin(heading), 0.0]
        points.append((world @ R.T + t) / size * rng.normal(1.0, 0.01, (100, 1)))
        persons.append(np.full(100, p))
    return np.concatenate(points), np.concatenate(persons), np.tile(np.arange(100) / 25.0, len(sizes))


def test_people_of_different_sizes_walking_about_keep_the_floor():
    """Four walkers 7 % smaller to 8 % larger than the mean skeleton, so their body-size contacts
    lie on planes of their own: their sizes freed, the floor holds; held to the mean, it tilts."""
    truth = camera_floor(12.0, 1.7)
    points, persons, times = walking_contacts(truth, (0.93, 1.0, 1.06, 1.08), 2.5, np.random.default_rng(4))
    est = fit_floor(points, FloorConfig(), persons, times)
    # the mean size (1.0175) is what sets the scale: 1.7 / 1.0175 = 1.671 m
    assert est is not None and abs(est.height - 1.7) < 0.05 and abs(est.pitch_deg - 12.0) < 0.5
    assert est.confidence >= 0.3
    held = fit_floor(points, FloorConfig(walk_sd_m=np.inf), persons, times)  # no one's size freed
    assert held is not None and abs(held.height - 1.7) > 0.05 and abs(held.roll_deg) > 1.0


def test_people_standing_in_a_few_spots_leave_the_floor_uncertain():
    """Four people each standing in one spot: their sizes are unknown, and any one of them tilts
    the plane through the others', so the floor says it is unsure (below the node's 0.3)."""
    truth = camera_floor(12.0, 1.7)
    points, persons, times = walking_contacts(truth, (1.0, 1.0, 1.0, 1.0), 0.0, np.random.default_rng(4))
    points += np.random.default_rng(5).normal(0, 0.02, points.shape)  # feet a few cm apart
    est = fit_floor(points, FloorConfig(), persons, times)
    assert est is not None and est.height_sd > 0.2 and est.confidence < 0.3


def test_the_floor_of_people_stepping_about():
    """Tracks whose lowest joint rests on the floor at times (and moves at others), of people the
    size of the mean skeleton stepping sideways about their spots: the contacts give the floor."""
    rng = np.random.default_rng(2)
    truth = camera_floor(15.0, 2.0)
    R, t = truth.extrinsics()
    tracks, times = [], []
    for _ in range(4):
        base = floor_points(truth, 1, rng)[0]
        body = rng.normal(0, 0.2, (17, 3)) @ R.T + truth.up * 0.9  # a body above its lowest joint
        body[3] = 0.0  # the lowest joint at the foot
        f = np.arange(100)
        heading = rng.uniform(0, 2 * np.pi)  # each steps along a line of its own
        sway = np.sin(f / 7.0)[:, None] * (np.cos(heading) * R[:, 0] + np.sin(heading) * R[:, 1]) * 0.3
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
    from pads_stream.data.virtual_rig import load_rig

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
    assert 0.0 < last["floor"]["height_sd_m"] < 0.3  # the 0.3 confidence bounds it: erf(0.1 / (√2 sd)) ≥ 0.3
    feet = np.array([np.array(p["joints_world"])[:, 2].min() for p in last["persons"]])
    assert np.abs(feet).max() < 0.15  # m: each person's lowest joint on the estimated floor
