import numpy as np
import pytest

from pads_stream.geometry import metrics
from pads_stream.geometry.camera import (
    check_intrinsics,
    distort_points,
    inverse_projection,
    normalized_rays,
    project,
    rotation_x,
    rotation_y,
    undistort_points,
)
from pads_stream.geometry.image_tracks import Tracks

K = np.array([[1145.0, 0.0, 512.0], [0.0, 1143.0, 515.0], [0.0, 0.0, 1.0]])


def random_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(0, 0.3, (n, 17, 3))
    return x - x[:, :1]


def test_projection_inverse_projection_round_trip():
    rng = np.random.default_rng(0)
    rel = random_poses(8, rng)
    root = np.stack([rng.uniform(-1, 1, 8), rng.uniform(-0.5, 0.5, 8), rng.uniform(3, 7, 8)], -1)
    Ks = np.broadcast_to(K, (8, 3, 3))
    kp = project(rel + root[:, None], Ks)
    # every lifted joint lies on the pixel's ray at distance ‖T‖ from the camera centre
    lifted = inverse_projection(kp, Ks, root) + root[:, None]
    np.testing.assert_allclose(np.linalg.norm(lifted, axis=-1), np.linalg.norm(root, axis=-1)[:, None] * np.ones(17))
    np.testing.assert_allclose(project(lifted, Ks), kp, atol=1e-9)
    # a joint at the root's distance is recovered exactly
    np.testing.assert_allclose(inverse_projection(kp, Ks, root)[:, 0], rel[:, 0], atol=1e-9)
    rays = normalized_rays(kp, Ks)
    cam = rel + root[:, None]
    np.testing.assert_allclose(rays[..., :2], cam[..., :2] / cam[..., 2:], atol=1e-12)


def test_undistort_inverts_distort():
    rng = np.random.default_rng(1)
    kp = rng.uniform(100, 900, (50, 2))
    dist = np.array([-0.2, 0.05, 0.001, -0.0005, 0.0])
    d = distort_points(kp, K, dist)
    assert np.abs(d - kp).max() > 5  # the lens really moves points
    np.testing.assert_allclose(undistort_points(d, K, dist), kp, atol=1e-2)


def test_check_intrinsics_rejects_singular_and_nan():
    with pytest.raises(ValueError, match="singular"):
        check_intrinsics(np.zeros((3, 3)))
    bad = K.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_intrinsics(bad)


def test_procrustes_recovers_known_similarity():
    rng = np.random.default_rng(2)
    gt = random_poses(4, rng)
    rot = rotation_y(np.array([0.3, 1.0, -2.0, 3.0])) @ rotation_x(np.array([0.2, -0.4, 0.1, 0.0]))
    pred = 1.7 * np.einsum("nij,nkj->nki", rot, gt) + np.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(metrics.procrustes_align(pred, gt), gt, atol=1e-9)
    assert metrics.p_mpjpe(pred, gt).max() < 1e-6
    assert metrics.mpjpe(pred, gt).min() > 10


def test_procrustes_never_reflects():
    rng = np.random.default_rng(3)
    gt = random_poses(1, rng)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert metrics.p_mpjpe(mirrored, gt)[0] > 1.0  # a reflection is not a similarity


def test_metrics_hand_computed():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[0.003, 0.004, 0.0], [0.0, 0.0, 0.2]]])  # 5 mm and 200 mm
    assert metrics.mpjpe(pred, gt)[0] == pytest.approx(102.5)
    assert metrics.pck(pred, gt, 150.0)[0] == pytest.approx(0.5)
    # AUC over thresholds 0, 5, ..., 150 (31): joint 1 counts from 5 mm (30 of 31), joint 2 never
    assert metrics.auc(pred, gt)[0] == pytest.approx(0.5 * 30 / 31)
    gt2 = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert metrics.n_mpjpe(2.0 * gt2, gt2)[0] == pytest.approx(0.0, abs=1e-9)  # scale removed
    samples = np.array([[[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.1]], [[0.0, 0.3, 0.0]]])
    # pairs: 100, 300, sqrt(0.1) m -> mean in mm
    assert metrics.apd(samples) == pytest.approx(1000 * (0.1 + 0.3 + np.sqrt(0.1)) / 3)


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="pred and gt"):
        metrics.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 17, 2)))


