"""One camera's 2D tracks read between its frames (geometry/image_tracks.py): what the rig's
self-calibration reads each camera at, for any clock offset."""

from __future__ import annotations

import numpy as np

from pads_stream.geometry.image_tracks import Tracks

FRAME_S = 0.04  # 25 Hz


def _tracks(y: np.ndarray, w: np.ndarray) -> Tracks:
    return Tracks(np.arange(len(y)) * FRAME_S, y, w, 1.5 * FRAME_S)


def test_a_steady_motion_reads_true_beside_missing_frames():
    """Frames missing on one side of a read (a gap, a track's end) do not pull it to the other side:
    the kernel's weighted mean read a steady motion there as if the clock were shifted."""
    times = np.arange(60) * FRAME_S
    y = np.zeros((60, 17, 2))
    y[..., 0] = (0.5 * times)[:, None]  # 0.5 normalised units per second
    w = np.ones((60, 17))
    w[20:24] = 0.0  # four frames unseen
    at = np.linspace(0.3, 2.3, 201)
    read, seen, rate = _tracks(y, w).read(at)
    ok = seen > 0
    assert ok[:, 0].mean() > 0.9
    np.testing.assert_allclose(read[..., 0][ok], np.broadcast_to(0.5 * at[:, None], ok.shape)[ok], atol=1e-9)
    np.testing.assert_allclose(rate[..., 0][ok], 0.5, atol=1e-6)


def test_the_rate_is_the_derivative_of_the_reading():
    """The bundle adjustment moves a clock by the rate; a rate that is not the reading's derivative
    leaves it short of the minimum."""
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(0, 0.01, (80, 17, 2)), axis=0)
    w = (rng.random((80, 17)) > 0.1).astype(float)
    tracks = _tracks(y, w)
    at = (np.arange(5, 75) + 0.37) * FRAME_S
    h = 1e-6
    _, _, rate = tracks.read(at)
    numeric = (tracks.read(at + h)[0] - tracks.read(at - h)[0]) / (2 * h)
    np.testing.assert_allclose(rate, numeric, atol=1e-5 * np.abs(rate).max())


def test_the_weights_fade_instead_of_jumping():
    """At a track's ends and around unseen frames the weights change with the reading time by small
    steps: the calibration's cost, a sum over weighted reads, must not jump as a clock moves (a jump
    made local minima that held one camera's offset 2.4 ms from the best)."""
    rng = np.random.default_rng(1)
    y = rng.normal(0, 0.01, (50, 17, 2))
    w = np.ones((50, 17))
    w[25:29, :3] = 0.0
    at = np.arange(-0.1, 2.1, 0.0001)
    _, seen, _ = _tracks(y, w).read(at)
    assert seen[at < -0.07].max() == 0.0 and seen[at > 2.03].max() == 0.0  # nothing read far beyond the ends
    assert seen[(at > 0.3) & (at < 0.6)].min() > 0.99
    assert np.abs(np.diff(seen, axis=0)).max() < 0.01
