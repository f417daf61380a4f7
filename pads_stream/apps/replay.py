"""``pads-stream replay``: publish recorded 2D keypoints as live streams, truth kept aside.

Sources (all pixels through a pinhole; ground truth pelvis-relative metres, camera frame):
- ``test``: the V-H36M test set; stream s carries samples of camera s mod 4, M per frame.
- ``h36m``: consecutive 25 Hz frames of S9/S11 takes through a fixed virtual camera per
  stream (for warm start and jitter); person m of stream s plays take s·M + m.
- ``bvh``: a BVH file through a virtual camera (``--bvh``, mapped with ``--mapping``).
The truth goes to ``--truth`` (npz: stream, frame, id, person (the true identity, which id
switches do not change), gt (N, 17, 3), root (N, 3)), never on the wire. Streams are published
on one PUB socket that connects to the node's input.
"""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import zmq

from ..common.errors import UsageError
from ..common.files import shipped
from ..data.datasets import (
    DEFAULT_DATA,
)
from ..geometry.skeleton import LIMBS
from ..stream.sockets import add_curve_argument, publisher
from ..stream.wire import kp2d_message
from .listen import Listener
from .recordings import (
    Recording,
    load_recording,
)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


CAMERA_EVERY_S = 1.0  # the camera rides along inline at least this often (late subscribers latch it)


