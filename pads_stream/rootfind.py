"""Root (pelvis) position for rigs that send only 2D keypoints and intrinsics.

1. :func:`initial_root`: depth from body size — the mean skeleton's total bone length over
   the 2D skeleton's total bone length in normalised image coordinates, times the median
   foreshortening of bones seen by a camera; the pelvis ray scaled to that depth.
2. :func:`solve_root`: with a pelvis-relative pose estimated, the root T that best explains
   the 2D keypoints, by weighted linear least squares on x_j + T = λ_j [u_j, v_j, 1].
Constants measured on training views by ``tools/calibrate_root_prior.py``.
"""

from __future__ import annotations

import numpy as np

from .skeleton import H36M_PARENTS

# Mean H36M-17 bone lengths of S1, S5-S7 (m), bone j ending at joint j + 1.
MEAN_BONES_M = np.array([0.1329, 0.4429, 0.4541, 0.1329, 0.4429, 0.4541, 0.2335, 0.2571,
                         0.1211, 0.1150, 0.1510, 0.2789, 0.2517, 0.1510, 0.2789, 0.2517])  # fmt: skip
FORESHORTENING = 0.8792  # median of Z · Σℓ2d / Σℓ3d over virtual-rig views


def initial_root(rays: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-size guess of the root.

    Args:
        rays: (N, 17, 2) normalised image coordinates K⁻¹[u, v, 1] (x/z, y/z).
        conf: (N, 17) confidences; bones with a missing end are left out of both sums.

    Returns:
        (root (N, 3) in the camera frame, metres; ok (N,) bool). A person with no observed bone
        of measurable 2D length gets ok False and a placeholder root 5 m along its rays.
    """
    parents = list(H36M_PARENTS[1:])
    seen = (conf[:, 1:] > 0) & (conf[:, parents] > 0)  # (N, 16)
    l2d = np.linalg.norm(rays[:, 1:] - rays[:, parents], axis=-1)
    size_2d = (l2d * seen).sum(axis=1)
    size_3d = (MEAN_BONES_M * seen).sum(axis=1)
    ok = size_2d > 1e-6 * np.maximum(size_3d, 1e-6)
    depth = np.where(ok, FORESHORTENING * size_3d / np.where(ok, size_2d, 1.0), 5.0)
    ok &= (depth > 0.1) & (depth < 1e3)
    weight = conf.sum(1, keepdims=True)
    centre = (rays * conf[..., None]).sum(1) / np.maximum(weight, 1e-12)
    pelvis = np.where(conf[:, :1] > 0, rays[:, 0], np.where(weight > 0, centre, 0.0))
    return np.concatenate([pelvis, np.ones((len(rays), 1))], axis=-1) * depth[:, None], ok


def solve_root(rel: np.ndarray, rays: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """The root T minimising Σ_j w_j ‖(x_j + T)_{xy} − (u_j, v_j)(x_j + T)_z‖² (linear in T).

    Args:
        rel: (N, 17, 3) pelvis-relative pose, camera frame, metres.
        rays: (N, 17, 2) normalised image coordinates. conf: (N, 17) weights.

    Returns:
        (N, 3) root, metres; NaN where the joints do not determine it (fewer than two
        observed joints, or all on one ray).
    """
    n = rel.shape[0]
    # Each joint gives two equations A T = b: [1, 0, -u] T = u z - x and [0, 1, -v] T = v z - y.
    A = np.zeros((n, 17, 2, 3))
    A[..., 0, 0] = A[..., 1, 1] = 1.0
    A[..., 0, 2], A[..., 1, 2] = -rays[..., 0], -rays[..., 1]
    b = rays * rel[..., 2:3] - rel[..., :2]  # (N, 17, 2)
    w = np.sqrt(conf)[..., None, None]
    A, b = (A * w).reshape(n, 34, 3), (b * w[..., 0]).reshape(n, 34)
    AtA, Atb = np.einsum("nki,nkj->nij", A, A), np.einsum("nki,nk->ni", A, b)
    sv = np.linalg.svd(AtA, compute_uv=False)  # (N, 3) descending
    solvable = sv[:, -1] > 1e-9 * np.maximum(sv[:, 0], 1e-12)
    safe = np.where(solvable[:, None, None], AtA, np.eye(3))
    return np.where(solvable[:, None], np.linalg.solve(safe, Atb[..., None])[..., 0], np.nan)
