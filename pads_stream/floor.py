"""A camera's floor without calibration: the plane the tracked people's feet stand on.

Without extrinsics a stream still shows people standing and walking; where a foot rests (the lowest
joint of a pose, moving slowly) it is on the floor. The plane through those contacts, in the
camera frame, gives the camera's height above the floor, its pitch and roll, and so a world frame
(Z up, floor z = 0, the camera above the origin) in which the bridges, the viewer and recordings
can place people. The contacts are camera-frame points of estimated poses, so the plane is as good
as their depth: with the root estimated from body size it inherits that estimate's scale.

Conventions: camera frame OpenCV (x right, y down, z forward), metres. A floor is a unit normal
``up`` (camera frame, pointing from the floor to the camera's side) and the camera's ``height``
above it; the floor's points X satisfy up · X = −height. Pitch: the optical axis's angle below the
horizon (degrees, positive looking down); roll: the image's rotation about the optical axis
(degrees, positive clockwise as seen by the camera).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

ANKLES = (3, 6)  # H36M-17: the joints a standing person's lowest point is


@dataclass(frozen=True)
class FloorConfig:
    """Which poses give contacts, and how the plane is fitted."""

    contact_speed: float = 0.4  # m/s: a lowest joint moving slower than this rests on the floor
    contact_window_s: float = 0.2  # the speed is taken over this long
    inlier_m: float = 0.05  # a contact this close to the plane counts as on it (robust fit)
    min_contacts: int = 30  # fewer contacts: no estimate
    min_spread_m: float = 0.5  # contacts must span this much floor (else the tilt is unknown)


@dataclass(frozen=True)
class Floor:
    """A floor in a camera's frame (see the module docstring).

    Attributes:
        up: (3,) unit normal, camera frame. height: camera above the floor, metres.
        contacts: contacts the fit used. rms: their RMS distance from the plane, metres.
        confidence: in [0, 1], from the number, spread and fit of the contacts.
    """

    up: np.ndarray
    height: float
    contacts: int
    rms: float
    confidence: float

    @property
    def pitch_deg(self) -> float:
        return float(np.degrees(np.arcsin(np.clip(-self.up[2], -1.0, 1.0))))

    @property
    def roll_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.up[0], -self.up[1])))

    def extrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """(R (3, 3), t (3,)) of a world implied by this floor: X_cam = R · X_world + t, Z up along
        ``up``, the floor at z = 0, the camera above the world origin, the world's y axis along
        the optical axis's horizontal direction."""
        forward = np.array([0.0, 0.0, 1.0]) - self.up[2] * self.up  # the optical axis on the floor's plane
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, self.up)  # world x, so that (x, y, z) = (right, forward, up) is right-handed
        R = np.stack([right, forward, self.up], axis=1)  # columns: the world axes in the camera frame
        return R, -R @ np.array([0.0, 0.0, self.height])


def contacts(joints: np.ndarray, times_s: np.ndarray, cfg: FloorConfig, up: np.ndarray | None = None) -> np.ndarray:
    """Foot contacts of one person's track: the lowest joint of each pose where it moved slower than
    ``contact_speed`` since the previous pose.

    Args:
        joints: (F, 17, 3) a track's joints, camera frame, metres (NaN rows: not seen).
        times_s: (F,) their capture times, seconds, increasing.
        up: (3,) the up direction to call "lowest" along; default the camera's −y (an upright camera).

    Returns:
        (M, 3) contact points, camera frame, metres.
    """
    up = np.array([0.0, -1.0, 0.0]) if up is None else up
    ok = np.isfinite(joints).all(axis=(1, 2))
    joints, times_s = joints[ok], times_s[ok]
    if len(joints) < 2:
        return np.zeros((0, 3))
    lowest = joints[np.arange(len(joints)), np.argmin(joints @ up, axis=1)]  # (F, 3)
    # speed over about contact_window_s (one frame's step is mostly the 2D noise's: 2 cm at 25 Hz is 0.7 m/s)
    lag = np.searchsorted(times_s, times_s - cfg.contact_window_s, side="right") - 1
    has = lag >= 0
    idx = np.flatnonzero(has)
    speed = np.linalg.norm(lowest[idx] - lowest[lag[idx]], axis=-1) / np.maximum(times_s[idx] - times_s[lag[idx]], 1e-6)
    return lowest[idx][speed < cfg.contact_speed]


