"""BVH motion files: parse any hierarchy and channel order, forward kinematics, joint mapping.

A joint's local translation is its position channels when it has them (as BVH exporters such
as Bandai Namco's write them: the channels hold the offset, moving only for the root) and its
OFFSET otherwise. Rotation channels compose in the order they are listed (``Zrotation
Xrotation Yrotation`` is R = Rz · Rx · Ry), degrees, applied to column vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import rotation_x, rotation_y, rotation_z
from .skeleton import H36M_JOINTS

_ROTATIONS = {"Xrotation": rotation_x, "Yrotation": rotation_y, "Zrotation": rotation_z}
_POSITIONS = ("Xposition", "Yposition", "Zposition")


@dataclass(frozen=True)
class Bvh:
    """A parsed BVH file.

    Attributes:
        names: joint names in file order (End Sites excluded).
        parents: parent index of each joint, -1 for the root.
        offsets: (J, 3) OFFSET of each joint, file units.
        channels: channel names of each joint, in file order.
        motion: (F, C) channel values per frame (positions in file units, angles in degrees).
        frame_time: seconds per frame.
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    motion: np.ndarray
    frame_time: float


def parse_bvh(text: str) -> Bvh:
    """Parse BVH text into a :class:`Bvh`; raises ValueError on a malformed file."""
    tokens = text.split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    i = 0
    try:
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                i += 2
            elif tok == "End":  # End Site: a leaf with an offset only, skipped
                depth = 0
                i += 2
                while True:
                    depth += {"{": 1, "}": -1}.get(tokens[i], 0)
                    i += 1
                    if depth == 0:
                        break
            elif tok == "{":
                stack.append(len(names) - 1)
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                offsets.append([float(v) for v in tokens[i + 1 : i + 4]])
                i += 4
            elif tok == "CHANNELS":
                n = int(tokens[i + 1])
                channels.append(tuple(tokens[i + 2 : i + 2 + n]))
                i += 2 + n
            else:  # HIERARCHY and anything unknown
                i += 1
        n_frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.asarray(tokens[i + 6 :], dtype=np.float64)
    except (IndexError, ValueError) as err:
        raise ValueError(f"malformed BVH: {err}") from err
    n_channels = sum(len(c) for c in channels)
    if len(offsets) != len(names) or len(channels) != len(names):
        raise ValueError("malformed BVH: every joint needs one OFFSET and one CHANNELS line")
    if values.size != n_frames * n_channels:
        raise ValueError(f"malformed BVH: {values.size} values for {n_frames} x {n_channels}")
    return Bvh(
        names=tuple(names),
        parents=tuple(parents),
        offsets=np.asarray(offsets),
        channels=tuple(channels),
        motion=values.reshape(n_frames, n_channels),
        frame_time=frame_time,
    )


def forward_kinematics(bvh: Bvh) -> np.ndarray:
    """Global joint positions of every frame.

    Returns:
        (F, J, 3) positions in the file's units and world frame.
    """
    n_frames = bvh.motion.shape[0]
    glob_rot: list[np.ndarray] = []
    glob_pos: list[np.ndarray] = []
    col = 0
    for j, chans in enumerate(bvh.channels):
        local_pos = np.broadcast_to(bvh.offsets[j], (n_frames, 3)).copy()
        local_rot = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
        has_position = any(c in _POSITIONS for c in chans)
        if has_position:
            local_pos[:] = 0.0
        for c in chans:
            values = bvh.motion[:, col]
            col += 1
            if c in _POSITIONS:
                local_pos[:, _POSITIONS.index(c)] = values
            elif c in _ROTATIONS:
                local_rot = local_rot @ _ROTATIONS[c](np.deg2rad(values))
            else:
                raise ValueError(f"unknown BVH channel {c!r} on joint {bvh.names[j]!r}")
        p = bvh.parents[j]
        if p < 0:
            glob_rot.append(local_rot)
            glob_pos.append(local_pos)
        else:
            glob_rot.append(glob_rot[p] @ local_rot)
            glob_pos.append(glob_pos[p] + np.einsum("fij,fj->fi", glob_rot[p], local_pos))
    return np.stack(glob_pos, axis=1)


@dataclass(frozen=True)
class JointMapping:
    """How to build H36M-17 joints from a BVH skeleton's named joints.

    Each H36M joint is a weighted sum of source joints (weights summing to 1; weights outside
    [0, 1] extrapolate, which is how absent joints such as the nose are derived).

    Attributes:
        scale: metres per file unit (0.01 for centimetres).
        weights: for each H36M joint in order, a mapping of source joint name to weight.
    """

    scale: float
    weights: tuple[dict[str, float], ...]

    @classmethod
    def from_json(cls, path: str | Path) -> JointMapping:
        """Load a mapping file such as ``configs/bandai_to_h36m.json``."""
        spec = json.loads(Path(path).read_text())
        unknown = set(spec) - {"scale", "joints", "comment"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        joints = spec["joints"]
        missing = [n for n in H36M_JOINTS if n not in joints]
        if missing or len(joints) != len(H36M_JOINTS):
            raise ValueError(f"{path}: needs exactly the H36M joints, missing {missing}")
        weights = tuple(dict(joints[n]) for n in H36M_JOINTS)
        for name, w in zip(H36M_JOINTS, weights, strict=True):
            if abs(sum(w.values()) - 1.0) > 1e-6:
                raise ValueError(f"{path}: weights of {name} sum to {sum(w.values())}, not 1")
        return cls(scale=float(spec["scale"]), weights=weights)

    def apply(self, names: tuple[str, ...], positions: np.ndarray) -> np.ndarray:
        """Map (F, J_src, 3) file-unit positions to (F, 17, 3) H36M joints in metres."""
        index = {n: i for i, n in enumerate(names)}
        matrix = np.zeros((len(self.weights), len(names)))
        for k, w in enumerate(self.weights):
            for src, weight in w.items():
                if src not in index:
                    raise ValueError(f"mapping names joint {src!r}, absent from the BVH")
                matrix[k, index[src]] = weight
        return np.einsum("kj,fjc->fkc", matrix, positions) * self.scale


def load_bvh_h36m(path: str | Path, mapping: JointMapping) -> tuple[np.ndarray, float]:
    """Read a BVH file as H36M-17 poses.

    Returns:
        ((F, 17, 3) joints in metres in the file's world frame (Y up for most BVH), fps).
    """
    bvh = parse_bvh(Path(path).read_text())
    return mapping.apply(bvh.names, forward_kinematics(bvh)), 1.0 / bvh.frame_time
