"""Pinhole camera geometry: projection, inverse projection, lens undistortion, rotations.

Frames and units used everywhere in pads-stream:
- camera frame: OpenCV axes (x right, y down, z forward), metres;
- image: pixels, origin at the top-left pixel's corner as in OpenCV;
- ``K``: 3x3 intrinsics in pixels; ``dist``: OpenCV (k1, k2, p1, p2, k3) coefficients;
- motion-capture "world" data: Y up, metres (see :func:`yup_to_camera`).
All functions broadcast over leading dimensions and use plain numpy (float64 inside).
"""

from __future__ import annotations

import numpy as np


def project(x_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project camera-frame points to pixels through a pinhole.

    Args:
        x_cam: (..., J, 3) points in the camera frame, metres, z > 0.
        K: (..., 3, 3) intrinsics, broadcastable against ``x_cam``'s leading dims.

    Returns:
        (..., J, 2) pixel coordinates.
    """
    uvw = np.einsum("...ij,...kj->...ki", K, x_cam)
    return uvw[..., :2] / uvw[..., 2:3]


def normalized_rays(kp: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rays K⁻¹[u, v, 1] of pixel points (the normalised image coordinates, z = 1).

    Args:
        kp: (..., J, 2) pixels.
        K: (..., 3, 3) intrinsics.

    Returns:
        (..., J, 3) ray directions in the camera frame with z = 1.
    """
    hom = np.concatenate([kp, np.ones_like(kp[..., :1])], axis=-1)
    return np.einsum("...ij,...kj->...ki", np.linalg.inv(K), hom)


def unit_rays(rays: np.ndarray) -> np.ndarray:
    """(..., 3) unit directions (camera frame) of rays (..., 2) K⁻¹[u, v, 1] (x/z, y/z)."""
    hom = np.concatenate([rays, np.ones_like(rays[..., :1])], axis=-1)
    return hom / np.linalg.norm(hom, axis=-1, keepdims=True)


def inverse_projection(kp: np.ndarray, K: np.ndarray, root: np.ndarray) -> np.ndarray:
    """The estimation prior's starting point (PADS Eq. 8): each joint's ray scaled to ‖T‖.

    Every 2D joint is lifted onto the sphere of radius ‖T‖ around the camera centre and the
    root T is subtracted, so the result is pelvis-relative. For an exact pelvis keypoint this is
    the paper's centring on the pelvis; centring on T keeps a missing or noisy pelvis keypoint
    from shifting the whole pose.

    Args:
        kp: (N, J, 2) pixels.
        K: (N, 3, 3) intrinsics.
        root: (N, 3) pelvis position T in the camera frame, metres.

    Returns:
        (N, J, 3) pelvis-relative joints in the camera frame, metres.
    """
    rays = normalized_rays(kp, K)
    return sphere_start(rays / np.linalg.norm(rays, axis=-1, keepdims=True), root)


def sphere_start(unit: np.ndarray, root: np.ndarray) -> np.ndarray:
    """:func:`inverse_projection` from unit rays: (N, J, 3) unit ray directions (camera frame)
    and the (N, 3) root, metres -> (N, J, 3) pelvis-relative joints, metres."""
    return unit * np.linalg.norm(root, axis=-1)[:, None, None] - root[:, None, :]


def undistort_points(kp: np.ndarray, K: np.ndarray, dist: np.ndarray, iters: int = 10) -> np.ndarray:
    """Remove OpenCV radial-tangential distortion from pixel points (fixed-point iteration).

    Args:
        kp: (..., J, 2) distorted pixels.
        K: (3, 3) intrinsics.
        dist: (5,) coefficients (k1, k2, p1, p2, k3).
        iters: fixed-point iterations (10 is below 0.01 px for common lenses).

    Returns:
        (..., J, 2) undistorted pixels under the same ``K``.
    """
    k1, k2, p1, p2, k3 = (float(c) for c in dist)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    yd = (kp[..., 1] - cy) / fy
    xd = (kp[..., 0] - cx - skew * yd) / fx
    x, y = xd.copy(), yd.copy()
    for _ in range(iters):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return np.stack([fx * x + skew * y + cx, fy * y + cy], axis=-1)


def distort_points(kp: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Apply OpenCV radial-tangential distortion to ideal pixel points (inverse of undistort).

    Args:
        kp: (..., J, 2) undistorted pixels.
        K: (3, 3) intrinsics.
        dist: (5,) coefficients (k1, k2, p1, p2, k3).

    Returns:
        (..., J, 2) distorted pixels.
    """
    k1, k2, p1, p2, k3 = (float(c) for c in dist)
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    y = (kp[..., 1] - cy) / fy
    x = (kp[..., 0] - cx - skew * y) / fx
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([fx * xd + skew * yd + cx, fy * yd + cy], axis=-1)


def rotation_x(angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations about the x axis by ``angle`` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([o, z, z, z, c, -s, z, s, c], axis=-1).reshape(*np.shape(angle), 3, 3)


def rotation_y(angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations about the y axis by ``angle`` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([c, z, s, z, o, z, -s, z, c], axis=-1).reshape(*np.shape(angle), 3, 3)


def rotation_z(angle: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations about the z axis by ``angle`` radians (right-handed)."""
    c, s = np.cos(angle), np.sin(angle)
    o, z = np.ones_like(c), np.zeros_like(c)
    return np.stack([c, -s, z, s, c, z, z, z, o], axis=-1).reshape(*np.shape(angle), 3, 3)


def yup_to_camera(x_world: np.ndarray) -> np.ndarray:
    """Turn Y-up, right-handed points into a level camera's frame looking along world +Z.

    The camera's right is world -X, its down is world -Y, its forward is world +Z (a proper
    rotation, 180° about Z), so a body facing -Z (towards the camera) keeps its left on the
    image's right, as a camera sees it.

    Args:
        x_world: (..., 3) points, Y up.

    Returns:
        (..., 3) points in the OpenCV camera frame.
    """
    return x_world * np.array([-1.0, -1.0, 1.0], dtype=x_world.dtype)


def check_intrinsics(K: np.ndarray, name: str = "K") -> None:
    """Raise ValueError unless ``K`` is a finite, invertible (..., 3, 3) intrinsics matrix."""
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError(f"{name} has NaN or infinite entries")
    det = np.linalg.det(K.astype(np.float64))
    if np.any(np.abs(det) < 1e-9):
        raise ValueError(f"{name} is singular (determinant {det.min():.3g})")
    if np.any(K[..., 0, 0] <= 0) or np.any(K[..., 1, 1] <= 0):
        raise ValueError(f"{name} needs positive focal lengths fx, fy")


def camera_to_world(x_cam: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera-frame points to the world frame of extrinsics X_cam = R · X_world + t.

    Args:
        x_cam: (N, J, 3) metres, camera frame. R: (N, 3, 3) world-to-camera rotations.
        t: (N, 3) metres.

    Returns:
        (N, J, 3) world points, metres (the world of the extrinsics: Z up, floor z = 0 in pads-stream).
    """
    return np.einsum("nji,nkj->nki", R, x_cam - t[:, None, :])


def floor_scale(x_cam: np.ndarray, R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The factor f that puts a person's lowest joint on the floor z = 0 when every joint is
    moved along its ray from the camera centre (X_j → f · X_j, so the 2D fit is unchanged).

    World height of f · X_j is C_z + f · (Rᵀ X_j)_z with C the camera centre, so for the lowest
    joint f = −C_z / (Rᵀ X_j)_z, defined when that joint's ray points down from a camera above
    the floor.

    Args:
        x_cam: (N, J, 3) joints in the camera frame, metres. R: (N, 3, 3). t: (N, 3) metres.

    Returns:
        (f (N,), ok (N,) bool); f is 1 where not ok.
    """
    centre_z = -np.einsum("nji,nj->ni", R, t)[:, 2]  # (N,) camera height above the floor
    down = np.einsum("nji,nkj->nki", R, x_cam)[..., 2]  # (N, J) world z of Rᵀ X_j
    lowest = np.argmin(down, axis=1)
    a = np.take_along_axis(down, lowest[:, None], axis=1)[:, 0]
    ok = (centre_z > 0) & (a < -1e-6) & np.isfinite(a)
    f = np.where(ok, -centre_z / np.where(ok, a, -1.0), 1.0)
    ok &= (f > 0.5) & (f < 2.0)
    return np.where(ok, f, 1.0), ok


def snap_to_rays(x: np.ndarray, rays: np.ndarray, root: np.ndarray, conf: np.ndarray, power: float) -> np.ndarray:
    """Move each joint towards the closest point on its 2D ray, by ``conf ** power``.

    The closest point to joint X_j + T on the ray through the camera centre with unit direction
    r̂_j is ((X_j + T)·r̂_j) r̂_j; the pelvis stays at the origin.

    Args:
        x: (B, 17, 3) pelvis-relative joints, camera frame, metres.
        rays: (B, 17, 3) unit ray directions r̂_j (camera frame).
        root: (B, 3) pelvis position T, metres.
        conf: (B, 17) confidences in [0, 1].

    Returns:
        (B, 17, 3) pelvis-relative joints, metres.
    """
    if power <= 0:
        return x
    p = x + root[:, None]  # (B, 17, 3) camera frame
    closest = np.sum(p * rays, axis=-1, keepdims=True) * rays - root[:, None]
    w = conf[..., None] ** power
    w[:, 0] = 0.0
    return x + w * (closest - x)


def intrinsics_doubt(K: np.ndarray, kp: np.ndarray) -> str | None:
    """Why intrinsics K (3, 3) px cannot belong to keypoints kp (M, 2) px, or None: a focal length below
    1 px (a normalised K), or a principal point beyond 1.5× the keypoints' largest coordinate with a
    smaller focal length (fx, fy, cx, cy given in another order). The principal point sits near the
    image's centre and the focal length is usually larger than it."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx >= 1 and fy >= 1):
        return "focal lengths must be >= 1 px (a normalised K? give fx, fy, cx, cy in pixels)"
    kp = kp[np.isfinite(kp).all(axis=-1)]
    if len(kp) == 0:
        return None
    hi = kp.max(axis=0)
    if (cx > 1.5 * hi[0] or cy > 1.5 * hi[1]) and max(fx, fy) < max(cx, cy):
        return (
            f"the principal point ({cx:g}, {cy:g}) lies beyond the keypoints (up to x {hi[0]:.0f}, y "
            f"{hi[1]:.0f} px) and exceeds the focal length ({fx:g}, {fy:g}): fx, fy, cx, cy swapped?"
        )
    return None