def fit_floor(points: np.ndarray, cfg: FloorConfig, iters: int = 10) -> Floor | None:
    """The plane through foot contacts (M, 3) camera frame metres, robust to the lifted ones.

    A contact's error is mostly its depth, a share of its distance along its own ray (the body-size
    depth is a few per cent off, and wanders along a track). So each contact's height above the
    plane is weighed against the camera's height, up · X / height + 1 = 0: linear in up / height,
    solved by least squares. An orthogonal fit instead can tilt the plane towards the camera, where a
    person's depth wander (contacts along one ray) costs nothing: on held-out S8 walks in the S9/S11
    rig (``tools/floor_eval.py``, 5 s) it missed the camera height by 4.8 cm on average, this fit by
    2.5. Then refitted to the contacts within ``inlier_m`` of it (or twice the median distance).
    None without enough contacts or spread, or for a plane above the camera."""
    if len(points) < cfg.min_contacts:
        return None
    keep = np.ones(len(points), bool)
    for _ in range(iters):
        v = np.linalg.lstsq(points[keep], -np.ones(int(keep.sum())), rcond=None)[0]  # up / height
        height = 1.0 / max(float(np.linalg.norm(v)), 1e-12)
        up = v * height
        above = points @ up + height  # signed height of each contact above the plane
        new = np.abs(above) < max(cfg.inlier_m, 2.0 * np.median(np.abs(above[keep])))
        if new.sum() < cfg.min_contacts or np.array_equal(new, keep):
            break
        keep = new
    if up[1] > 0:  # the plane's up points down the image: a ceiling, not a floor
        return None
    flat = points[keep] - (points[keep] @ up)[:, None] * up
    spread = float(np.sqrt(np.linalg.eigvalsh(np.cov(flat.T))[-2:]).min() * 2) if keep.sum() > 3 else 0.0
    if spread < cfg.min_spread_m / 4:
        return None
    rms = float(np.sqrt(np.mean((points[keep] @ up + height) ** 2)))
    confidence = float(min(1.0, keep.sum() / (4 * cfg.min_contacts)) * min(1.0, spread / cfg.min_spread_m)
                       * np.exp(-rms / cfg.inlier_m))  # fmt: skip
    return Floor(up=up, height=height, contacts=int(keep.sum()), rms=rms, confidence=confidence)


def estimate_floor(
    tracks: list[np.ndarray], times_s: list[np.ndarray], cfg: FloorConfig, passes: int = 3
) -> Floor | None:
    """The floor of a camera from its persons' tracks: contacts taken as the lowest joint along the
    camera's −y at first, then along the last fit's ``up`` (a tilted camera's −y is partly
    forward: the far foot, not the lower one), refitted ``passes`` times.

    Args:
        tracks: per person (F, 17, 3) joints, camera frame, metres (NaN rows: not seen).
        times_s: per person (F,) seconds.
    """
    floor, up = None, None
    for _ in range(passes):
        points = [contacts(j, t, cfg, up) for j, t in zip(tracks, times_s, strict=True)]
        fit = fit_floor(np.concatenate(points) if points else np.zeros((0, 3)), cfg)
        if fit is None:
            return floor
        floor, up = fit, fit.up
    return floor


@dataclass
class FloorTracker:
    """A stream's floor, refined while its people move: the ankles of the poses it published over
    the last ``keep`` poses, refitted at most every ``refit_s`` seconds (of the stream's clock)."""

    cfg: FloorConfig = field(default_factory=FloorConfig)
    keep: int = 3000
    refit_s: float = 1.0
    samples: deque = field(default_factory=deque)  # (track id, t seconds, ankles (2, 3) camera frame)
    floor: Floor | None = None
    fitted_at: float = -np.inf

    def add(self, pid: int, t_s: float, joints: np.ndarray) -> None:
        """One published pose (17, 3), camera frame, metres, of track ``pid`` at ``t_s``."""
        self.samples.append((pid, t_s, joints[list(ANKLES)].copy()))
        while len(self.samples) > self.keep:
            self.samples.popleft()

    def update(self, t_s: float) -> Floor | None:
        """The current floor (refitted if ``refit_s`` has passed), or None while there is none."""
        if t_s - self.fitted_at >= self.refit_s:
            self.fitted_at = t_s
            by_id: dict[int, list] = {}
            for pid, t, ankles in self.samples:
                by_id.setdefault(pid, []).append((t, ankles))
            tracks = [np.stack([a for _, a in v]) for v in by_id.values() if len(v) > 1]
            times = [np.array([t for t, _ in v]) for v in by_id.values() if len(v) > 1]
            fit = estimate_floor(tracks, times, self.cfg) if tracks else None
            self.floor = fit if fit is not None else self.floor
        return self.floor
