"""Motion data: loaders for the formats people have, and the camera-frame augmentation.

Loaders return poses in metres in the data's own "world" frame, Y up, pelvis at the origin.
:func:`augment_to_camera` turns them into what the prior models: pelvis-relative poses in the
camera frame (OpenCV axes, metres), seen from random headings, elevations and rolls of real
camera installations, with varied bone lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry.camera import rotation_x, rotation_y, rotation_z, yup_to_camera
from ..geometry.skeleton import H36M_LR_PAIRS, H36M_PARENTS, NUM_JOINTS, mirror
from .bvh import JointMapping, load_bvh_h36m

# VideoPose3D's 32-joint Human3.6M skeleton: the 17 joints kept, in H36M-17 order.
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")  # Human3.6M subjects the prior trains on
DEFAULT_DATA = "../shared/data"  # the data folder commands read unless given --data DIR
TEST_SUBJECTS = ("S9", "S11")


def data_file(data: str | Path, *parts: str) -> Path:
    """``data/parts...``, or FileNotFoundError naming the ``--data`` option when it is absent."""
    path = Path(data, *parts)
    if not path.exists():
        hint = ""
        if Path(data).name == parts[0] and Path(Path(data).parent, *parts).exists():  # --data .../h36m
            hint = f" (did you mean --data {Path(data).parent}?)"
        raise FileNotFoundError(f"{path} not found: pass --data DIR, a folder holding {'/'.join(parts)}{hint}")
    return path


def h36m_path(data: str | Path) -> str:
    """The Human3.6M poses file of a data folder (see the data README)."""
    return str(data_file(data, "h36m", "positions_3d_25hz.npz"))


def test_path(data: str | Path) -> str:
    """The V-H36M test set of a data folder."""
    return str(data_file(data, "h36m", "test_vh36m.npz"))


def to_17(poses: np.ndarray) -> np.ndarray:
    """(F, 17|32, 3) Human3.6M joints to (F, 17, 3) float32, pelvis-relative."""
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[1] not in (17, 32):
        raise ValueError(f"poses must be (F, 17 or 32, 3), got {poses.shape}")
    if poses.shape[1] == 32:
        poses = poses[:, list(H36M32_TO_17)]
    poses = poses.astype(np.float32)
    return poses - poses[:, :1]


def load_positions_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read a VideoPose3D-style ``positions_3d`` npz as {subject: {action: (F, 17, 3) m}}."""
    data = np.load(path, allow_pickle=True)["positions_3d"].item()
    return {s: {a: to_17(np.asarray(x)) for a, x in acts.items()} for s, acts in data.items()}


HOLDOUT_TAKES = "S8:_2"  # "subject:suffix": training-subject takes held out for validation and tuning


def split_holdout(data: dict[str, dict[str, np.ndarray]], holdout: str) -> tuple[dict, dict]:
    """Split {subject: {take: poses}} by a ``"subject:suffix"`` rule into (kept, held out)."""
    subject, _, suffix = holdout.partition(":")
    kept: dict[str, dict[str, np.ndarray]] = {}
    held: dict[str, dict[str, np.ndarray]] = {}
    for s, takes in data.items():
        for take, x in takes.items():
            (held if s == subject and take.endswith(suffix) else kept).setdefault(s, {})[take] = x
    return kept, held


def h36m_poses(path: str | Path, subjects: tuple[str, ...], stride: int = 1) -> np.ndarray:
    """Concatenate the (F, 17, 3) metre poses of ``subjects``, every ``stride``-th frame."""
    data = load_positions_3d(path)
    missing = [s for s in subjects if s not in data]
    if missing:
        raise ValueError(f"{path}: subjects {missing} absent; present {sorted(data)}")
    return np.concatenate([x[::stride] for s in subjects for x in data[s].values()])


def bvh_poses(root: str | Path, mapping: JointMapping, stride: int = 1) -> np.ndarray:
    """All ``*.bvh`` files under ``root`` as (F, 17, 3) metre poses, pelvis-relative, Y up."""
    files = sorted(Path(root).rglob("*.bvh"))
    if not files:
        raise ValueError(f"no .bvh files under {root}")
    return np.concatenate([to_17(load_bvh_h36m(f, mapping)[0][::stride]) for f in files])