class Replayer:
    """Publishes a Recording frame by frame at ``rate`` Hz on a PUB socket it owns."""

    def __init__(
        self,
        rec: Recording,
        endpoint: str,
        rate: float,
        send_root: bool = True,
        camera_inline: bool = True,
        send_extrinsics: bool = False,
        context: zmq.Context | None = None,
        prefix: str = "cam",
        curve: tuple[str, str] | None = None,
        rig: str | None = None,
        drop: tuple[int, int] | None = None,
        delay: tuple[int, float] | None = None,
        withhold_extrinsics: bool = False,
    ):
        self.rec, self.rate, self.send_root, self.camera_inline = rec, rate, send_root, camera_inline
        self.send_extrinsics = send_extrinsics and rec.R is not None and rec.t is not None
        if rig is not None and not self.send_extrinsics:
            raise ValueError("a rig needs its cameras' extrinsics (--extrinsics)")
        self.send_extrinsics &= not withhold_extrinsics  # a calibrated rig: the node holds R, t (its rig files)
        self.rig = rig
        self.drop = drop  # (stream, first frame not sent)
        self.delay = delay  # (stream, seconds its frames are held back)
        self.held: list[tuple[float, list[bytes]]] = []  # delayed messages, (when due, message)
        self.names = [f"{prefix}{s}" for s in range(rec.kp2d.shape[0])]
        self.socket = publisher(endpoint, curve, hwm=100000, linger_ms=2000, context=context)
        self.frame = 0
        self.start = 0.0
        self.sent_K: dict[int, tuple[np.ndarray, float]] = {}  # stream -> (K, when sent)

    @property
    def frames(self) -> int:
        return self.rec.kp2d.shape[1]

    def probe(self) -> None:
        """An empty frame per stream (frame -1): the node answers each with an empty pose3d."""
        for s, name in enumerate(self.names):
            self.socket.send_multipart(kp2d_message(name, -1, time.time_ns(), [], camera=self.camera(s, 0)))

    def send_due(self) -> bool:
        """Send every frame whose time has come; False once all frames are sent."""
        if self.frame == 0 and self.start == 0.0:
            self.start = time.monotonic()
        while self.frame < self.frames and time.monotonic() >= self.start + self.frame / self.rate:
            self.send_frame(self.frame)
            self.frame += 1
        now = time.monotonic()
        while self.held and self.held[0][0] <= now:
            self.socket.send_multipart(self.held.pop(0)[1])
        return self.frame < self.frames or bool(self.held)

    def next_due(self) -> float:
        """Seconds until the next frame is due (0 if overdue)."""
        due = [self.start + self.frame / self.rate] if self.frame < self.frames else []
        return max(0.0, min(due + [h[0] for h in self.held]) - time.monotonic())

    def camera(self, s: int, f: int) -> dict:
        """The camera message fields of stream ``s`` at frame ``f``: K, and R, t when sent."""
        camera = {"K": self.rec.K[s, f].tolist()}
        if self.send_extrinsics:
            camera["R"], camera["t"] = self.rec.R[s, f].tolist(), self.rec.t[s, f].tolist()
        if self.rig is not None:
            camera["rig"] = self.rig
        return camera

    def send_frame(self, f: int) -> None:
        rec = self.rec
        t_ns = time.time_ns()  # one capture instant for every stream's frame f (a synchronised rig)
        for s, name in enumerate(self.names):
            persons = []
            for m in range(rec.kp2d.shape[2]):
                if not np.any(rec.conf[s, f, m] > 0):
                    continue  # padding of a frame with fewer persons
                kp = np.concatenate([rec.kp2d[s, f, m], rec.conf[s, f, m][:, None]], -1).astype("<f4")
                person = {"id": int(rec.ids[s, f, m]), "kp": kp.tobytes()}
                if self.send_root and np.isfinite(rec.root[s, f, m]).all():
                    person["root"] = rec.root[s, f, m].tolist()
                persons.append(person)
            K = rec.K[s, f]
            camera, now = None, time.monotonic()
            last = self.sent_K.get(s)
            if self.camera_inline and (
                last is None or not np.array_equal(last[0], K) or now - last[1] > CAMERA_EVERY_S
            ):
                camera, self.sent_K[s] = self.camera(s, f), (K, now)
            if self.drop is not None and s == self.drop[0] and f >= self.drop[1]:
                continue  # the camera has stopped
            message = kp2d_message(name, f, t_ns, persons, camera=camera, layout=rec.layout)
            if self.delay is not None and s == self.delay[0]:  # captured now, arrives later
                self.held.append((time.monotonic() + self.delay[1], message))
            else:
                self.socket.send_multipart(message)

    def close(self) -> None:
        self.socket.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=("test", "h36m", "bvh", "coco", "openpose", "vp3d"),
        default="test",
        help="test: V-H36M test samples; h36m: S9/S11 25 Hz sequences; bvh: a BVH file; coco: COCO "
        "keypoint results JSON; openpose: an OpenPose JSON folder; vp3d: VideoPose3D positions_2d npz",
    )
    parser.add_argument("--input", help="the file or folder for --source coco, openpose or vp3d")
    parser.add_argument("--K", help="intrinsics fx,fy,cx,cy (px) for --source coco, openpose or vp3d")
    parser.add_argument("--sequence", default="S9/Walking 1/0", help="vp3d: subject/action/camera index")
    parser.add_argument("--data", default=DEFAULT_DATA, help="data folder holding h36m/ (for test and h36m)")
    parser.add_argument("--bvh", help="BVH file for --source bvh")
    parser.add_argument("--mapping", default=str(shipped("configs", "bandai_to_h36m.json")),
                        help="BVH joint mapping to H36M-17")  # fmt: skip
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--persons", type=int, default=2)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--rate", type=float, default=25.0, help="frames per second per stream")
    parser.add_argument("--detected", action="store_true", help="detector-like 2D instead of exact")
    parser.add_argument("--no-root", action="store_true", help="omit the root: the node estimates it")
    parser.add_argument(
        "--extrinsics",
        action="store_true",
        help="send the cameras' R, t (test: the real rig of data/h36m/cameras_s9_s11.json; h36m, bvh: the "
        "virtual cameras); the node then uses the floor",
    )
    parser.add_argument("--stride", type=int, default=1, help="h36m: keep every n-th 25 Hz frame (2: 12.5 Hz)")
    parser.add_argument("--id-switch-every", type=int, default=0,
                        help="h36m: swap the ids of persons 0 and 1 every N frames (0: never)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rig", help="the streams are one rig of this name (test --extrinsics --streams 4: the "
                        "V-H36M rig, each camera with its own person ids); the node fuses them")  # fmt: skip
    parser.add_argument("--withhold-extrinsics", action="store_true",
                        help="with --rig: send the cameras without R, t (a node started with --rig-calibration "
                        "holds them)")  # fmt: skip
    parser.add_argument("--drop-camera", type=int, nargs=2, metavar=("STREAM", "FRAME"),
                        help="stream STREAM sends nothing from frame FRAME on (a camera that stops)")  # fmt: skip
    parser.add_argument("--delay-camera", type=float, nargs=2, metavar=("STREAM", "MS"),
                        help="stream STREAM's frames arrive MS milliseconds after their capture")  # fmt: skip
    parser.add_argument("--occlude", choices=("left arm", "right arm", "left leg", "right leg"),
                        help="that limb is unseen (confidence 0) in the streams of --occlude-streams")  # fmt: skip
    parser.add_argument("--occlude-streams", default="1,2,3", help="streams that do not see --occlude's limb")


