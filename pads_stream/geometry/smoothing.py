"""The One Euro filter (Casiez, Roussel & Vogel, CHI 2012) for streams of 3D joints.

An adaptive low-pass filter per coordinate: its cutoff rises with the signal's speed, so slow
motion is smoothed (less jitter) and fast motion passes with little lag. Units: positions in
metres, times in seconds, cutoffs in Hz, ``beta`` in Hz per (m/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """Filter parameters (node config ``one_euro_*``)."""

    min_cutoff: float = 1.0  # Hz, the cutoff at rest: lower = smoother, more lag
    beta: float = 0.5  # Hz per m/s: how fast the cutoff rises with speed
    d_cutoff: float = 1.0  # Hz, the cutoff of the speed estimate


@dataclass
class OneEuroState:
    """The filter's memory for one track: last output (J, 3) m, its speed (J, 3) m/s, time s."""

    x: np.ndarray
    dx: np.ndarray
    t: float


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro(
    state: OneEuroState | None, x: np.ndarray, t: float, cfg: OneEuroConfig
) -> tuple[np.ndarray, OneEuroState]:
    """Filter one sample ``x`` (J, 3) metres taken at ``t`` seconds; returns (output, new state).

    The first sample of a track, or one not after the previous, passes unchanged (and restarts).
    """
    if state is None or t <= state.t:
        return x, OneEuroState(x.copy(), np.zeros_like(x), t)
    dt = t - state.t
    dx = (x - state.x) / dt
    dx_hat = state.dx + _alpha(cfg.d_cutoff, dt) * (dx - state.dx)
    cutoff = cfg.min_cutoff + cfg.beta * np.abs(dx_hat)
    out = state.x + _alpha(cutoff, dt) * (x - state.x)
    return out, OneEuroState(out, dx_hat, t)


@dataclass(frozen=True)
class DepthFilterConfig:
    """A constant-velocity Kalman filter on the log-depth of an estimated root (node config
    ``depth_filter_*``). Log-depth, so that its noise is relative: a body-size depth is off by a
    fraction of the distance, wherever the person stands."""

    noise: float = 0.03  # std of one frame's log-depth (0.03: 3 % of the distance)
    accel: float = 1.0  # std of the log-depth's acceleration, 1/s² (a person starting to walk)
    speed: float = 0.5  # std of a new track's log-depth speed, 1/s
    gate: float = 5.0  # a measurement this many stds off the prediction restarts the filter


@dataclass
class DepthFilterState:
    """A track's log-depth filter: mean [log z, d log z / dt], its 2×2 covariance, time s."""

    mean: np.ndarray
    cov: np.ndarray
    t: float


def depth_filter(
    state: DepthFilterState | None, depth: float, t: float, cfg: DepthFilterConfig
) -> tuple[float, DepthFilterState]:
    """Filter one depth ``depth`` (m, > 0) measured at ``t`` seconds; returns (depth m, new state).

    Predict with constant velocity (white-noise acceleration), update with the measurement. The
    first sample of a track, one not after the previous, or one that misses the prediction by more
    than ``gate`` stds (a jump the motion cannot explain) passes unchanged and restarts the filter.
    """
    z = math.log(depth)
    fresh = DepthFilterState(np.array([z, 0.0]), np.diag([cfg.noise**2, cfg.speed**2]), t)
    if state is None or t <= state.t:
        return depth, fresh
    dt = t - state.t
    F = np.array([[1.0, dt], [0.0, 1.0]])
    Q = cfg.accel**2 * np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]])
    mean, cov = F @ state.mean, F @ state.cov @ F.T + Q
    innovation, var = z - mean[0], cov[0, 0] + cfg.noise**2
    if innovation**2 > cfg.gate**2 * var:
        return depth, fresh
    gain = cov[:, 0] / var
    mean = mean + gain * innovation
    cov = cov - np.outer(gain, cov[0])
    return math.exp(mean[0]), DepthFilterState(mean, cov, t)


def filter_root_depth(
    state: DepthFilterState | None, root: np.ndarray, t: float, cfg: DepthFilterConfig
) -> tuple[np.ndarray, DepthFilterState]:
    """One person's root (camera frame, metres, z > 0) with its depth filtered by
    :func:`depth_filter`, moved along its own ray (the pelvis stays on its 2D point). The
    pelvis-relative pose is left as it is: a person's size does not change from frame to frame,
    and scaling the pose with the filtered depth would stretch and shrink every bone with the
    filter's corrections (the other joints move off their rays by the correction times their
    distance from the pelvis: about 1 cm for a 2 % correction). Returns (root, state)."""
    depth, state = depth_filter(state, float(root[2]), t, cfg)
    return root * (depth / float(root[2])), state
