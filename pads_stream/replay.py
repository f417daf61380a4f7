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
import dataclasses
import json
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from .bvh import JointMapping, load_bvh_h36m
from .camera import camera_to_world
from .cli import UsageError
from .data import (
    DEFAULT_DATA,
    HOLDOUT_TAKES,
    TEST_SUBJECTS,
    data_file,
    h36m_path,
    load_positions_3d,
    split_holdout,
    test_path,
    to_17,
)
from .listen import Listener
from .rig import RigConfig, detector_noise, random_cameras, world_views, z_up_extrinsics
from .skeleton import LIMBS
from .sockets import add_curve_argument, publisher
from .stepgraph import package_file
from .wire import kp2d_message


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and every option's default."""


CAMERA_EVERY_S = 1.0  # the camera rides along inline at least this often (late subscribers latch it)


@dataclass(frozen=True)
class Recording:
    """Frames to publish: (S streams, F frames, M persons) arrays.

    kp2d (S, F, M, 17, 2) px; conf (S, F, M, 17); K (S, F, 3, 3); root (S, F, M, 3) m;
    gt (S, F, M, 17, 3) m pelvis-relative, camera frame; ids (S, F, M) person ids as sent (the
    same id is the same person in consecutive frames, unless a tracker's switch is simulated);
    fps the recording's frame rate; person (S, F, M) the true identities where they differ from
    the ids (after simulated id switches).
    """

    kp2d: np.ndarray
    conf: np.ndarray
    K: np.ndarray
    root: np.ndarray
    gt: np.ndarray
    ids: np.ndarray
    fps: float
    layout: str = "h36m17"  # joint order of kp2d (coco17 for COCO and OpenPose files)
    R: np.ndarray | None = None  # (S, F, 3, 3) camera extrinsics, X_cam = R X_world + t (world Z up, floor z = 0)
    t: np.ndarray | None = None  # (S, F, 3) metres
    person: np.ndarray | None = None  # (S, F, M) true identities; None: the ids

    def save_truth(self, path: Path, names: list[str]) -> None:
        s, f, m = self.gt.shape[:3]
        idx = np.indices((s, f, m)).reshape(3, -1)
        person = self.ids if self.person is None else self.person
        extra = {}
        if self.R is not None and self.t is not None:  # world joints (Z up, floor z = 0), for rigs
            R = np.repeat(self.R[:, :, None], m, axis=2).reshape(-1, 3, 3)
            t = np.repeat(self.t[:, :, None], m, axis=2).reshape(-1, 3)
            extra["world"] = camera_to_world(self.gt.reshape(-1, 17, 3) + self.root.reshape(-1, 1, 3), R, t)
        np.savez(path, stream=np.array(names)[idx[0]], frame=idx[1], id=self.ids.reshape(-1), person=person.reshape(-1),
                 gt=self.gt.reshape(-1, 17, 3), root=self.root.reshape(-1, 3), **extra)  # fmt: skip

    def occluded(self, joints: tuple[int, ...], streams: list[int]) -> Recording:
        """The recording with ``joints`` unseen (confidence 0) in ``streams``."""
        conf = np.array(self.conf)
        conf[np.ix_(streams, range(conf.shape[1]), range(conf.shape[2]), joints)] = 0.0
        return dataclasses.replace(self, conf=conf)