def test_noise_level_from_left_right_bone_lengths(test_set):
    from pads_stream.geometry.skeleton import noise_from_symmetry

    gt = test_set["gt"][:400]
    assert np.median(noise_from_symmetry(gt)) < 1e-4  # the H36M skeleton is symmetric
    rng = np.random.default_rng(0)
    for sigma in (0.005, 0.02, 0.05):
        est = noise_from_symmetry(gt + rng.normal(0, sigma, gt.shape))
        assert abs(np.median(est) / sigma - 1) < 0.15


def test_knn_limb_reference_is_rotation_invariant_and_exact_on_its_own_poses(test_set):
    """The completion reference compares poses in a body frame: a training pose seen from another
    camera is still its own nearest neighbour, and its missing limb comes back exactly."""
    from pads_stream.evaluation.evaluate import LIMBS, knn_limb

    gt = test_set["gt"][:40].astype(np.float64)
    train = np.einsum("ij,nkj->nki", rotation_y(1.0) @ rotation_x(0.3), gt)  # the same poses, turned
    for limb in LIMBS.values():
        out = knn_limb(train, gt, limb, k=1)
        np.testing.assert_allclose(out, gt, atol=1e-9)
    other = knn_limb(train[20:], gt[:20], LIMBS["left arm"], k=1)  # without itself: another pose's arm
    assert np.abs(other - gt[:20]).max() > 0.05


def a_track(motion, unseen=(), frames: int = 50, hz: float = 25.0) -> Tracks:
    """One camera's track of 17 joints moving by ``motion(t)`` (normalised units), frames ``unseen`` dropped."""
    times = np.arange(frames) / hz
    y = np.broadcast_to(motion(times)[:, None, None], (frames, 17, 2)).copy()
    w = np.ones((frames, 17))
    w[list(unseen)] = 0.0
    return Tracks(times, y, w, 1.5 / hz)


def test_a_track_read_beside_a_dropped_frame_or_near_its_end_stays_on_its_line():
    """Issue 33: a steady motion is read where it is even where the frames on one side are missing
    (a kernel's mean is pulled towards the other side: near a dropped joint that reads as a clock
    shift of several milliseconds)."""
    track = a_track(lambda t: 0.1 + 0.5 * t, unseen=[20])
    at = np.linspace(0.70, 0.90, 41)  # around frame 20 (0.8 s), and within a kernel of the end
    y, w, rate = track.read(np.r_[at, 1.92, 1.95])
    np.testing.assert_allclose(y[:, 0, 0], 0.1 + 0.5 * np.r_[at, 1.92, 1.95], atol=1e-9)
    np.testing.assert_allclose(rate[w[:, 0] > 0, 0, 0], 0.5, atol=1e-9)


def test_a_tracks_reading_has_its_rate_as_derivative_and_weights_that_fade():
    """The bundle adjustment moves each camera's clock by the rate (dy/dt of what it reads) and
    counts each read by its weight: the rate must be the reading's own derivative, and the weight
    must change continuously with the time read (a weight that jumps to 0 at a track's end made the
    adjustment's cost jump as an offset moved, leaving cameras in local minima)."""
    track = a_track(lambda t: np.sin(7 * t), unseen=[10, 11, 30])
    at = np.linspace(-0.05, 2.05, 4201) + 1.3e-4  # 0.5 ms steps across both ends and the gaps, between frames
    y, w, rate = track.read(at)
    h = 1e-6
    numeric = (track.read(at + h)[0] - track.read(at - h)[0]) / (2 * h)
    inside = w[:, 0] > 0
    np.testing.assert_allclose(rate[inside, 0, 0], numeric[inside, 0, 0], atol=1e-4)
    assert np.abs(np.diff(w[:, 0])).max() < 0.02  # no jump
    assert (w[at < 0, 0] == 0).all() and (w[at > 1.96, 0] == 0).all() and w[:, 0].max() > 0.99
