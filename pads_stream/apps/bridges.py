"""``pads-stream bridge``: a node's 3D poses to VRChat OSC trackers or the VMC protocol (OSC).

One person (``--stream``, ``--id``; default the first person seen) is sent per frame:

- ``vrchat``: ``/tracking/trackers/{1..8}/position`` and ``/rotation`` (hip, chest, feet, knees,
  elbows) and ``/tracking/trackers/head/...``; metres and Euler degrees in Unity's convention
  (left-handed, Y up, rotations applied Z, X, Y). VRChat listens on port 9000.
- ``vmc``: ``/VMC/Ext/Root/Pos`` and ``/VMC/Ext/Bone/Pos`` per humanoid bone (local position,
  local rotation quaternion relative to the T-pose), then ``/VMC/Ext/OK`` and ``/VMC/Ext/T``;
  the usual VMC receiver port is 39539.

Frames: world joints (Z up, floor z = 0) when the node sends them (the stream's camera has
extrinsics, or the node has estimated its floor from the people's feet), else the
camera-frame joints placed by a default camera pose: 1.6 m above the floor, level, looking
along the world +Y axis. Joint rotations come from the skeleton (:func:`pads_stream.data.bvh.node_rotations`):
swing from the bone directions, twist from the hips and shoulders frames, relative to a T-pose
(identity for a T-pose facing Unity's +Z). Needs ``pip install 'pads-stream[bridges]'``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..data.bvh import bvh_skeleton, node_rotations
from ..geometry.skeleton import H36M_PARENTS, MEAN_BONES_M
from ..stream.sockets import add_curve_argument, subscriber
from ..stream.wire import PosePerson, WireError, decode_pose3d

# Default camera when a stream has no extrinsics: world (Z up) from the OpenCV camera frame.
DEFAULT_CAMERA_HEIGHT_M = 1.6
CAMERA_TO_WORLD = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # x right, z forward -> +Y, y down -> -Z

# T-pose directions (Y up, facing +Z, the person's left at +X) of each bone ending at joint j.
_T_DIRECTIONS = {1: (-1, 0, 0), 2: (0, -1, 0), 3: (0, -1, 0), 4: (1, 0, 0), 5: (0, -1, 0), 6: (0, -1, 0),
                 7: (0, 1, 0), 8: (0, 1, 0), 9: (0, 1, 0), 10: (0, 1, 0), 11: (1, 0, 0), 12: (1, 0, 0),
                 13: (1, 0, 0), 14: (-1, 0, 0), 15: (-1, 0, 0), 16: (-1, 0, 0)}  # fmt: skip
VRCHAT_TRACKERS = {1: 0, 2: 8, 3: 6, 4: 3, 5: 5, 6: 2, 7: 12, 8: 15}  # tracker number -> H36M joint
VMC_BONES = {  # humanoid bone -> (H36M joint whose node rotation it takes, humanoid parent)
    "Hips": (0, None), "Spine": (7, "Hips"), "Chest": (8, "Spine"), "Neck": (9, "Chest"), "Head": (10, "Neck"),
    "LeftUpperLeg": (4, "Hips"), "LeftLowerLeg": (5, "LeftUpperLeg"), "LeftFoot": (6, "LeftLowerLeg"),
    "RightUpperLeg": (1, "Hips"), "RightLowerLeg": (2, "RightUpperLeg"), "RightFoot": (3, "RightLowerLeg"),
    "LeftUpperArm": (11, "Chest"), "LeftLowerArm": (12, "LeftUpperArm"), "LeftHand": (13, "LeftLowerArm"),
    "RightUpperArm": (14, "Chest"), "RightLowerArm": (15, "RightUpperArm"), "RightHand": (16, "RightLowerArm"),
}  # fmt: skip


def t_pose() -> np.ndarray:
    """(17, 3) a T-pose of the mean skeleton, metres, Y up, facing +Z, pelvis at the origin."""
    x = np.zeros((17, 3))
    for j in range(1, 17):
        x[j] = x[H36M_PARENTS[j]] + MEAN_BONES_M[j - 1] * np.asarray(_T_DIRECTIONS[j], float)
    return x


def world_joints(person: PosePerson) -> np.ndarray:
    """(17, 3) joints in a Z-up world: the node's ``joints_world``, else the default camera pose."""
    if person.joints_world is not None:
        return person.joints_world
    return person.joints @ CAMERA_TO_WORLD.T + [0.0, 0.0, DEFAULT_CAMERA_HEIGHT_M]


def joint_frames(world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unity-frame (positions (17, 3) m, global rotations (17, 3, 3)) of Z-up world joints; the
    rotations are relative to :func:`t_pose` (identity for a T-pose facing Unity's +Z)."""
    yup = world @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]).T  # Z-up -> Y-up, right-handed
    rest = t_pose()
    G = node_rotations(yup[None], rest)[0]  # (nodes, 3, 3)
    names, _, source = bvh_skeleton()
    rot = np.stack([G[next(n for n, s in enumerate(source) if s == j and "_to_" not in names[n])] for j in range(17)])
    flip = np.diag([1.0, 1.0, -1.0])  # right-handed Y-up -> Unity's left-handed Y-up
    return yup @ flip, flip @ rot @ flip


