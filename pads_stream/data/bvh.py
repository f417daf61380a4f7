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

from ..geometry.camera import rotation_x, rotation_y, rotation_z
from ..geometry.skeleton import H36M_JOINTS

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


# -- writing -----------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frames (columns) from a primary direction ``a`` and a second ``b``."""
    x = _unit(a)
    z = _unit(np.cross(a, b))
    return np.stack([x, np.cross(z, x), z], axis=-1)


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the smallest rotations taking unit vectors ``a`` to unit vectors ``b``."""
    v, c = np.cross(a, b), np.sum(a * b, axis=-1)[..., None, None]
    vx = np.zeros(v.shape[:-1] + (3, 3))
    vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    vx = vx - np.swapaxes(vx, -1, -2)
    return np.eye(3) + vx + vx @ vx / np.maximum(1 + c, 1e-9)  # Rodrigues; a ≈ −b is left near identity


def bvh_skeleton() -> tuple[tuple[str, ...], tuple[int, ...], tuple[int, ...]]:
    """The written BVH hierarchy: (names, parents, H36M joint of each node). Each child of the
    pelvis and of the thorax hangs from a zero-length joint of its own (like a clavicle), so that
    every bone has its own rotation."""
    from ..geometry.skeleton import H36M_JOINTS, H36M_PARENTS

    names, parents, source = [], [], []
    node_of: dict[int, int] = {}
    for j, p in enumerate(H36M_PARENTS):
        parent = -1 if p < 0 else node_of[p]
        if p in (0, 8):  # a child of a three-child joint: its own zero-length link first
            names.append(f"{H36M_JOINTS[p]}_to_{H36M_JOINTS[j]}")
            parents.append(parent)
            source.append(p)
            parent = len(names) - 1
        node_of[j] = len(names)
        names.append(H36M_JOINTS[j])
        parents.append(parent)
        source.append(j)
    return tuple(names), tuple(parents), tuple(source)


def node_rotations(joints: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Global rotations of the :func:`bvh_skeleton` nodes carrying the ``rest`` pose's bones onto
    ``joints`` (both (F, 17, 3) / (17, 3), one frame and unit).

    A node with one child rotates by the smallest rotation (after its parent's) taking the rest
    bone to the observed bone; twist is not observable from positions and follows the parent,
    except at the pelvis and thorax, whose rotation is the frame of two bones (hips and spine;
    shoulders and neck). Returns (F, nodes, 3, 3).
    """
    names, parents, source = bvh_skeleton()
    frames = {0: (4, 1, 7), 8: (11, 14, 9)}  # joint: (left, right, up)
    G = np.zeros(joints.shape[:1] + (len(names), 3, 3))
    for n, (p, j) in enumerate(zip(parents, source, strict=True)):
        parent = np.broadcast_to(np.eye(3), G.shape[:1] + (3, 3)) if p < 0 else G[:, p]
        kids = [source[k] for k, q in enumerate(parents) if q == n]
        if j in frames and "_to_" not in names[n]:
            left, right, up = frames[j]
            now = _frame(joints[:, left] - joints[:, right], joints[:, up] - joints[:, j])
            was = _frame(rest[left] - rest[right], rest[up] - rest[j])
            G[:, n] = now @ np.swapaxes(was, -1, -2)
        elif len(kids) == 1:  # one bone below (a zero-length link's bone starts at its parent joint)
            c = kids[0]
            G[:, n] = _swing(_unit(parent @ (rest[c] - rest[j])), _unit(joints[:, c] - joints[:, j])) @ parent
        else:
            G[:, n] = parent  # a leaf
    return G


def _euler_zxy(L: np.ndarray) -> np.ndarray:
    """(..., 3) degrees (z, x, y) with L = Rz(z) · Rx(x) · Ry(y)."""
    x = np.arcsin(np.clip(L[..., 2, 1], -1, 1))
    y = np.arctan2(-L[..., 2, 0], L[..., 2, 2])
    z = np.arctan2(-L[..., 0, 1], L[..., 1, 1])
    return np.rad2deg(np.stack([z, x, y], axis=-1))


def write_bvh(path: str | Path, joints: np.ndarray, frame_time: float, scale: float = 100.0) -> None:
    """Write (F, 17, 3) H36M-17 positions (metres, a Y-up frame) as a BVH file.

    The first frame is the rest pose (offsets); each node carries ZXY Euler rotations in degrees
    (:func:`node_rotations`), the pelvis also its position. ``scale`` converts metres to file
    units (100: centimetres). Bone lengths are the first frame's; forward kinematics of the file
    reproduces every frame whose bone lengths equal the first's.
    """
    names, parents, source = bvh_skeleton()
    x = joints * scale
    rest = x[0]
    G = node_rotations(x, rest)
    local = np.stack([G[:, n] if p < 0 else np.swapaxes(G[:, p], -1, -2) @ G[:, n]
                      for n, p in enumerate(parents)], axis=1)  # fmt: skip
    euler = _euler_zxy(local)  # (F, nodes, 3)
    lines = ["HIERARCHY"]
    order: list[int] = []  # nodes in the order the hierarchy lists them (depth first)

    def emit(n: int, depth: int) -> None:
        order.append(n)
        pad, p = "  " * depth, parents[n]
        offset = rest[source[n]] - rest[source[p]] if p >= 0 else np.zeros(3)
        chans = "6 Xposition Yposition Zposition" if p < 0 else "3"
        lines.extend([f"{pad}{'ROOT' if p < 0 else 'JOINT'} {names[n]}", pad + "{",
                      f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}",
                      f"{pad}  CHANNELS {chans} Zrotation Xrotation Yrotation"])  # fmt: skip
        kids = [k for k, q in enumerate(parents) if q == n]
        for k in kids:
            emit(k, depth + 1)
        if not kids:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 0 0", pad + "  }"])
        lines.append(pad + "}")

    emit(0, 0)
    lines += ["MOTION", f"Frames: {len(x)}", f"Frame Time: {frame_time:.6f}"]
    for f in range(len(x)):
        values = list(x[f, 0]) + [v for n in order for v in euler[f, n]]
        lines.append(" ".join(f"{v:.5f}" for v in values))
    Path(path).write_text("\n".join(lines) + "\n")
