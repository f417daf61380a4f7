"""A virtual capture rig: places Y-up poses in front of pinhole cameras like Human3.6M's.

Used to make validation views (for tuning, never the test set), the supervised baseline's
training pairs, and replayed streams of BVH motion. World: Y up, metres, floor at y = 0;
camera frame: OpenCV; image: pixels of a 1000 x 1000 sensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry.camera import project, rotation_y


@dataclass(frozen=True)
class RigConfig:
    """Camera placement ranges (metres, pixels)."""

    focal: tuple[float, float] = (1100.0, 1200.0)  # px
    principal_jitter: float = 10.0  # px around the image centre (500, 500)
    distance: tuple[float, float] = (4.0, 6.0)  # camera to rig centre, horizontal
    height: tuple[float, float] = (1.0, 2.0)  # camera above the floor
    target_height: float = 1.0  # the point the cameras look at
    disc: float = 1.0  # people stand within this radius of the rig centre


@dataclass(frozen=True)
class Views:
    """Poses seen by cameras: one view per pose.

    Attributes:
        kp2d: (N, 17, 2) pixels. K: (N, 3, 3). root: (N, 3) pelvis in the camera frame, m.
        gt: (N, 17, 3) pelvis-relative joints in the camera frame, m.
    """

    kp2d: np.ndarray
    K: np.ndarray
    root: np.ndarray
    gt: np.ndarray


def look_at(cam: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, 3, 3) world-to-camera rotations (rows: right, down, forward) for Y-up worlds."""
    f = target - cam
    f /= np.linalg.norm(f, axis=-1, keepdims=True)
    r = np.cross(f, np.array([0.0, 1.0, 0.0]))
    r /= np.linalg.norm(r, axis=-1, keepdims=True)
    return np.stack([r, np.cross(f, r), f], axis=-2)


def place_on_floor(poses: np.ndarray, rng: np.random.Generator, disc: float) -> np.ndarray:
    """Random heading, lowest joint on the floor, pelvis within ``disc`` m of the centre.

    Args:
        poses: (N, 17, 3) Y-up, pelvis-relative, metres.

    Returns:
        (N, 17, 3) world positions, metres.
    """
    n = poses.shape[0]
    x = np.einsum("nij,nkj->nki", rotation_y(rng.uniform(0, 2 * np.pi, n)), poses)
    radius, angle = disc * np.sqrt(rng.random(n)), rng.uniform(0, 2 * np.pi, n)
    offset = np.stack([radius * np.cos(angle), -x[..., 1].min(axis=1), radius * np.sin(angle)], -1)
    return x + offset[:, None]