def wait_until_answered(rep: Replayer, listener: Listener, timeout_s: float) -> bool:
    """End-to-end readiness: send each stream's probe frame (frame -1, camera inline, no persons)
    until ``listener`` (on the node's output) has seen every one answered; False after
    ``timeout_s``. (A PUB socket drops what it sends before its connection is up, so "the node
    is running" is not enough: the probe proves this sender's frames arrive.)"""
    deadline = next_probe = time.monotonic()
    deadline += timeout_s
    while not all((name, -1) in listener.frames for name in rep.names):
        now = time.monotonic()
        if now > deadline:
            return False
        if now >= next_probe:  # at most every 100 ms, however fast errors come back
            rep.probe()
            next_probe = now + 0.1
        listener.poll(100)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream replay", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--to", default="tcp://127.0.0.1:5555", help="the node's input endpoint")
    parser.add_argument(
        "--node-out",
        default="tcp://127.0.0.1:5556",
        help="the node's output, watched for its status before replaying ('' = do not wait)",
    )
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the node")
    parser.add_argument("--truth", default="runs/truth.npz", help="where the ground truth is written")
    add_curve_argument(parser)
    add_arguments(parser)
    args = parser.parse_args(argv)
    rec = load_recording(args)
    if args.occlude:
        rec = rec.occluded(LIMBS[args.occlude], [int(v) for v in args.occlude_streams.split(",")])
    delay = None if args.delay_camera is None else (int(args.delay_camera[0]), args.delay_camera[1] / 1000)
    try:
        rep = Replayer(rec, args.to, args.rate, send_root=not args.no_root, send_extrinsics=args.extrinsics,
                       curve=args.curve, rig=args.rig, drop=args.drop_camera and tuple(args.drop_camera),
                       delay=delay, withhold_extrinsics=args.withhold_extrinsics)  # fmt: skip
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.node_out:
        with closing(Listener(args.node_out, curve=args.curve)) as listener:
            answered = wait_until_answered(rep, listener, args.wait)
        if answered:
            print(f"the node at {args.node_out} answers every stream; replaying", flush=True)
        else:
            print(f"no answer from a node at {args.node_out} within {args.wait:.0f} s; replaying anyway", flush=True)
    Path(args.truth).parent.mkdir(parents=True, exist_ok=True)
    rec.save_truth(Path(args.truth), rep.names)
    try:
        while rep.send_due():
            time.sleep(rep.next_due())
    except KeyboardInterrupt:
        pass
    finally:
        rep.close()
    print(
        f"replayed {rep.frame} frames x {len(rep.names)} streams x {rec.kp2d.shape[2]} persons; truth in {args.truth}"
    )
