"""A 4-camera rig through the node over real sockets: association, accuracy against the API, and a
camera that stops or arrives late.

Two persons at a time play S9/S11 takes (25 Hz, every 2nd frame: 12.5 Hz) standing 1.6 m apart in
the subject's real rig (``h36m/cameras_s9_s11.json``), seen by its 4 cameras with detector-like
2D (``rig.detector_noise``). Each camera names the persons with its own ids (a different
permutation per camera), as per-camera 2D trackers do. Every rig frame is sent as 4 member
frames stamped with the time of sending and answered before the next is sent (as fast as the
node answers, not at the takes' rate). Printed as a markdown table, per case:

- ``all``: the 4 cameras throughout;
- ``drop``: camera 3 stops half way through;
- ``late``: camera 3's frames arrive 100 ms after the others' (the node fuses without them).

Columns: rig frames published / sent; cross-view association correct (person-frames whose fused
detections are exactly one true person's, over the person-frames that should be there); world
MPJPE (pelvis-relative, mm) and root error (mm) of the node, and of ``PoseModel.estimate_rig`` on
the same frames and views with the true association; views fused per person.

Usage: python tools/rig_node_eval.py [--data DIR] [--frames N] [--out FILE]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import zmq

from pads_stream.api import PoseModel, load_model
from pads_stream.data.datasets import (
    DEFAULT_DATA,
    HOLDOUT_TAKES,
    TEST_SUBJECTS,
    data_file,
    load_positions_3d,
    split_holdout,
)
from pads_stream.data.virtual_rig import Y_UP_TO_Z_UP, CalibratedRig, detector_noise, load_rig
from pads_stream.geometry.camera import rotation_y
from pads_stream.stream.node import Node, NodeConfig
from pads_stream.stream.wire import camera_map, decode_error, decode_pose3d, kp2d_message

STRIDE = 2  # 25 Hz data -> 12.5 Hz
FPS = 25.0 / STRIDE
SPACING = 1.6  # metres between the two persons


def scene(data: str, frames: int, seed: int = 0, validation: bool = False) -> list[dict]:
    """Per subject: two takes played side by side: world (F, 2, 17, 3), det kp (F, 4, 2, 17, 2),
    conf (F, 4, 2, 17), the rig. ``validation``: the prior's held-out S8 takes in the S9 rig and the
    S11 rig instead of the test subjects (for choosing settings)."""
    poses = load_positions_3d(data_file(data, "h36m", "positions_3d_25hz.npz"))
    if validation:
        _, held = split_holdout(poses, HOLDOUT_TAKES)
        poses = {rig_subject: held["S8"] for rig_subject in TEST_SUBJECTS}
    rng = np.random.default_rng(seed)
    out = []
    for subject in TEST_SUBJECTS:
        rig = load_rig(str(data_file(data, "h36m", "cameras_s9_s11.json")), subject)
        takes = sorted(poses[subject])
        chosen = rng.choice(len(takes), 2, replace=False)
        seq = [poses[subject][takes[c]][::STRIDE][:frames] for c in chosen]
        n = min(len(s) for s in seq)
        world = np.empty((n, 2, 17, 3))
        for m, s in enumerate(seq):
            x = np.einsum("ij,fkj->fki", rotation_y(np.array([rng.uniform(0, 2 * np.pi)]))[0], s[:n])
            x = x @ Y_UP_TO_Z_UP.T
            x[..., 2] -= x[..., 2].min(axis=1, keepdims=True)  # feet on the floor
            world[:, m] = x + rig.look_at_floor() + [SPACING * (m - 0.5), 0.0, 0.0]
        kp = np.stack([rig.project(w) for w in world])  # (F, 4, 2, 17, 2)
        det, conf = detector_noise(kp, rng)
        out.append({"subject": subject, "rig": rig, "world": world, "kp": det, "conf": conf,
                    "takes": [takes[c] for c in chosen]})  # fmt: skip
    return out


def camera_ids(views: int) -> np.ndarray:
    """(V, 2) the id each camera gives person m: its own numbers, swapped on every other camera."""
    return np.array([[10 * v + (m if v % 2 == 0 else 1 - m) for m in range(2)] for v in range(views)])


class Sender:
    """A node on loopback in its own thread, a PUB for the member frames and a SUB for the answers."""

    def __init__(self, model: PoseModel, **settings):
        self.ctx = zmq.Context()
        cfg = NodeConfig(inp="tcp://127.0.0.1:*", out="tcp://127.0.0.1:*", latency_budget_ms=600_000, log_period_s=0,
                         **settings)  # fmt: skip
        self.node = Node(model, cfg, self.ctx)
        inp, out = self.node.endpoints
        self.thread = threading.Thread(target=self.node.run)
        self.thread.start()
        self.pub, self.sub = self.ctx.socket(zmq.PUB), self.ctx.socket(zmq.SUB)
        self.pub.connect(inp)
        for topic in (b"pose3d/", b"error"):
            self.sub.setsockopt(zmq.SUBSCRIBE, topic)
        self.sub.connect(out)
        while True:  # readiness: an empty probe frame answered
            self.pub.send_multipart(kp2d_message("probe", -1, time.time_ns(), [], camera={"K": np.eye(3).tolist()}))
            if self.sub.poll(200):
                self.sub.recv_multipart()
                break

    def send(self, message: list[bytes]) -> None:
        self.pub.send_multipart(message)

    def answer(self, rig: str, frame_t: int, errors: list) -> object:
        """The rig frame whose t_ns is ``frame_t`` (late notices collected on the way)."""
        while True:
            if not self.sub.poll(60_000):
                raise RuntimeError("the node did not answer within 60 s")
            frames = self.sub.recv_multipart()
            if frames[0] == b"error":
                errors.append(decode_error(frames))
                continue
            msg = decode_pose3d(frames)
            if msg.stream == rig and msg.t_ns == frame_t:
                return msg

    def close(self) -> None:
        self.node.stop()
        self.thread.join()
        self.pub.close(0)
        self.sub.close(0)
        self.node.close()
        self.ctx.term()


def member(rig: CalibratedRig, name: str, v: int, f: int, t_ns: int, kp: np.ndarray, conf: np.ndarray,
           ids: np.ndarray) -> list[bytes]:  # fmt: skip
    persons = [{"id": int(ids[v, m]), "kp": np.concatenate([kp[m], conf[m, :, None]], -1).tolist()} for m in range(2)]
    return kp2d_message(f"{name}-cam{v}", f, t_ns, persons, camera=camera_map(rig.K[v], R=rig.R[v], t=rig.t[v],
                                                                              rig=name))  # fmt: skip


def run_case(model: PoseModel, scenes: list[dict], case: str, **settings) -> dict:
    ids = camera_ids(4)
    sender = Sender(model, **settings)
    stats = {"sent": 0, "published": 0, "persons": 0, "correct": 0, "views": [], "node": [], "api": [], "root": [],
             "api_root": [], "late": 0}  # fmt: skip
    try:
        for sc in scenes:
            name = f"rig_{sc['subject']}_{case}"
            frames = len(sc["world"])
            for f in range(frames):
                t_ns = time.time_ns()  # captured now: the sender's clock runs with this host's
                live = [0, 1, 2, 3] if case == "all" or (case == "drop" and f < frames // 2) else [0, 1, 2]
                for v in live:
                    sender.send(member(sc["rig"], name, v, f, t_ns, sc["kp"][f, v], sc["conf"][f, v], ids))
                errors: list = []
                msg = sender.answer(name, t_ns, errors)
                if case == "late":  # camera 3's frame of this moment, 100 ms after the others
                    time.sleep(0.1)
                    sender.send(member(sc["rig"], name, 3, f, t_ns, sc["kp"][f, 3], sc["conf"][f, 3], ids))
                stats["late"] += sum(e.kind == "late" for e in errors)
                stats["sent"] += 1
                stats["published"] += 1
                used = [int(view.stream.rsplit("cam", 1)[1]) for view in msg.views if view.used]
                stats["persons"] += 2
                truth_of = {(f"{name}-cam{v}", int(ids[v, m])): m for v in range(4) for m in range(2)}
                for p in msg.persons:
                    members = {truth_of[(view.stream, view.id)] for view in p.views}
                    if len(members) == 1 and len(p.views) == len(used):
                        stats["correct"] += 1
                        m = members.pop()
                        gt = sc["world"][f, m]
                        stats["node"].append(rel_err(p.joints_world, gt))
                        stats["root"].append(1000 * np.linalg.norm(p.joints_world[0] - gt[0]))
                        stats["views"].append(len(p.views))
                # the API on the same views, with the true association
                v_used = sorted(used)
                if v_used:
                    kp, conf = sc["kp"][f, v_used], sc["conf"][f, v_used]
                    rig = sc["rig"]
                    world = model.estimate_rig(kp, rig.K[v_used], rig.R[v_used], rig.t[v_used], conf=conf)
                    for m in range(2):
                        stats["api"].append(rel_err(world[m], sc["world"][f, m]))
                        stats["api_root"].append(1000 * np.linalg.norm(world[m, 0] - sc["world"][f, m, 0]))
            if case == "late":  # the last late frame's notice
                time.sleep(0.2)
    finally:
        sender.close()
    return stats


def rel_err(world: np.ndarray, gt: np.ndarray) -> float:
    return float(1000 * np.linalg.norm((world - world[0]) - (gt - gt[0]), axis=-1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding h36m/")
    parser.add_argument("--frames", type=int, default=150, help="rig frames per subject")
    parser.add_argument("--warm", type=int, help="node config rig_warm_t_start (0: cold; default: the node config)")
    parser.add_argument("--validation", action="store_true", help="held-out S8 takes instead of S9/S11 (tuning)")
    parser.add_argument("--out", help="write the table (markdown) here")
    args = parser.parse_args()
    model = load_model()
    scenes = scene(args.data, args.frames, validation=args.validation)
    played = ", ".join(sc["subject"] + ": " + " + ".join(sc["takes"]) for sc in scenes)
    lines = [
        f"S9/S11 takes {played}; "
        f"2 persons, 4 cameras with per-camera ids, detector-like 2D, {FPS:g} Hz, backend {model.backend.name}",
        "",
        "| case | rig frames published / sent | association correct | node MPJPE | API MPJPE | node root | "
        "API root | views per person | late notices |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in ("all", "drop", "late"):
        s = run_case(model, scenes, case, **({} if args.warm is None else {"rig_warm_t_start": args.warm}))
        lines.append(
            f"| {case} | {s['published']} / {s['sent']} | {100 * s['correct'] / s['persons']:.2f} % | "
            f"{np.mean(s['node']):.1f} | {np.mean(s['api']):.1f} | {np.mean(s['root']):.1f} | "
            f"{np.mean(s['api_root']):.1f} | {np.mean(s['views']):.2f} | {s['late']} |"
        )
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
