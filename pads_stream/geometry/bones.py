"""Bone lengths that a published skeleton keeps: the human range, a person's own skeleton, and the
fit to the 2D rays that holds them.

Bone j (of 16, H36M parent order) ends at joint j + 1 (:data:`pads_stream.geometry.skeleton.H36M_PARENTS`).
Lengths are metres; poses (N, 17, 3) are pelvis-relative metres in the camera frame.

- :func:`range_targets`: with no skeleton known, each bone is pulled into the human range about
  the person's own size (the median of its bones over the mean adult's): real adults differ from
  the prior's skeleton by about ±10 % per bone, so the range is a band, not one length.
- :func:`skeleton_targets`: a track's learned skeleton, mixed with the range by how sure it is.
- :func:`hold_bones`: every bone moved to its target length by the smallest moves of its ends.
- :func:`fit_rays`: the final move of the joints onto their 2D rays with every bone's length kept
  (rounds of the free move per joint and the bone projection; a chain rebuilt from the pelvis
  outwards instead carries each joint's depth error to its children: 78 against 52 mm on V-H36M).
- :func:`measured_bones`: a person's bones as the 2D rays measure them (what a track learns).
"""

from __future__ import annotations

import numpy as np

from .camera import snap_to_rays, unit_rays
from .rootfind import bone_scale
from .skeleton import H36M_PARENTS, MEAN_BONES_M, NUM_JOINTS, bone_lengths, noise_from_symmetry

BODY_SIZE_RANGE = (0.5, 2.0)  # a person's size as a factor of the mean adult (an estimated root rescales it after)
BONE_BAND = 0.1  # each bone within ±10 % of the mean adult's at the person's size
MEASURE_CONF = 0.5  # a joint's confidence from which its 2D ray measures the person's bones


def body_size(lengths: np.ndarray) -> np.ndarray:
    """(N,) a person's size as a factor of the mean adult: the median of its (N, 16) bone lengths
    (metres) over :data:`MEAN_BONES_M`, within :data:`BODY_SIZE_RANGE`."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.median(lengths / MEAN_BONES_M, axis=-1)
    return np.clip(np.nan_to_num(ratio, nan=1.0), *BODY_SIZE_RANGE)


def range_targets(lengths: np.ndarray) -> np.ndarray:
    """(N, 16) metres: each of the (N, 16) ``lengths`` clipped into ±:data:`BONE_BAND` of the mean
    adult's bone at the person's :func:`body_size`."""
    mean = body_size(lengths)[:, None] * MEAN_BONES_M
    return np.clip(np.nan_to_num(lengths, nan=0.0), (1 - BONE_BAND) * mean, (1 + BONE_BAND) * mean)


def skeleton_targets(lengths: np.ndarray, bones: np.ndarray | None, weight: np.ndarray | None,
                     relative: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N, 16) target lengths (metres): :func:`range_targets` of the current ``lengths``, moved
    towards a known skeleton ``bones`` (N, 16) by ``weight`` (N,) in [0, 1]; rows of ``bones``
    with a NaN, or weight 0, keep the range. Rows ``relative`` (N,) bool take the skeleton's
    proportions at the current pose's size (an estimated root: its depth, so its size, is set
    afterwards by the body-size prior or the floor)."""
    target = range_targets(lengths)
    if bones is None:
        return target
    w = np.zeros(len(lengths)) if weight is None else np.asarray(weight, dtype=np.float64)
    known = np.isfinite(bones).all(axis=1) & (w > 0)
    b = np.where(known[:, None], bones, 1.0)
    if relative is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            size = np.nan_to_num(np.median(lengths / b, axis=1), nan=1.0)
        b = np.where(np.asarray(relative, bool)[:, None], b * size[:, None], b)
    w = np.where(known, np.clip(w, 0.0, 1.0), 0.0)[:, None]
    return (1 - w) * target + w * b