def load_plain(path: str | Path) -> np.ndarray:
    """A plain ``.npy`` array of (N, 17, 3) metre poses, pelvis-relative."""
    return to_17(np.load(path))


@dataclass(frozen=True)
class AugmentConfig:
    """How training poses are placed in front of a camera (angles in degrees)."""

    pitch: tuple[float, float] = (-10.0, 35.0)  # camera elevation, + looks down at the person
    roll_std: float = 3.0  # camera roll, clipped at 3 std
    scale: tuple[float, float] = (0.88, 1.12)  # whole-body size
    bone_std: float = 0.05  # per-bone length factor, left and right alike
    # body proportions: one factor each for the arms, the legs and the trunk (with neck and head),
    # std per group, clipped at 2.5 std (0: off); real adults' limb/trunk ratios differ by about ±6 %
    proportion_std: float = 0.0
    mirror: bool = True  # mirror half the poses (left and right swapped)


def augment_to_camera(poses: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Random camera views of Y-up poses, with varied bone lengths.

    Args:
        poses: (N, 17, 3) metres, Y up, pelvis at the origin.
        rng: the random generator (the only source of randomness).
        cfg: augmentation ranges.

    Returns:
        (N, 17, 3) float32 pelvis-relative joints in the camera frame (OpenCV), metres.
    """
    n = poses.shape[0]
    x = vary_bones(poses.astype(np.float64), rng, cfg.scale, cfg.bone_std, cfg.proportion_std)
    heading = rng.uniform(0, 2 * np.pi, n)
    pitch = np.deg2rad(rng.uniform(*cfg.pitch, n))
    roll = np.deg2rad(np.clip(rng.normal(0, cfg.roll_std, n), -3 * cfg.roll_std, 3 * cfg.roll_std))
    x = np.einsum("nij,nkj->nki", rotation_y(heading), x)
    # A camera pitched down by θ sees the world rotated by -θ about its x axis (y down).
    rot = rotation_z(roll) @ rotation_x(-pitch)
    x = np.einsum("nij,nkj->nki", rot, yup_to_camera(x))
    if cfg.mirror:
        flip = rng.random(n) < 0.5
        x[flip] = mirror(x[flip])
    return x.astype(np.float32)


# Bone groups for body proportions, by the joint each bone ends at (H36M-17): arms, legs, trunk.
PROPORTION_GROUPS = ((12, 13, 15, 16), (2, 3, 5, 6), (1, 4, 7, 8, 9, 10, 11, 14))


def vary_bones(poses: np.ndarray, rng: np.random.Generator, scale: tuple[float, float], bone_std: float,
               proportion_std: float = 0.0) -> np.ndarray:  # fmt: skip
    """Rescale every bone of (N, 17, 3) poses: one body factor times a per-bone factor, times
    (when ``proportion_std`` > 0) one factor per group of :data:`PROPORTION_GROUPS`.

    Left and right bones get the same factor; joints are rebuilt from the pelvis outward, so
    joint angles are kept and only lengths change.
    """
    n = poses.shape[0]
    factor = rng.normal(1.0, bone_std, (n, NUM_JOINTS)).clip(1 - 3 * bone_std, 1 + 3 * bone_std)
    for left, right in H36M_LR_PAIRS:
        factor[:, left] = factor[:, right]
    factor *= rng.uniform(*scale, (n, 1))
    if proportion_std > 0:
        for group in PROPORTION_GROUPS:
            g = rng.normal(1.0, proportion_std, (n, 1)).clip(1 - 2.5 * proportion_std, 1 + 2.5 * proportion_std)
            factor[:, list(group)] *= g
    out = np.zeros_like(poses)
    for j in range(1, NUM_JOINTS):  # parents precede children in H36M order
        p = H36M_PARENTS[j]
        out[:, j] = out[:, p] + factor[:, j : j + 1] * (poses[:, j] - poses[:, p])
    return out
