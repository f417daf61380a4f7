"""The Human3.6M-17 skeleton: joint order, parents, left and right, mean bones, bone math.

Every pose inside pads-stream is in this order. Input layouts (COCO-17, Halpe-26, ...) are
converted once, at the edge (:mod:`pads_stream.geometry.layout`); a joint whose confidence is 0 is
"missing" everywhere downstream.
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
# The limbs (H36M indices, from the body outwards), as the evaluations hide them.
LIMBS = {
    "left arm": (11, 12, 13),
    "right arm": (14, 15, 16),
    "left leg": (4, 5, 6),
    "right leg": (1, 2, 3),
}
# Pairs (left, right) swapped by a mirror image.
H36M_LR_PAIRS = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))

# Mean H36M-17 bone lengths of S1, S5-S7 (m), bone j ending at joint j + 1 (tools/calibrate_root_prior.py).
MEAN_BONES_M = np.array([0.1329, 0.4429, 0.4541, 0.1329, 0.4429, 0.4541, 0.2335, 0.2571,
                         0.1211, 0.1150, 0.1510, 0.2789, 0.2517, 0.1510, 0.2789, 0.2517])  # fmt: skip
# The range of a published bone, as factors of the mean adult bone: a small child (about 0.5)
# to a very tall adult (about 1.3), widened for a single frame's estimation error. Outside it a
# bone is absurd (a 40 cm pelvis-to-hip, a 1 m shin) and the pose is not published.
BONE_RANGE = (0.2, 2.0)
ANKLE_HEIGHT_M = 0.08  # the ankle joint above the floor, standing, metres (stature = this + the upright chain)
UPRIGHT = 0.965  # an upright stance's ankle-to-head height over the summed leg and trunk bones (Human3.6M)
STATURE_RANGE_M = (0.5, 2.5)  # a person's stature as given (a small child to the tallest adults), metres


def fill_from_ancestors(x: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Place every unseen joint at its nearest seen ancestor (an unseen pelvis at the origin).

    A missing joint then starts on its own body, never at an arbitrary coordinate (a zeroed
    keypoint's ray passes through pixel (0, 0), metres from the person).

    Args:
        x: (N, 17, 3) pelvis-relative joints, metres (values of unseen joints are ignored).
        seen: (N, 17) bool, True where the joint was observed.

    Returns:
        (N, 17, 3) a copy with the unseen joints filled.
    """
    out = np.array(x, dtype=np.float64)
    out[:, PELVIS] = np.where(seen[:, PELVIS, None], out[:, PELVIS], 0.0)
    for j in range(1, NUM_JOINTS):  # parents precede children
        out[:, j] = np.where(seen[:, j, None], out[:, j], out[:, H36M_PARENTS[j]])
    return out


def bone_lengths(x: np.ndarray) -> np.ndarray:
    """Lengths of the 16 bones of H36M-17 poses.

    Args:
        x: (..., 17, 3) joint positions (any unit, any frame).

    Returns:
        (..., 16) lengths in the unit of ``x``, bone j ending at joint j + 1.
    """
    parents = list(H36M_PARENTS[1:])
    return np.linalg.norm(x[..., 1:, :] - x[..., parents, :], axis=-1)


def stature_m(bones: np.ndarray) -> np.ndarray:
    """(..., 16) bone lengths, metres -> (...) standing height, floor to head top, metres (the legs
    and the trunk upright, left and right averaged, over the ankle's height)."""
    b = np.asarray(bones)
    legs = (b[..., 1] + b[..., 4]) / 2 + (b[..., 2] + b[..., 5]) / 2
    return UPRIGHT * (legs + b[..., 6] + b[..., 7] + b[..., 8] + b[..., 9]) + ANKLE_HEIGHT_M


def size_from_stature(stature: np.ndarray | float, bones: np.ndarray = MEAN_BONES_M) -> np.ndarray:
    """The factor that scales a skeleton of ``bones`` (16,) metres — by default the mean adult's
    (:data:`MEAN_BONES_M`, 1.65 m tall by :func:`stature_m`) — to a person of ``stature`` metres
    (the upright chain scales, the ankle's height does not); NaN stays NaN (unknown)."""
    upright = float(stature_m(bones)) - ANKLE_HEIGHT_M
    return (np.asarray(stature, dtype=np.float64) - ANKLE_HEIGHT_M) / upright


def bones_plausible(x: np.ndarray) -> np.ndarray:
    """(N,) bool: every bone of (N, 17, 3) poses (metres) within :data:`BONE_RANGE` × its mean
    adult length (:data:`MEAN_BONES_M`); False for non-finite poses."""
    with np.errstate(invalid="ignore"):
        ratio = bone_lengths(x) / MEAN_BONES_M
        return ((ratio >= BONE_RANGE[0]) & (ratio <= BONE_RANGE[1])).all(axis=-1)


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


def noise_from_symmetry(poses: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
    """The per-coordinate noise std of poses, from their left/right bone-length differences.

    Paired bones of a symmetric skeleton are equally long (within millimetres on real people);
    independent noise of std σ per coordinate on every joint makes each length off by about
    N(0, 2σ²), so a pair's difference by N(0, 4σ²). RMS over the six pairs, halved.

    Args:
        poses: (N, 17, 3) H36M-17 joints, metres.
        seen: (N, 16) bool, the bones to count (default all): a pair counts where both are seen.

    Returns:
        (N,) metres; 0 where no pair is seen.
    """
    length = bone_lengths(poses)  # (N, 16), bone j ending at joint j + 1
    left, right = (np.array([pair[side] for pair in H36M_LR_PAIRS]) - 1 for side in (0, 1))
    paired = np.ones((len(length), len(left)), bool) if seen is None else seen[:, left] & seen[:, right]
    diff2 = np.where(paired, (length[:, left] - length[:, right]) ** 2, 0.0)
    return np.sqrt(diff2.sum(axis=1) / np.maximum(paired.sum(axis=1), 1)) / 2