def random_cameras(n: int, rng: np.random.Generator, cfg: RigConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` cameras around the rig centre: (K (n, 3, 3), R (n, 3, 3), centre (n, 3))."""
    az = rng.uniform(0, 2 * np.pi, n)
    dist = rng.uniform(*cfg.distance, n)
    centre = np.stack([dist * np.cos(az), rng.uniform(*cfg.height, n), dist * np.sin(az)], -1)
    target = np.zeros((n, 3)) + [0.0, cfg.target_height, 0.0]
    R = look_at(centre, target)
    f = rng.uniform(*cfg.focal, n)
    c = 500.0 + rng.uniform(-cfg.principal_jitter, cfg.principal_jitter, (n, 2))
    K = np.zeros((n, 3, 3))
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = f, f, c[:, 0], c[:, 1], 1.0
    return K, R, centre


# The rig's Y-up world (floor y = 0) as the wire's Z-up world (floor z = 0): (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def z_up_extrinsics(R: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extrinsics of rig cameras in the wire's convention: X_cam = R' · X_world + t' with a Z-up
    world whose floor is z = 0 (:data:`Y_UP_TO_Z_UP` of the rig's world).

    Args:
        R: (N, 3, 3) world-to-camera rotations of the Y-up rig. centre: (N, 3) camera centres, m.

    Returns:
        (R' (N, 3, 3), t' (N, 3) metres).
    """
    R_z = R @ Y_UP_TO_Z_UP.T
    return R_z, -np.einsum("nij,nj->ni", R, centre)


def world_views(world: np.ndarray, K: np.ndarray, R: np.ndarray, centre: np.ndarray) -> Views:
    """Views of (N, 17, 3) world poses by cameras (K, R, centre), one camera per pose."""
    cam = np.einsum("nij,nkj->nki", R, world - centre[:, None])
    return Views(kp2d=project(cam, K), K=K, root=cam[:, 0].copy(), gt=cam - cam[:, :1])


def random_views(poses: np.ndarray, rng: np.random.Generator, cfg: RigConfig | None = None) -> Views:
    """Each (N, 17, 3) Y-up pose placed on the floor and seen by its own random camera."""
    cfg = cfg or RigConfig()
    world = place_on_floor(poses.astype(np.float64), rng, cfg.disc)
    return world_views(world, *random_cameras(poses.shape[0], rng, cfg))


def detector_noise(
    kp2d: np.ndarray,
    rng: np.random.Generator,
    std_px: float = 5.0,
    outlier_rate: float = 0.05,
    outlier_px: tuple[float, float] = (20.0, 60.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Detector-like 2D: Gaussian noise plus a few displaced joints, with confidences.

    Args:
        kp2d: (..., J, 2) exact pixels.

    Returns:
        ((..., J, 2) noisy pixels, (..., J) confidence, lower where a joint moved further).
    """
    noisy = kp2d + rng.normal(0.0, std_px, kp2d.shape)
    out = rng.random(kp2d.shape[:-1]) < outlier_rate
    angle = rng.uniform(0, 2 * np.pi, kp2d.shape[:-1])
    dist = rng.uniform(*outlier_px, kp2d.shape[:-1])
    noisy += out[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1) * dist[..., None]
    moved = np.linalg.norm(noisy - kp2d, axis=-1)
    conf = np.clip(np.exp(-0.5 * (moved / (3 * std_px)) ** 2) + rng.normal(0, 0.05, moved.shape), 0.05, 1.0)
    return noisy, conf


@dataclass(frozen=True)
class CalibratedRig:
    """Cameras calibrated in one world (pads-stream's: Z up, floor z = 0, metres).

    Attributes:
        K: (V, 3, 3) intrinsics, pixels. R: (V, 3, 3), t: (V, 3): X_cam = R · X_world + t.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        """(V, 3) camera centres in the world, metres."""
        return -np.einsum("vji,vj->vi", self.R, self.t)

    def look_at_floor(self) -> np.ndarray:
        """(3,) the floor point nearest to every optical axis (least squares), metres: where the
        rig looks."""
        c, axis = self.centres, self.R[:, 2]  # optical axes in the world: the third row of R
        m = np.eye(3) - axis[:, :, None] * axis[:, None, :]
        p = np.linalg.solve(m.sum(axis=0), np.einsum("vab,vb->a", m, c))
        return np.array([p[0], p[1], 0.0])

    def project(self, world: np.ndarray) -> np.ndarray:
        """(N, 17, 3) world joints -> (V, N, 17, 2) pixels in every camera."""
        cam = np.einsum("vij,nkj->vnki", self.R, world) + self.t[:, None, None]
        return project(cam, self.K[:, None])


def load_rig(path: str, subject: str) -> CalibratedRig:
    """The rig of ``subject`` in a cameras file like V-H36M's ``cameras_s9_s11.json``
    (``subjects[S][v]`` with ``K``, ``R``, ``t``; X_cam = R · X_world + t, Z-up world)."""
    import json

    cams = json.loads(open(path).read())["subjects"][subject]
    return CalibratedRig(*(np.array([c[k] for c in cams], dtype=np.float64) for k in ("K", "R", "t")))


def rig_samples(test: dict[str, np.ndarray], subject: str, views: int) -> np.ndarray:
    """(V, M) indices of a V-H36M-like test set: column k holds the k-th sample of ``subject`` in
    each camera 0 … V−1, all the same world pose."""
    idx = [np.flatnonzero((test["subject"] == subject) & (test["camera"] == v)) for v in range(views)]
    m = min(len(i) for i in idx)
    return np.stack([i[:m] for i in idx])


def place_in_rig(poses: np.ndarray, rig: CalibratedRig, rng: np.random.Generator, disc: float = 1.0) -> np.ndarray:
    """Y-up pelvis-relative poses (N, 17, 3) placed like V-H36M's: random heading, lowest joint on
    the floor, ground position within ``disc`` m of where the rig looks -> (N, 17, 3) world (Z up)."""
    world = place_on_floor(poses.astype(np.float64), rng, disc) @ Y_UP_TO_Z_UP.T
    return world + rig.look_at_floor()
