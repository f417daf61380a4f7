"""Root (pelvis) position for rigs that send only 2D keypoints and intrinsics.

1. :func:`initial_root`: depth from body size — the mean skeleton's total bone length over
   the 2D skeleton's total bone length in normalised image coordinates, times the median
   foreshortening of bones seen by a camera; the pelvis ray scaled to that depth.
2. :func:`bone_scale`: with a pose fitted on the rays at that depth, the depth at which its bones
   have the mean lengths (the median over confident bones); root and pose are rescaled together.
Constants measured on training views by ``tools/calibrate_root_prior.py``.
"""

from __future__ import annotations

import numpy as np

from ..common.robust import masked_median
from .skeleton import H36M_PARENTS, MEAN_BONES_M

FORESHORTENING = 0.8792  # median of Z · Σℓ2d / Σℓ3d over virtual-rig views


def initial_root(rays: np.ndarray, conf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-size guess of the root.

    Args:
        rays: (N, 17, 2) normalised image coordinates K⁻¹[u, v, 1] (x/z, y/z).
        conf: (N, 17) confidences; each bone is weighted in both sums by the lower confidence
            of its ends (a missing end leaves it out; a doubtful one counts less).

    Returns:
        (root (N, 3) in the camera frame, metres; ok (N,) bool). A person with no observed bone
        of measurable 2D length gets ok False and a placeholder root 5 m along its rays.
    """
    parents = list(H36M_PARENTS[1:])
    seen = np.minimum(conf[:, 1:], conf[:, parents])  # (N, 16) a bone counts by its less sure end
    l2d = np.linalg.norm(rays[:, 1:] - rays[:, parents], axis=-1)
    size_2d = (l2d * seen).sum(axis=1)
    size_3d = (MEAN_BONES_M * seen).sum(axis=1)
    ok = size_2d > 1e-6 * np.maximum(size_3d, 1e-6)
    depth = np.where(ok, FORESHORTENING * size_3d / np.where(ok, size_2d, 1.0), 5.0)
    ok &= (depth > 0.1) & (depth < 1e3)
    centre = (rays * conf[..., None]).sum(1) / np.maximum(conf.sum(1, keepdims=True), 1e-12)
    guess = np.where(conf[:, :1] > 0, rays[:, 0], unseen_pelvis(rays, conf, centre))
    return np.concatenate([guess, np.ones((len(rays), 1))], axis=-1) * depth[:, None], ok


def unseen_pelvis(rays: np.ndarray, conf: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(N, 2) where an unseen pelvis projects (a COCO detector's pelvis is unseen with either hip):
    between the hips; else from the one hip seen, moved across the body as the shoulders show it
    (the same-side shoulder to the shoulders' midpoint, scaled by the mean hip / shoulder bone);
    else at that hip; else at ``centre`` (N, 2), the seen joints' centre, nearer the chest.

    Held-out S8 views, GT 2D, root unknown, one hip (so the pelvis and spine) unseen: seen-joint
    MPJPE 121 mm at that hip, 61 mm moved across (48 mm with every joint seen).
    """
    r_hip, l_hip = conf[:, [1]] > 0, conf[:, [4]] > 0
    shoulders = (conf[:, [11]] > 0) & (conf[:, [14]] > 0)
    hip = np.where(r_hip, rays[:, 1], rays[:, 4])
    same_shoulder = np.where(r_hip, rays[:, 14], rays[:, 11])
    across = hip + (0.5 * (rays[:, 11] + rays[:, 14]) - same_shoulder) * (MEAN_BONES_M[0] / MEAN_BONES_M[10])
    one_hip = np.where(shoulders, across, hip)
    return np.where(r_hip & l_hip, 0.5 * (rays[:, 1] + rays[:, 4]), np.where(r_hip | l_hip, one_hip, centre))


def bone_scale(
    rel: np.ndarray, conf: np.ndarray, min_conf: float = 0.5, reference: np.ndarray | None = None
) -> np.ndarray:
    """How much larger the mean skeleton (or ``reference`` (N, 16) metres, a person's own) is than a
    fitted pose: the median, over bones with both ends confident, of that bone length / fitted bone
    length.

    A pose fitted onto the 2D rays at a wrong depth d is scaled by d / d_true, so multiplying both
    the root and the pelvis-relative pose by this factor moves the person to the depth at which it
    has a typical body size, without moving any joint off its ray.

    Args:
        rel: (N, 17, 3) pelvis-relative pose fitted on the rays, metres.
        conf: (N, 17) confidences.

    Returns:
        (N,) factors; 1 where no bone is confident enough.
    """
    parents = list(H36M_PARENTS[1:])
    seen = np.minimum(conf[:, 1:], conf[:, parents]) > min_conf  # (N, 16)
    fitted = np.linalg.norm(rel[:, 1:] - rel[:, parents], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(seen & (fitted > 1e-6), (MEAN_BONES_M if reference is None else reference) / fitted, np.nan)
    median, _ = masked_median(ratio, np.isfinite(ratio))
    return np.clip(np.nan_to_num(median, nan=1.0), 0.5, 2.0)
