"""``pads-stream listen``: subscribe to the node's 3D poses; print, record, and score them.

Scores against the truth written by ``pads-stream replay``: MPJPE and PA-MPJPE of the
pelvis-relative pose (mm), root error (mm), and jitter as the mean per-joint acceleration
error (mm/frame², consecutive frames of a person). Latency: the node's t_pub − t_recv and the
end-to-end time from the sender's t_ns to arrival here (same host clock).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import zmq

from ..common.shutdown import DeferredStop
from ..data.virtual_rig import Y_UP_TO_Z_UP
from ..geometry import metrics
from ..stream.sockets import add_curve_argument, subscriber
from ..stream.wire import DROP_KINDS, ErrorMessage, Status, WireError, decode_error, decode_pose3d, decode_status


class Listener:
    """Owns one SUB socket on the node's output; :meth:`poll` collects what arrives."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, curve: tuple[str, str] | None = None):
        self.socket = subscriber(endpoint, (b"pose3d/", b"status", b"error"), curve, hwm=100000, context=context)
        self.poses: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.world: dict[tuple[str, int, int], np.ndarray] = {}  # joints_world where the node sent it
        # a rig's persons: the (stream, frame, id) of each view's detection fused into it, and its world joints
        self.rig_persons: list[tuple[list[tuple[str, int | None, int]], np.ndarray]] = []
        self.frames: set[tuple[str, int]] = set()  # (stream, frame) answered by a pose3d: its own, or a rig's
        self.published: set[tuple[str, int]] = set()  # (stream or rig, frame) of each pose3d message
        self.fused: set[tuple[str, int]] = set()  # member frames (stream, frame) fused into a rig's pose3d
        self.rig_names: set[str] = set()  # the rigs among the published streams
        self.arrived: dict[tuple[str, int | None], int] = {}  # (stream, frame) -> its pose3d's arrival, this host's ns
        self.t_ns: dict[tuple[str, int | None], int] = {}  # (stream, frame) -> its capture time, sender's ns
        self.node_latency_ms: list[float] = []
        self.e2e_latency_ms: list[float] = []
        self.statuses: dict[str | None, Status] = {}  # the latest status of each node (a cluster's workers: by name)
        self.errors: list[ErrorMessage] = []
        self.floors: dict[str, dict[str, float]] = {}  # stream -> the latest floor the node estimated for it

    @property
    def status(self) -> Status | None:
        """The node's latest status; behind a cluster, its workers' summed (latencies: the largest worker's)."""
        return merge_statuses(list(self.statuses.values())) if self.statuses else None

    def answered(self) -> set[tuple[str, int | None]]:
        """(stream, frame) of every frame answered so far: by a ``pose3d`` or by a drop notice."""
        return self.frames | {(e.stream, e.frame) for e in self.errors if e.kind in DROP_KINDS}

    def poll(self, timeout_ms: int) -> int:
        """Receive for up to ``timeout_ms`` (returns at the first quiet poll); the number of answers
        (``pose3d`` and ``error`` messages) received, so that status messages alone never look like traffic."""
        handled = answers = 0
        while self.socket.poll(timeout_ms if handled == 0 else 0):
            frames = self.socket.recv_multipart()
            arrived = time.time_ns()
            handled += 1
            topic = frames[0].decode(errors="replace")
            try:
                if topic == "status":
                    st = decode_status(frames)
                    self.statuses[st.worker] = st
                    continue
                answers += 1
                if topic == "error":
                    self.errors.append(decode_error(frames))
                    continue
                msg = decode_pose3d(frames)
            except WireError:
                continue
            self.frames.add((msg.stream, msg.frame))
            self.published.add((msg.stream, msg.frame))
            self.arrived[(msg.stream, msg.frame)] = arrived
            self.t_ns[(msg.stream, msg.frame)] = msg.t_ns
            if msg.floor is not None:
                self.floors[msg.stream] = msg.floor
            frame_of = {v.stream: v.frame for v in msg.views}
            self.frames |= set(frame_of.items())  # a rig's views are answered by the rig's frame
            self.fused |= set(frame_of.items())
            if msg.views:
                self.rig_names.add(msg.stream)
            if msg.frame is not None and msg.frame >= 0:
                self.node_latency_ms.append((msg.t_pub_ns - msg.t_recv_ns) / 1e6)
                self.e2e_latency_ms.append((arrived - msg.t_ns) / 1e6)
            for p in msg.persons:
                self.poses[(msg.stream, msg.frame, p.id)] = (p.rel, p.root)
                if p.joints_world is not None:
                    self.world[(msg.stream, msg.frame, p.id)] = p.joints_world
                if p.views:
                    self.rig_persons.append(
                        ([(v.stream, frame_of.get(v.stream), v.id) for v in p.views], p.joints_world)
                    )
        return answers

    def score_rig(self, truth) -> dict[str, float]:
        """A rig's fused persons against the replay's world truth: cross-view association (every
        view's detection of one true person), world MPJPE (pelvis-relative) and root error, mm."""
        row = {k: i for i, k in enumerate(zip(truth["stream"].tolist(), truth["frame"].tolist(),
                                                  truth["id"].tolist(), strict=True))}  # fmt: skip
        person = truth["person"] if "person" in truth.files else truth["id"]
        correct, errs, roots = 0, [], []
        for views, world in self.rig_persons:
            rows = [row[v] for v in views if v in row]
            if len(rows) != len(views) or len({(truth["frame"][r], person[r]) for r in rows}) != 1:
                continue
            correct += 1
            gt = truth["world"][rows[0]]
            errs.append(1000 * np.linalg.norm((world - world[0]) - (gt - gt[0]), axis=-1).mean())
            roots.append(1000 * np.linalg.norm(world[0] - gt[0]))
        out = {"rig_persons": len(self.rig_persons), "rig_association": correct / max(len(self.rig_persons), 1)}
        if errs:
            out["rig_world_mpjpe"], out["rig_root_error"] = float(np.mean(errs)), float(np.mean(roots))
        return out

    def score(self, truth_path: Path) -> dict[str, float]:
        """Accuracy of what arrived against the replay's truth file (mm): means over all persons,
        and ``frame_mpjpe`` / ``frame_root_error`` per replayed frame (listed in ``frames``)."""
        truth = np.load(truth_path)
        if self.rig_persons and "world" in truth.files:
            return self.score_rig(truth)
        keys = list(zip(truth["stream"].tolist(), truth["frame"].tolist(), truth["id"].tolist(), strict=True))
        known = np.isfinite(truth["gt"]).all(axis=(1, 2))  # replayed detector files carry no truth
        have = np.array([k in self.poses for k in keys]) & known
        out = {"persons_expected": int(known.sum()), "persons_received": int(have.sum())}
        if not have.any():
            return out
        pred = np.stack([self.poses[k][0] for k, h in zip(keys, have, strict=True) if h])
        root = np.stack([self.poses[k][1] for k, h in zip(keys, have, strict=True) if h])
        gt, gt_root = truth["gt"][have], truth["root"][have]
        out["mpjpe"] = float(metrics.mpjpe(pred, gt).mean())
        out["pa_mpjpe"] = float(metrics.p_mpjpe(pred, gt).mean())
        root_err = 1000 * np.linalg.norm(root - gt_root, axis=-1)
        out["root_error"] = float(root_err.mean())
        # per frame, the mean over the persons received in it (for plots of error over time)
        frame = truth["frame"][have]
        order = np.unique(frame)
        out["frames"] = order.tolist()
        out["frame_mpjpe"] = [float(metrics.mpjpe(pred[frame == f], gt[frame == f]).mean()) for f in order]
        out["frame_root_error"] = [float(root_err[frame == f].mean()) for f in order]
        accel = []  # over consecutive frames of the same true person (ids may switch)
        person = truth["person"] if "person" in truth.files else truth["id"]
        seen = [(s, f, m) for (s, f, _), m, h in zip(keys, person.tolist(), have, strict=True) if h]
        index = {k: i for i, k in enumerate(seen)}
        for (s, f, m), i in index.items():
            prev, nxt = index.get((s, f - 1, m)), index.get((s, f + 1, m))
            if prev is not None and nxt is not None:
                a_pred = pred[nxt] - 2 * pred[i] + pred[prev]
                a_gt = gt[nxt] - 2 * gt[i] + gt[prev]
                accel.append(np.linalg.norm(a_pred - a_gt, axis=-1).mean())
        if accel:
            out["accel_error"] = float(1000 * np.mean(accel))
        return out

    def latency(self) -> dict[str, float]:
        def pct(values: list[float], q: float) -> float:
            return float(np.percentile(values, q)) if values else float("nan")

        return {"node_p50_ms": pct(self.node_latency_ms, 50), "node_p99_ms": pct(self.node_latency_ms, 99),
                "e2e_p50_ms": pct(self.e2e_latency_ms, 50), "e2e_p99_ms": pct(self.e2e_latency_ms, 99)}  # fmt: skip

    def close(self) -> None:
        self.socket.close()