def held(x: np.ndarray, bones: np.ndarray | None, weight: np.ndarray | None, relative: np.ndarray | None = None,
         fixed: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(N, 17, 3) ``x`` (metres) with its bones at :func:`skeleton_targets` of its own lengths,
    the joints ``fixed`` (N, 17) bool left where they are (:func:`hold_bones`)."""
    return hold_bones(x, skeleton_targets(bone_lengths(x), bones, weight, relative), fixed)


def _levels() -> list[tuple[np.ndarray, np.ndarray]]:
    """The bones by the depth of their child joint: (children, parents) per depth; within a depth no
    two bones share a child, and siblings share their parent's move."""
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[H36M_PARENTS[j]] + 1
    out = []
    for d in range(1, max(depth) + 1):
        children = np.array([j for j in range(1, NUM_JOINTS) if depth[j] == d])
        out.append((children, np.array([H36M_PARENTS[j] for j in children])))
    return out


LEVELS = _levels()


def hold_bones(x: np.ndarray, target: np.ndarray, fixed: np.ndarray | None = None, sweeps: int = 4) -> np.ndarray:
    """(N, 17, 3) ``x`` with its bones moved to their ``target`` lengths (N, 16) by the smallest
    moves of both ends (position-based constraint projection, ``sweeps`` passes over the bones,
    one depth of the tree at a time): an error is shared by a bone's ends instead of carried down
    the chain, as rebuilding the joints from the pelvis outwards would. The pelvis and the joints
    ``fixed`` (N, 17) bool stay where they are (a bone between two of them keeps its length)."""
    out = np.array(x, dtype=np.float64)
    pinned = np.zeros(out.shape[:2], bool) if fixed is None else np.array(fixed, bool)
    pinned[:, 0] = True
    plan = []
    for children, parents in LEVELS:
        pc, pp = pinned[:, children, None], pinned[:, parents, None]
        siblings = np.bincount(parents, minlength=NUM_JOINTS)[parents][:, None]  # a shared parent moves once
        move_child = np.where(pc, 0.0, np.where(pp, 1.0, 0.5))
        move_parent = np.where(pp, 0.0, np.where(pc, 1.0, 0.5)) / siblings
        plan.append((children, parents, move_child, move_parent, target[:, children - 1, None]))
    for _ in range(sweeps):
        for children, parents, move_child, move_parent, length in plan:
            d = out[:, children] - out[:, parents]
            n = np.sqrt(np.sum(d * d, axis=-1, keepdims=True))
            corr = d * (1 - length / np.maximum(n, 1e-9)) * (n > 1e-9)
            out[:, children] -= move_child * corr
            np.add.at(out, (slice(None), parents), move_parent * corr)
    return out


def fit_rays(x: np.ndarray, root: np.ndarray, unit: np.ndarray, conf: np.ndarray, power: float,
             bones: np.ndarray | None = None, weight: np.ndarray | None = None,
             relative: np.ndarray | None = None, rounds: int = 3, sweeps: int = 2) -> np.ndarray:  # fmt: skip
    """Move the joints towards their rays while keeping every bone: rounds of the free move per
    joint (:func:`pads_stream.geometry.camera.snap_to_rays`, by ``conf ** power``) and the bone projection
    (:func:`hold_bones`, ``sweeps`` passes; three times as many in the last round), ending on the
    bones. The targets are :func:`skeleton_targets` of the lengths after the first free move (what
    the rays say at this root), with ``bones``/``weight``.

    Args:
        x: (N, 17, 3) pelvis-relative joints, camera frame, metres (the sampled pose).
        root: (N, 3) pelvis, camera frame, metres (it stays).
        unit: (N, 17, 3) unit ray directions (camera frame).
        conf: (N, 17) confidences in [0, 1].
        power: confidence exponent (0 or less: bones held, no move towards the rays).
        bones: (N, 16) a known skeleton, metres (NaN rows: none). weight: (N,) its weight in [0, 1].
        relative: (N,) bool, rows whose skeleton counts by its proportions (:func:`skeleton_targets`).

    Returns:
        (N, 17, 3) pelvis-relative joints, metres.
    """
    out = np.asarray(x, dtype=np.float64)
    target = None
    for k in range(rounds if power > 0 else 1):
        if power > 0:
            out = snap_to_rays(out, unit, root, conf, power)
        if target is None:
            target = skeleton_targets(bone_lengths(out), bones, weight, relative)
        last = k == (rounds if power > 0 else 1) - 1
        out = hold_bones(out, target, sweeps=3 * sweeps if last else sweeps)  # the last ends on the bones
    return out


def sized_on_floor(rel: np.ndarray, root: np.ndarray, conf: np.ndarray, R: np.ndarray, t: np.ndarray,
                   bones: np.ndarray, weight: np.ndarray, rows: np.ndarray,
                   ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Persons whose root the floor set, scaled about their lowest joint towards their own
    skeleton's size: one frame's contact is a noisy measure of a person's size, a track's skeleton
    (learned at the floor's scale over many frames) a steady one.

    Args:
        rel: (N, 17, 3) pelvis-relative joints, metres, camera frame. root: (N, 3) metres.
        conf: (N, 17) confidences (the bones with both ends above 0.5 set the size).
        R: (N, 3, 3), t: (N, 3) the camera's extrinsics, X_cam = R X_world + t (floor z = 0).
        bones: (N, 16) each person's skeleton, metres (NaN rows: none). weight: (N,) in [0, 1],
            the share of the skeleton's size taken (in log scale).
        rows: (N,) bool, the persons to size.

    Returns:
        (rel, root): the lowest joint stays on the floor; the root moves by the size change times
        its height above that joint (a centimetre or two), off its ray by as much.
    """
    rows = rows & np.isfinite(bones).all(axis=1) & (weight > 0)
    if not rows.any():
        return rel, root
    k = np.flatnonzero(rows)
    own = bone_scale(rel[k], conf[k], reference=bones[k]) ** np.clip(weight[k], 0.0, 1.0)
    joints = rel[k] + root[k, None]
    height = np.einsum("nji,nkj->nki", R[k], joints)[..., 2]  # world z, up to the camera's height
    lowest = joints[np.arange(len(k)), np.argmin(height, axis=1)]
    rel, root = rel.copy(), root.copy()
    root[k] = lowest + own[:, None] * (root[k] - lowest)
    rel[k] = rel[k] * own[:, None, None]
    return rel, root


def measured_bones(rel: np.ndarray, root: np.ndarray, rays: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(N, 16) bone lengths (metres) of estimates (rel (N, 17, 3), root (N, 3)) as the 2D rays
    (N, 17, 2) measure them: every joint seen with confidence of at least :data:`MEASURE_CONF`
    moved onto its ray (at the estimate's depth), NaN for a bone with a less sure end.

    Two biases removed: a partial pull (the sampler's ``conf ** snap_power``) would leave part of
    the prior's proportions in the measurement (on detector-like 2D it read Bandai's short thorax
    10 % long); and the 2D noise lengthens every bone, by σ²/L (short bones most: shoulders 7 %),
    so each frame's squared lengths lose 4σ², σ² (m², per coordinate at the person) estimated
    from the frame's left/right differences of the bones seen
    (:func:`.skeleton.noise_from_symmetry`). Issue 27, Bandai dataset-2 with detected 2D:
    bones within ±10 % 95.3 → 99.4 % at 30 Hz (docs/bones.md)."""
    sure = conf >= MEASURE_CONF
    both = sure[:, 1:] & sure[:, list(H36M_PARENTS[1:])]
    with np.errstate(invalid="ignore"):
        snapped = snap_to_rays(rel.astype(np.float64), unit_rays(rays), root, sure.astype(np.float64), 1.0)
        lengths, sigma = bone_lengths(snapped), noise_from_symmetry(snapped, both)
    lengths = np.sqrt(np.maximum(lengths**2 - 4 * sigma[:, None] ** 2, (0.5 * lengths) ** 2))
    return np.where(both, lengths, np.nan)
