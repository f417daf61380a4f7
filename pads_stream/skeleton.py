"""Skeleton layouts: the canonical Human3.6M-17 joint order and the input layouts mapped onto it.

Every pose inside pads-stream is in the Human3.6M-17 order below. Input layouts (``coco17``) are
converted once, at the edge, by :func:`to_h36m`, which carries confidences along: a joint derived
from several source joints takes the lowest confidence of its sources, and a joint whose
confidence is 0 is "missing" everywhere downstream.
"""

from __future__ import annotations

import numpy as np

H36M_JOINTS = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine",
    "thorax", "neck_nose", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder",
    "r_elbow", "r_wrist",
)  # fmt: skip
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
NUM_JOINTS = 17
PELVIS = 0
# The person's own left and right limb joints (plots and viewers colour them apart).
H36M_LEFT = frozenset({4, 5, 6, 11, 12, 13})
H36M_RIGHT = frozenset({1, 2, 3, 14, 15, 16})
# Pairs (left, right) swapped by a mirror image.
H36M_LR_PAIRS = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))

COCO_JOINTS = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
    "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)  # fmt: skip

# Each H36M joint as the mean of COCO joints (common practice): pelvis = mid-hips,
# thorax = mid-shoulders, head = mid-eyes, neck/nose = nose; spine = mid(pelvis, thorax)
# is the mean of the four hip and shoulder joints.
_C = {name: i for i, name in enumerate(COCO_JOINTS)}
COCO_TO_H36M: tuple[tuple[int, ...], ...] = (
    (_C["l_hip"], _C["r_hip"]),
    (_C["r_hip"],), (_C["r_knee"],), (_C["r_ankle"],),
    (_C["l_hip"],), (_C["l_knee"],), (_C["l_ankle"],),
    (_C["l_hip"], _C["r_hip"], _C["l_shoulder"], _C["r_shoulder"]),
    (_C["l_shoulder"], _C["r_shoulder"]),
    (_C["nose"],),
    (_C["l_eye"], _C["r_eye"]),
    (_C["l_shoulder"],), (_C["l_elbow"],), (_C["l_wrist"],),
    (_C["r_shoulder"],), (_C["r_elbow"],), (_C["r_wrist"],),
)  # fmt: skip

LAYOUTS = ("h36m17", "coco17")


def to_h36m(kp: np.ndarray, conf: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert keypoints of an input layout to Human3.6M-17.

    Args:
        kp: (..., 17, D) joint coordinates in the source layout (pixels for 2D, metres for 3D).
        conf: (..., 17) confidences in [0, 1]; 0 marks a missing joint.
        layout: one of :data:`LAYOUTS`.

    Returns:
        (kp, conf) in H36M-17 order, shapes (..., 17, D) and (..., 17). A derived joint is the
        mean of its sources and takes the lowest source confidence; a missing source makes it
        missing (its coordinates are then the mean of whatever was sent, which is ignored).
    """
    if layout == "h36m17":
        return kp, conf
    if layout != "coco17":
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if kp.shape[-2] != 17 or conf.shape[-1] != 17:
        raise ValueError(f"coco17 needs 17 joints, got kp {kp.shape} conf {conf.shape}")
    out_kp = np.stack([kp[..., list(src), :].mean(axis=-2) for src in COCO_TO_H36M], axis=-2)
    out_conf = np.stack([conf[..., list(src)].min(axis=-1) for src in COCO_TO_H36M], axis=-1)
    return out_kp, out_conf


def bone_lengths(x: np.ndarray) -> np.ndarray:
    """Lengths of the 16 bones of H36M-17 poses.

    Args:
        x: (..., 17, 3) joint positions (any unit, any frame).

    Returns:
        (..., 16) lengths in the unit of ``x``, bone j ending at joint j + 1.
    """
    parents = list(H36M_PARENTS[1:])
    return np.linalg.norm(x[..., 1:, :] - x[..., parents, :], axis=-1)


def mirror(x: np.ndarray) -> np.ndarray:
    """Mirror H36M-17 poses in the camera's x axis and swap left and right joints.

    Args:
        x: (..., 17, 3) pelvis-relative joints in the camera frame.

    Returns:
        (..., 17, 3) the mirrored pose, still a plausible body (left stays the body's left).
    """
    out = x.copy()
    out[..., 0] *= -1
    for left, right in H36M_LR_PAIRS:
        out[..., [left, right], :] = out[..., [right, left], :]
    return out


def noise_from_symmetry(poses: np.ndarray) -> np.ndarray:
    """The per-coordinate noise std of poses, from their left/right bone-length differences.

    Paired bones of a symmetric skeleton are equally long (within millimetres on real people);
    independent noise of std σ per coordinate on every joint makes each length off by about
    N(0, 2σ²), so a pair's difference by N(0, 4σ²). RMS over the six pairs, halved.

    Args:
        poses: (N, 17, 3) H36M-17 joints, metres.

    Returns:
        (N,) metres.
    """
    length = bone_lengths(poses)  # (N, 16), bone j ending at joint j + 1
    diff = np.stack([length[:, left - 1] - length[:, right - 1] for left, right in H36M_LR_PAIRS], axis=1)
    return np.sqrt(np.mean(diff**2, axis=1)) / 2