# Z-up world (floor z = 0) and OpenCV camera frame, each turned into BVH's Y-up convention
Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T
CAMERA_TO_Y_UP = np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])


def merge_statuses(statuses: list[Status]) -> Status:
    """Several workers' statuses as one: counters summed, latency and age percentiles the largest, busy the mean
    (one status is returned as it is)."""
    if len(statuses) == 1:
        return statuses[0]
    first = statuses[0]

    def add(name: str) -> int:
        return sum(getattr(s, name) for s in statuses)

    def count(name: str) -> dict[str, int]:
        return {k: sum(getattr(s, name).get(k, 0) for s in statuses) for k in getattr(first, name)}

    def worst(name: str) -> dict[str, float]:
        return {k: max(getattr(s, name)[k] for s in statuses) for k in ("p50", "p99")}

    return Status(
        frames_in=add("frames_in"), frames_out=add("frames_out"), persons_out=add("persons_out"),
        dropped=count("dropped"), errors=count("errors"), errors_unsent=add("errors_unsent"),
        latency_ms=worst("latency_ms"), age_ms=worst("age_ms"), streams=add("streams"), tracks=add("tracks"),
        backend=first.backend, model_hash=first.model_hash, uptime_s=max(s.uptime_s for s in statuses),
        busy=sum(s.busy for s in statuses) / len(statuses), worker=f"{len(statuses)} workers",
    )  # fmt: skip


