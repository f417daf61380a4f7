"""Recordings to replay: the V-H36M test set's sequences, BVH takes seen through virtual cameras, and
the keypoint files people have, as (frames, persons, 17, ·) arrays with each frame's camera.

Units: pixels for keypoints and intrinsics, metres for roots and extrinsics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common.errors import UsageError
from ..data.bvh import JointMapping, load_bvh_h36m
from ..data.datasets import (
    HOLDOUT_TAKES,
    TEST_SUBJECTS,
    data_file,
    h36m_path,
    load_positions_3d,
    split_holdout,
    test_path,
    to_17,
)
from ..data.virtual_rig import RigConfig, detector_noise, random_cameras, world_views, z_up_extrinsics
from ..geometry.camera import camera_to_world, intrinsics_doubt


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
    """A detector's keypoint file (see :mod:`pads_stream.data.formats`) as one stream; no truth."""
    from ..data.formats import read

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
    mistake (:func:`pads_stream.geometry.camera.intrinsics_doubt`)."""
    doubt = intrinsics_doubt(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), kp)
    if doubt is not None:
        raise UsageError(f"--K {fx:g},{fy:g},{cx:g},{cy:g}: {doubt}")


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
