"""People walking in a calibrated rig: Human3.6M takes given a path on the floor and seen by the
rig's cameras at their own (unsynchronised) times — the calibration walks of a rig calibrated
from people (:func:`pads_stream.geometry.selfcalib.calibrate_rig`).

Human3.6M poses here are pelvis-relative (Y up, no global trajectory): the path is made by foot
locking (the lower ankle stays where it stands, the body moves over it), and a moving average of
``recentre_s`` is removed so the person stays within about a metre of the point the cameras look
at. World: Z up, metres, the lowest joint on the floor z = 0 (as V-H36M).
"""

from __future__ import annotations

import numpy as np

from .virtual_rig import CalibratedRig

RATE_HZ = 25.0  # Human3.6M poses as this project keeps them


def foot_locked_path(poses: np.ndarray, recentre_s: float = 10.0, rate_hz: float = RATE_HZ) -> np.ndarray:
    """(F, 17, 3) pelvis-relative Y-up poses -> (F, 17, 3) Z-up world poses walking on the floor."""
    ankles = poses[:, [3, 6]]
    stance = np.argmin(ankles[:, :, 1], axis=1)  # the lower ankle stands
    idx = np.arange(1, len(poses))
    step = ankles[idx, stance[idx]] - ankles[idx - 1, stance[idx]]
    path = np.concatenate([np.zeros((1, 3)), -np.cumsum(step, axis=0)])
    path[:, 1] = 0.0
    window = max(int(recentre_s * rate_hz) | 1, 1)
    kernel = np.ones(window) / window
    for axis in (0, 2):
        padded = np.pad(path[:, axis], window // 2, mode="edge")
        path[:, axis] -= np.convolve(padded, kernel, mode="valid")
    yup = poses + path[:, None]
    yup[..., 1] -= yup[..., 1].min(axis=1, keepdims=True)  # the lowest joint on the floor
    return np.stack([yup[..., 0], -yup[..., 2], yup[..., 1]], axis=-1)


def rig_centre(rig: CalibratedRig) -> np.ndarray:
    """(3,) the point on the floor the cameras look at (their optical axes' floor points, averaged)."""
    centres = -np.einsum("vji,vj->vi", rig.R, rig.t)
    axes = rig.R[:, 2]  # each camera's +z in the world
    s = -centres[:, 2] / np.where(np.abs(axes[:, 2]) > 1e-6, axes[:, 2], -1e-6)
    floor = centres + np.clip(s, 0, 20)[:, None] * axes
    return np.array([*floor[:, :2].mean(axis=0), 0.0])


def place_walk(world: np.ndarray, rig: CalibratedRig, rng: np.random.Generator) -> np.ndarray:
    """A walk turned to a random heading about Z and centred where the rig looks."""
    a = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    centred = world - np.array([*world[:, 0, :2].mean(axis=0), 0.0])
    return centred @ rot.T + rig_centre(rig)


def sample_at(world: np.ndarray, times_s: np.ndarray, rate_hz: float = RATE_HZ) -> np.ndarray:
    """The walk (F, 17, 3) at ``rate_hz`` read at any times (T,) seconds: linear between frames."""
    f = np.clip(times_s * rate_hz, 0, len(world) - 1 - 1e-9)
    i = np.floor(f).astype(int)
    a = (f - i)[:, None, None]
    return (1 - a) * world[i] + a * world[np.minimum(i + 1, len(world) - 1)]


def camera_views(world: np.ndarray, rig: CalibratedRig, offset_s: np.ndarray, drift_ppm: np.ndarray,
                 frames: int, rate_hz: float = RATE_HZ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Each camera's frames of the walk on its own clock.

    Camera v's k-th frame is stamped τ = k / rate_hz s on its clock and captured at the walk's
    time τ + offset_s[v] + drift_ppm[v]·1e-6·(τ − τ_mid) (camera 0: offset 0, drift 0 is the
    reference). Returns (kp2d (V, frames, 17, 2) exact pixels, t_ns (V, frames) int, the captured
    world poses (V, frames, 17, 3)).
    """
    tau = np.arange(frames) / rate_hz
    mid = tau[len(tau) // 2]
    kp, seen = [], []
    for v in range(len(rig.K)):
        at = tau + offset_s[v] + drift_ppm[v] * 1e-6 * (tau - mid)
        x = sample_at(world, at, rate_hz)
        cam = x @ rig.R[v].T + rig.t[v]
        uv = cam @ rig.K[v].T
        kp.append(uv[..., :2] / uv[..., 2:])
        seen.append(x)
    t_ns = np.round(np.broadcast_to(tau, (len(rig.K), frames)) * 1e9).astype(np.int64)
    return np.stack(kp), t_ns, np.stack(seen)