def resample(times_s: np.ndarray, joints: np.ndarray, fallback_fps: float) -> tuple[np.ndarray, float, int]:
    """A track's poses on a regular clock at its own rate: (F, 17, 3) joints at the median interval
    of ``times_s`` (sorted seconds; ``fallback_fps`` for a single pose), from the first pose to the
    last, gaps filled by linear interpolation -> (joints, frame time s, frames filled)."""
    if len(times_s) < 2:
        return joints, 1.0 / fallback_fps, 0
    dt = float(np.median(np.diff(times_s)))
    grid = times_s[0] + dt * np.arange(int(round((times_s[-1] - times_s[0]) / dt)) + 1)
    flat = joints.reshape(len(joints), -1)
    out = np.stack([np.interp(grid, times_s, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    filled = int(np.sum(np.min(np.abs(grid[:, None] - times_s[None]), axis=1) > dt / 2))
    return out.reshape(len(grid), *joints.shape[1:]), dt, filled


def record(listener: Listener, path: Path, fps: float) -> list[Path]:
    """Write what arrived: ``.bvh`` gives one file per (stream, id) track, ``<stem>_<stream>_<id>.bvh``
    (world joints when the node sent them, else camera-frame joints; Y up, centimetres), timed by
    the poses' capture times (``t_ns``) at the track's own rate, gaps (frames the node dropped or
    the person was not seen) filled by interpolation and counted; ``fps`` only for a track of one
    pose. Any other suffix: an npz of stream, frame (−1 where sent as nil), t_ns, id, rel, root
    (plain arrays: it loads without ``allow_pickle``)."""
    keys = sorted(listener.poses, key=lambda k: (k[0], k[2], listener.t_ns.get((k[0], k[1]), 0)))
    if path.suffix.lower() != ".bvh":
        rel = np.array([listener.poses[k][0] for k in keys])
        root = np.array([listener.poses[k][1] for k in keys])
        streams, ids = np.array([k[0] for k in keys]), np.array([k[2] for k in keys])
        frames = np.array([-1 if k[1] is None else k[1] for k in keys], dtype=np.int64)  # -1: sent as nil
        t_ns = np.array([listener.t_ns.get((k[0], k[1]), 0) for k in keys], dtype=np.int64)
        np.savez(path, stream=streams, frame=frames, t_ns=t_ns, id=ids, rel=rel, root=root)
        return [path]
    from ..data.bvh import write_bvh

    written = []
    for stream, pid in sorted({(k[0], k[2]) for k in keys}):
        track = [k for k in keys if k[0] == stream and k[2] == pid]
        if all(k in listener.world for k in track):
            joints = np.array([listener.world[k] for k in track]) @ Z_UP_TO_Y_UP.T
        else:
            joints = (
                np.array([np.asarray(listener.poses[k][0]) + listener.poses[k][1] for k in track]) @ CAMERA_TO_Y_UP.T
            )
        times = np.array([listener.t_ns.get((k[0], k[1]), 0) for k in track], dtype=np.float64) * 1e-9
        joints, frame_time, filled = resample(times - times[0], joints, fps)
        out = path.with_name(f"{path.stem}_{stream}_{pid}.bvh")
        write_bvh(out, joints, frame_time)
        print(f"{out}: {len(joints)} frames at {1 / frame_time:.1f} Hz, {len(joints) * frame_time:.1f} s "
              f"({filled} filled by interpolation)")  # fmt: skip
        written.append(out)
    return written


def summary(listener: Listener, seconds: float) -> str:
    """A readable account of what arrived: frames, persons, latency, errors by kind, node status."""
    lat = listener.latency()
    kinds: dict[str, int] = {}
    for e in listener.errors:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    singles = sorted({s for s, _ in listener.published} - listener.rig_names)
    rig_frames = sum(s in listener.rig_names for s, _ in listener.published)
    parts = [f"{len(listener.published) - rig_frames} of {len(singles)} streams ({', '.join(singles[:8]) or 'none'})"]
    if listener.rig_names:
        parts.append(f"{rig_frames} of rig {', '.join(sorted(listener.rig_names))}, fusing "
                     f"{len(listener.fused)} member frames")  # fmt: skip
    lines = [
        f"{len(listener.published)} pose3d frames received in {seconds:.1f} s: "
        + "; ".join(parts)
        + f"; {len(listener.poses)} person poses",
        f"latency: node p50 {lat['node_p50_ms']:.1f} ms, p99 {lat['node_p99_ms']:.1f} ms; "
        f"capture to here p50 {lat['e2e_p50_ms']:.1f} ms, p99 {lat['e2e_p99_ms']:.1f} ms",
        "errors received: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"),
    ]
    for stream, floor in sorted(listener.floors.items()):
        fl = {k: floor.get(k, float("nan")) for k in ("height_m", "height_sd_m", "pitch_deg", "roll_deg", "confidence")}
        lines.append(f"floor of {stream} (a guess from the people's feet, no extrinsics): camera {fl['height_m']:.2f} "
                     f"± {fl['height_sd_m']:.2f} m above it, pitch {fl['pitch_deg']:.1f}°, roll {fl['roll_deg']:.1f}°, "
                     f"confidence {fl['confidence']:.2f}")  # fmt: skip
    if listener.status:
        st = listener.status
        who = "node" if st.worker is None else st.worker
        lines.append(f"{who}: {st.frames_in} frames in, {st.frames_out} out, dropped {st.dropped}, "
                     f"backend {st.backend}, model {st.model_hash}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream listen", description=__doc__)
    parser.add_argument("--from", dest="endpoint", default="tcp://127.0.0.1:5556", help="the node's output")
    parser.add_argument("--truth", help="truth npz written by pads-stream replay, to score against")
    parser.add_argument("--record", help="write received poses: FILE.bvh (one BVH per track) or FILE.npz")
    parser.add_argument("--fps", type=float, default=25.0,
                        help="BVH frame rate of a one-pose track (others run at their own t_ns rate)")  # fmt: skip
    add_curve_argument(parser)
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = until Ctrl-C)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    args = parser.parse_args(argv)
    stop = DeferredStop()  # SIGINT or SIGTERM (a service manager's stop) ends the loop: what arrived is written
    listener = Listener(args.endpoint, curve=args.curve)
    start = time.monotonic()
    progress, next_line = Progress(listener), start + args.every
    try:
        while not stop.requested and (not args.seconds or time.monotonic() - start < args.seconds):
            listener.poll(100)
            if not args.quiet and time.monotonic() >= next_line:
                next_line += args.every
                print(progress.line(), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    print(summary(listener, time.monotonic() - start))
    if args.record and listener.poses:
        for path in record(listener, Path(args.record), args.fps):
            print(f"wrote {path}")
        print(f"recorded {len(listener.poses)} poses of {len({(k[0], k[2]) for k in listener.poses})} tracks")
    if args.truth:
        print(accuracy_line(listener.score(Path(args.truth))))


def accuracy_line(scores: dict) -> str:
    """One readable line of :meth:`Listener.score`'s result (the per-frame lists stay in the dict)."""
    if "rig_persons" in scores:
        association = 100 * scores["rig_association"]
        line = f"accuracy (rig): {scores['rig_persons']} fused persons, association {association:.1f} %"
        if "rig_world_mpjpe" in scores:
            line += f", world MPJPE {scores['rig_world_mpjpe']:.1f} mm, root error {scores['rig_root_error']:.1f} mm"
        return line
    if not scores["persons_expected"]:
        return "accuracy: no truth to score against (a detector's file carries none)"
    line = f"accuracy: {scores['persons_received']} of {scores['persons_expected']} persons"
    if "mpjpe" not in scores:
        return line + " (none received)"
    line += f"; MPJPE {scores['mpjpe']:.1f} mm, PA-MPJPE {scores['pa_mpjpe']:.1f} mm, "
    line += "root given" if scores["root_error"] < 1e-3 else f"root error {scores['root_error']:.1f} mm"
    if "accel_error" in scores:
        line += f", acceleration error {scores['accel_error']:.1f} mm/frame²"
    return line


class Progress:
    """One line per interval of what arrived since the last: streams, persons per frame, frames per
    second, the node's latency, drops by reason and errors by kind."""

    def __init__(self, listener: Listener) -> None:
        self.listener, self.t = listener, time.monotonic()
        self.frames, self.poses, self.errors, self.latency = 0, 0, 0, 0

    def line(self) -> str:
        ls, now = self.listener, time.monotonic()
        frames, poses = len(ls.published) - self.frames, len(ls.poses) - self.poses
        errors = ls.errors[self.errors :]
        lat = np.array(ls.node_latency_ms[self.latency :]) if len(ls.node_latency_ms) > self.latency else None
        kinds: dict[str, int] = {}
        for e in errors:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        drops = {k: kinds.pop(k, 0) for k in DROP_KINDS}
        streams = len({s for s, _ in ls.published})
        line = (f"{streams} streams and rigs, {poses / max(frames, 1):.1f} persons per pose3d frame, "
                f"{frames / (now - self.t):.1f} pose3d frames/s"
                + (f", node latency p50 {np.percentile(lat, 50):.0f} ms p99 {np.percentile(lat, 99):.0f} ms"
                   if lat is not None else "")
                + ", dropped " + " ".join(f"{k} {v}" for k, v in drops.items())
                + ", errors " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"))  # fmt: skip
        self.t, self.frames, self.poses = now, len(ls.published), len(ls.poses)
        self.errors, self.latency = len(ls.errors), len(ls.node_latency_ms)
        return line