def from_test_set(path: str, streams: int, persons: int, frames: int, detected: bool,
                  rig: str | None = None) -> Recording:  # fmt: skip
    """Stream s carries test samples of camera s mod 4 (and, with the ``rig`` json of the real
    cameras, of one subject, so that the stream's extrinsics are that camera's)."""
    data = np.load(path)
    cams, subjects = data["camera"], data["subject"]
    cameras = json.loads(Path(rig).read_text())["subjects"] if rig else None
    per, ext = [], []
    for s in range(streams):
        pick = cams == s % 4
        if cameras:
            subject = sorted(cameras)[(s // 4) % len(cameras)]
            pick &= subjects == subject
            cam = cameras[subject][s % 4]
            ext.append((np.array(cam["R"], float), np.array(cam["t"], float).reshape(3)))
        groups = 8 if cameras else 4  # streams sharing a (camera[, subject]) take interleaved samples
        idx = np.flatnonzero(pick)[s // groups :: max(1, (streams + groups - 1) // groups)][: frames * persons]
        if len(idx) < frames * persons:
            raise ValueError(f"the test set has too few samples for {frames} frames x {persons} persons")
        per.append(idx.reshape(frames, persons))
    idx = np.stack(per)  # (S, F, M)
    kp = data["kp2d_det" if detected else "kp2d"][idx]
    conf = data["conf_det"][idx] if detected else np.ones(idx.shape + (17,), np.float32)
    # every test sample is a different person: its id is its sample index
    K, root, gt = data["K"][idx[:, :, 0]], data["root"][idx], data["gt"][idx]
    R = t = person = None
    if ext:
        R = np.stack([np.broadcast_to(r, (frames, 3, 3)) for r, _ in ext])
        t = np.stack([np.broadcast_to(tt, (frames, 3)) for _, tt in ext])
        # the k-th samples of a subject's cameras are one world pose: person m of frame f is the same
        # person in the subject's 4 streams (each camera still names it by its own sample index)
        person = np.broadcast_to(np.arange(persons), idx.shape)
    return Recording(kp2d=kp, conf=conf, K=K, root=root, gt=gt, ids=idx, fps=25.0, R=R, t=t, person=person)


def from_file(fmt: str, path: str, K: str, sequence: str, fps: float) -> Recording:
    """A detector's keypoint file (see :mod:`pads_stream.formats`) as one stream; no truth."""
    from .formats import read

    subject, action, camera = (sequence.split("/") + ["S9", "Walking 1", "0"])[:3] if sequence else ("", "", "0")
    try:
        k2 = read(fmt, path, subject, action, int(camera))
    except (ValueError, OSError) as err:
        raise UsageError(str(err)) from None
    try:
        fx, fy, cx, cy = (float(v) for v in K.split(","))
    except ValueError:
        raise UsageError("--K must be fx,fy,cx,cy in pixels") from None
    check_K_against_keypoints(fx, fy, cx, cy, k2.kp[k2.conf > 0])
    f, m = k2.kp.shape[:2]
    Ks = np.broadcast_to(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), (1, f, 3, 3))
    nan = np.full((1, f, m, 17, 3), np.nan)
    ids = np.broadcast_to(np.arange(m), (1, f, m))
    return Recording(k2.kp[None], k2.conf[None], Ks, nan[..., 0, :], nan, ids, fps, layout=k2.layout)


def check_K_against_keypoints(fx: float, fy: float, cx: float, cy: float, kp: np.ndarray) -> None:
    """Refuse an intrinsics guess that cannot belong to these keypoints (M, 2) px, naming the likely
    mistake: a focal length below 1 px (a normalised K), or a principal point far beyond the
    keypoints with a smaller focal length (the four numbers in another order)."""
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx >= 1 and fy >= 1):
        raise UsageError(f"--K {fx:g},{fy:g},{cx:g},{cy:g}: focal lengths must be >= 1 px (a normalised K? "
                         "give fx,fy,cx,cy in pixels)")  # fmt: skip
    if len(kp) == 0:
        return
    hi = kp.max(axis=0)
    # the principal point sits near the image's centre and the focal length is usually larger than it; a
    # point beyond 1.5x the keypoints' largest coordinate with a smaller focal length is the order mixed up
    if (cx > 1.5 * hi[0] or cy > 1.5 * hi[1]) and max(fx, fy) < max(cx, cy):
        raise UsageError(f"--K {fx:g},{fy:g},{cx:g},{cy:g}: the principal point ({cx:g}, {cy:g}) lies beyond the "
                         f"keypoints (up to x {hi[0]:.0f}, y {hi[1]:.0f} px) and exceeds the focal length: the "
                         "order is fx,fy,cx,cy (swapped?)")  # fmt: skip


def through_camera(seqs: list[np.ndarray], streams: int, persons: int, frames: int, rng: np.random.Generator,
                   detected: bool, fps: float) -> Recording:  # fmt: skip
    """Y-up sequences placed apart on the floor (each frame's lowest joint on it), each stream a
    fixed virtual camera whose extrinsics the recording keeps (world Z up, floor z = 0)."""
    kp, conf, K, root, gt, Rs, ts = [], [], [], [], [], [], []
    for s in range(streams):
        Ks, R, centre = random_cameras(1, rng, RigConfig())
        views = []
        for m in range(persons):
            seq = seqs[(s * persons + m) % len(seqs)]
            seq = seq[np.arange(frames) % len(seq)].astype(np.float64)
            lift = -seq[..., 1].min(axis=1)  # (F,) the pelvis height that puts the lowest joint on the floor
            offset = np.stack([np.full(frames, 1.2 * (m - (persons - 1) / 2)), lift,
                               np.full(frames, rng.uniform(-0.5, 0.5))], -1)  # fmt: skip
            world = seq + offset[:, None]
            views.append(
                world_views(world, np.repeat(Ks, frames, 0), np.repeat(R, frames, 0), np.repeat(centre, frames, 0))
            )
        k2 = np.stack([v.kp2d for v in views], 1)  # (F, M, 17, 2)
        c = np.ones(k2.shape[:3])
        if detected:
            k2, c = detector_noise(k2, rng)
        kp.append(k2)
        conf.append(c)
        K.append(np.repeat(Ks, frames, 0))
        root.append(np.stack([v.root for v in views], 1))
        gt.append(np.stack([v.gt for v in views], 1))
        R_z, t_z = z_up_extrinsics(R, centre)
        Rs.append(np.repeat(R_z, frames, 0))
        ts.append(np.repeat(t_z, frames, 0))
    ids = np.broadcast_to(np.arange(persons), (streams, frames, persons))
    return Recording(*(np.stack(a) for a in (kp, conf, K, root, gt)), ids=ids, fps=fps, R=np.stack(Rs), t=np.stack(ts))


def holdout_sequences(data: str, streams: int, frames: int) -> dict[str, np.ndarray]:
    """Sequences for choosing the node's tracking settings: the prior's held-out takes
    (``HOLDOUT_TAKES``, never the test subjects) through ``streams`` fixed virtual cameras at
    25 Hz, 2 persons each, exact 2D, frame-major over P = 2 · streams persons: kp2d (F, P, 17, 2)
    px, K (F, P, 3, 3), root (F, P, 3) m, gt (F, P, 17, 3) m pelvis-relative, camera frame."""
    _, held = split_holdout(load_positions_3d(h36m_path(data)), HOLDOUT_TAKES)
    seqs = [x for takes in held.values() for x in takes.values()]
    rec = through_camera(seqs, streams, 2, frames, np.random.default_rng(0), False, 25.0)
    by_frame = lambda a: np.swapaxes(a, 0, 1).reshape(frames, 2 * streams, *a.shape[3:])  # noqa: E731
    K = np.repeat(np.swapaxes(rec.K, 0, 1), 2, axis=1)
    return {"kp2d": by_frame(rec.kp2d), "K": K, "root": by_frame(rec.root), "gt": by_frame(rec.gt)}


def load_recording(args: argparse.Namespace) -> Recording:
    rng = np.random.default_rng(args.seed)
    if args.source == "test":
        rig = str(data_file(args.data, "h36m", "cameras_s9_s11.json")) if args.extrinsics else None
        return from_test_set(test_path(args.data), args.streams, args.persons, args.frames, args.detected, rig)
    if args.source == "h36m":
        data = load_positions_3d(h36m_path(args.data))
        # Y-up sequences with their original heading; each person plays a different take
        seqs = [x[:: args.stride] for s in TEST_SUBJECTS for x in data[s].values()]
        rec = through_camera(seqs, args.streams, args.persons, args.frames, rng, args.detected, 25.0 / args.stride)
        return with_id_switches(rec, args.id_switch_every) if args.id_switch_every else rec
    if args.source in ("coco", "openpose", "vp3d"):
        if not args.input or not args.K:
            raise UsageError(f"--source {args.source} needs --input PATH and --K fx,fy,cx,cy")
        return from_file(args.source, args.input, args.K, args.sequence, args.rate)
    if not args.bvh:
        raise UsageError("--source bvh needs --bvh FILE")
    poses, fps = load_bvh_h36m(args.bvh, JointMapping.from_json(args.mapping))
    return through_camera([to_17(poses)], args.streams, args.persons, args.frames, rng, args.detected, fps)


def with_id_switches(rec: Recording, every: int) -> Recording:
    """The recording with the track ids of persons 0 and 1 swapped in every other block of
    ``every`` frames (a tracker's id switches; the truth follows the ids)."""
    if rec.ids.shape[2] < 2:
        raise ValueError("id switches need at least 2 persons per stream")
    ids = np.array(rec.ids)
    swapped = (np.arange(ids.shape[1]) // every) % 2 == 1
    ids[:, swapped, 0], ids[:, swapped, 1] = rec.ids[:, swapped, 1], rec.ids[:, swapped, 0]
    return dataclasses.replace(rec, ids=ids, person=rec.ids if rec.person is None else rec.person)


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
    ):
        self.rec, self.rate, self.send_root, self.camera_inline = rec, rate, send_root, camera_inline
        self.send_extrinsics = send_extrinsics and rec.R is not None and rec.t is not None
        if rig is not None and not self.send_extrinsics:
            raise ValueError("a rig needs its cameras' extrinsics (--extrinsics)")
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
    parser.add_argument("--mapping", default=str(package_file("configs", "bandai_to_h36m.json")),
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
                       delay=delay)  # fmt: skip
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
