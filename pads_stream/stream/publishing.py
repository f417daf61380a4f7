"""What the node tells: every counter and latency window of ``status``, and one line of it for a log."""

from __future__ import annotations

import collections
import time

import numpy as np

from ..geometry.camera import camera_to_world, project
from .node_state import NodeConfig, Pending, Person
from .tracker import Estimate
from .wire import (
    DROP_KINDS,
    ERROR_KINDS,
    Pose3d,
    PosePerson,
    Status,
    encode_pose3d,
)


class Stats:
    """Counters and the latency windows reported on ``status`` (every counter, zeros included)."""

    def __init__(self) -> None:
        self.frames_in = self.frames_out = self.persons_out = 0
        self.dropped: collections.Counter[str] = collections.Counter(dict.fromkeys(DROP_KINDS, 0))
        self.errors: collections.Counter[str] = collections.Counter(dict.fromkeys(ERROR_KINDS, 0))
        self.errors_unsent = 0
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=2000)
        self.age_ms: collections.deque[float] = collections.deque(maxlen=2000)
        self.started = time.monotonic()
        self.busy_s = 0.0  # time spent estimating, s
        self.window = (self.started, 0.0)  # (when, busy_s) at the last status
        self.steps: collections.deque[int] = collections.deque(maxlen=2000)  # sampler steps of recent batches
        # per rig and member stream: the fused persons' reprojection errors there (px), the last 500
        self.rig_residuals: dict[str, dict[str, collections.deque[float]]] = {}

    def residual(self, rig: str, stream: str, px: float) -> None:
        """Count one fused person's reprojection error (px) in a rig's member camera."""
        self.rig_residuals.setdefault(rig, {}).setdefault(stream, collections.deque(maxlen=500)).append(px)

    def status(self, backend: str, model_hash: str, streams: int, tracks: int, worker: str | None = None,
               calibration: dict | None = None, events: list[str] | None = None) -> Status:  # fmt: skip
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.zeros(1)
        age = np.asarray(self.age_ms) if self.age_ms else np.zeros(1)
        now = time.monotonic()
        busy = min(1.0, (self.busy_s - self.window[1]) / max(now - self.window[0], 1e-6))
        self.window = (now, self.busy_s)
        return Status(
            frames_in=self.frames_in, frames_out=self.frames_out, persons_out=self.persons_out,
            dropped=dict(self.dropped), errors=dict(self.errors), errors_unsent=self.errors_unsent,
            latency_ms={"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))},
            age_ms={"p50": float(np.percentile(age, 50)), "p99": float(np.percentile(age, 99))},
            streams=streams, tracks=tracks, backend=backend, model_hash=model_hash,
            uptime_s=now - self.started, busy=busy, worker=worker,
            rigs={rig: {stream: float(np.median(e)) for stream, e in cams.items()}
                  for rig, cams in self.rig_residuals.items()},
            steps={"p50": int(np.median(self.steps)), "min": int(min(self.steps)), "max": int(max(self.steps))}
            if self.steps else {"p50": 0, "min": 0, "max": 0},
            calibration=calibration or {}, events=list(events or ()),
        )  # fmt: skip


def status_line(s: Status, new_drops: int = 0, cfg: NodeConfig | None = None) -> str:
    """A one-line human summary of a status; with ``new_drops`` frames dropped since the last line,
    what to change so that the node keeps up."""
    errors = ", ".join(f"{k} {v}" for k, v in s.errors.items() if v) or "none"
    line = (f"pads-stream node: {s.frames_in} frames in, {s.frames_out} out, {s.persons_out} persons; "
            f"latency p50 {s.latency_ms['p50']:.1f} ms p99 {s.latency_ms['p99']:.1f} ms; busy {100 * s.busy:.0f} %; "
            f"dropped superseded {s.dropped['superseded']} stale {s.dropped['stale']} late {s.dropped['late']}; "
            f"errors {errors}; "
            f"{s.streams} streams, {s.tracks} tracks")  # fmt: skip
    if new_drops and cfg is not None:
        line += (f"; NOT KEEPING UP: {new_drops} frames dropped since the last line — lower steps ({cfg.steps}), "
                 f"raise threads ({cfg.threads}) or latency_budget_ms ({cfg.latency_budget_ms:g}), or send fewer "
                 "frames")  # fmt: skip
    return line


class Publishing:
    """Publishing each batch's poses on ``pose3d`` (a part of :class:`pads_stream.stream.node.Node`)."""

    def publish(self, f: Pending, items: list[tuple[Person, Estimate]], steps: int | None = None) -> None:
        floor = None
        state = self.streams.get(f.frame.stream)
        if self.cfg.floor_estimate and state is not None and items and items[0][0].camera.R is None:
            for person, est in items:  # no extrinsics: the floor its people stand on
                state.floor.add(person.id, f.t_sender * 1e-9, est.rel + est.root)
            found = state.floor.update(f.t_sender * 1e-9)
            floor = found if found is not None and found.confidence >= self.cfg.floor_min_confidence else None
        estimated = None if floor is None else floor.extrinsics()
        persons = []
        for person, est in items:
            rel, root = est.rel, est.root
            joints = rel + root
            err = np.linalg.norm(project(joints[None], person.K[None])[0] - person.kp, axis=-1)
            cam = person.camera
            R, t = (cam.R, cam.t) if cam.R is not None else (estimated if estimated is not None else (None, None))
            world = None if R is None else camera_to_world(joints[None], R[None], t[None])[0]
            persons.append(PosePerson(person.id, joints, root, rel, float(err[person.conf > 0].mean()), person.conf,
                                      world, bones=est.bones, bones_weight=est.bones_weight))  # fmt: skip
        t_pub = time.time_ns()
        frame = f.frame
        info = None if floor is None else {"height_m": floor.height, "height_sd_m": floor.height_sd,
                                           "pitch_deg": floor.pitch_deg, "roll_deg": floor.roll_deg,
                                           "confidence": floor.confidence}  # fmt: skip
        self.pub.send_multipart(encode_pose3d(Pose3d(frame.stream, frame.frame, frame.t_ns, f.t_recv, t_pub,
                                                     tuple(persons), floor=info, steps=steps)))  # fmt: skip
        self.stats.frames_out += 1
        self.stats.persons_out += len(persons)
        self.stats.latency_ms.append((t_pub - f.t_recv) / 1e6)
        self.stats.age_ms.append((t_pub - f.t_capture) / 1e6)