def unity_euler(R: np.ndarray) -> np.ndarray:
    """(..., 3) Unity Euler degrees (x, y, z) with R = Ry(y) · Rx(x) · Rz(z)."""
    x = np.arcsin(np.clip(-R[..., 1, 2], -1, 1))
    y = np.arctan2(R[..., 0, 2], R[..., 2, 2])
    z = np.arctan2(R[..., 1, 0], R[..., 1, 1])
    return np.rad2deg(np.stack([x, y, z], axis=-1))


def quaternion(R: np.ndarray) -> np.ndarray:
    """(4,) (x, y, z, w) of a 3x3 rotation."""
    w = np.sqrt(max(0.0, 1 + R[0, 0] + R[1, 1] + R[2, 2])) / 2
    x = np.copysign(np.sqrt(max(0.0, 1 + R[0, 0] - R[1, 1] - R[2, 2])) / 2, R[2, 1] - R[1, 2])
    y = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] + R[1, 1] - R[2, 2])) / 2, R[0, 2] - R[2, 0])
    z = np.copysign(np.sqrt(max(0.0, 1 - R[0, 0] - R[1, 1] + R[2, 2])) / 2, R[1, 0] - R[0, 1])
    return np.array([x, y, z, w])


def vrchat_messages(world: np.ndarray) -> list[tuple[str, list[float]]]:
    """OSC (address, arguments) of VRChat's trackers for one person's Z-up world joints."""
    pos, rot = joint_frames(world)
    out = []
    for number, j in [*VRCHAT_TRACKERS.items(), ("head", 10)]:
        out.append((f"/tracking/trackers/{number}/position", pos[j].tolist()))
        out.append((f"/tracking/trackers/{number}/rotation", unity_euler(rot[j]).tolist()))
    return out


def vmc_messages(world: np.ndarray, t: float) -> list[tuple[str, list]]:
    """OSC (address, arguments) of the VMC protocol for one person's Z-up world joints."""
    pos, rot = joint_frames(world)
    out: list[tuple[str, list]] = [("/VMC/Ext/Root/Pos", ["root", *pos[0].tolist(), 0.0, 0.0, 0.0, 1.0])]
    for bone, (j, parent) in VMC_BONES.items():
        pj = 0 if parent is None else VMC_BONES[parent][0]
        local_rot = rot[j] if parent is None else rot[pj].T @ rot[j]
        local_pos = np.zeros(3) if parent is None else rot[pj].T @ (pos[j] - pos[pj])
        out.append(("/VMC/Ext/Bone/Pos", [bone, *local_pos.tolist(), *quaternion(local_rot).tolist()]))
    out += [("/VMC/Ext/OK", [1]), ("/VMC/Ext/T", [float(t)])]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream bridge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("to", choices=("vrchat", "vmc"))
    parser.add_argument("--from", dest="endpoint", default="tcp://127.0.0.1:5556", help="the node's output")
    parser.add_argument("--osc-host", default="127.0.0.1")
    parser.add_argument("--osc-port", type=int, help="default 9000 (vrchat) or 39539 (vmc)")
    parser.add_argument("--stream", help="the stream to follow (default: the first seen)")
    parser.add_argument("--id", type=int, help="the person id to follow (default: the first seen)")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    add_curve_argument(parser)
    args = parser.parse_args(argv)
    try:
        from pythonosc.udp_client import SimpleUDPClient
    except ImportError as err:
        raise SystemExit("pads-stream bridge needs python-osc: pip install 'pads-stream[bridges]'") from err
    client = SimpleUDPClient(args.osc_host, args.osc_port or (9000 if args.to == "vrchat" else 39539))
    sub = subscriber(args.endpoint, (b"pose3d/" + (args.stream or "").encode(),), args.curve)
    start, sent = time.monotonic(), 0
    print(f"pads-stream bridge: {args.endpoint} -> {args.to} at {args.osc_host}", flush=True)
    try:
        while args.seconds is None or time.monotonic() - start < args.seconds:
            if not sub.poll(100):
                continue
            try:
                msg = decode_pose3d(sub.recv_multipart())
            except (WireError, KeyError, ValueError):
                continue
            if args.stream and msg.stream != args.stream:
                continue  # a longer stream name with the same prefix
            person = next((p for p in msg.persons if args.id is None or p.id == args.id), None)
            if person is None:
                continue
            args.stream, args.id = msg.stream, person.id  # follow this one from now on
            world = world_joints(person)
            for address, values in (vrchat_messages(world) if args.to == "vrchat" else
                                    vmc_messages(world, time.monotonic() - start)):  # fmt: skip
                client.send_message(address, values)
            sent += 1
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    print(f"pads-stream bridge: sent {sent} frames", flush=True)
