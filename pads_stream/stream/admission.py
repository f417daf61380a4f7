"""The node's intake: read what arrived, check it, keep each stream's newest frame, answer what is refused.

A part of :class:`pads_stream.stream.node.Node` (which owns the sockets and the loop): every
rejected or dropped frame is counted and answered on ``error`` with its reason; one stream's
bad input never blocks another's.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import zmq

from ..geometry.camera import intrinsics_doubt, normalized_rays, undistort_points
from ..geometry.layout import to_h36m
from ..geometry.rootfind import initial_root
from ..geometry.skeleton import H36M_PARENTS
from .calibration import walkers
from .clock import SenderClock
from .fusion import RigFrames, Waiting
from .node_state import Pending, Person, StreamState
from .sockets import RateLimit
from .wire import (
    DROP_KINDS,
    Camera,
    CameraUpdate,
    ErrorMessage,
    Kp2dFrame,
    WireError,
    decode_inbound,
    encode_error,
)

K_CHECK_FRAMES = 25  # frames with people before a stream's K is checked against its keypoints


class Admission:
    """The node's intake: read what arrived, check it, keep each stream's newest frame, answer what is refused."""

    def drain(self) -> None:
        """Receive what is queued (up to ``max_drain``), keeping the newest frame per stream."""
        for _ in range(self.cfg.max_drain):
            try:
                frames = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            t_recv = time.time_ns()
            if self.link is not None and (frames := self.link.unwrap(frames)) is None:
                continue  # the router's heartbeat
            try:
                msg = decode_inbound(frames)
                state = self.stream_state(msg.stream, getattr(msg, "frame", None))
                if isinstance(msg, CameraUpdate):
                    state.camera = self.latch(msg.stream, msg.camera, None)
                else:
                    self.admit(msg, t_recv, state)
            except WireError as err:
                self.reject(err)

    def walk_frame(self, rig: str, stream: str, t_ns: int, rig_ids: bool, persons: list[Person]) -> None:
        """A self-calibrating rig's member frame as its calibration walk: its only person, or with the
        rig's own ids each person apart (``t_ns`` on the camera's own clock)."""
        for walker, p in walkers(persons, rig_ids):
            self.calibrator.observe(rig, stream, t_ns, p.K, p.kp, p.conf, walker)

    def latch(self, stream: str, camera: Camera, frame: int | None) -> Camera:
        """The camera to latch for ``stream``: a rig's member without R and t takes them from the
        node's rig calibration (``rig_calibration``), or is refused (``camera``)."""
        if camera.rig is None or camera.R is not None:
            return camera
        known = self.calibrations.get(stream)
        if (known is None or known.rig != camera.rig) and self.cfg.rig_autocalibrate_s > 0:
            return camera  # the rig calibrates itself from its people first (its views: drop notices `calibrating`)
        if known is None or known.rig != camera.rig:
            raise WireError("camera", "a rig's camera needs its extrinsics (R and t in the rig's world), or a "
                            "calibration of this stream in the node's rig_calibration files (pads-stream calibrate)",
                            stream, frame)  # fmt: skip
        return dataclasses.replace(camera, R=known.R, t=known.t)

    def stream_state(self, stream: str, frame: int | None) -> StreamState:
        """The state of ``stream``, made if new. A stream is forgotten only after ``stream_ttl_s``
        of silence (its latched camera with it); while ``max_streams`` have state a new one is
        refused (``too_many_streams``)."""
        state = self.streams.get(stream)
        if state is None:
            if len(self.streams) >= self.cfg.max_streams:
                self.expire(time.monotonic())
            if len(self.streams) >= self.cfg.max_streams:
                raise WireError("too_many_streams", f"{self.cfg.max_streams} streams have state; none has been "
                                f"silent for {self.cfg.stream_ttl_s:g} s", stream, frame)  # fmt: skip
            state = self.streams[stream] = StreamState(error_budget=RateLimit(self.cfg.max_errors_per_s))
        state.last_seen = time.monotonic()
        return state

    def admit(self, frame: Kp2dFrame, t_recv: int, state: StreamState) -> None:
        """Check a frame's persons now (so a superseded frame's errors are still answered) and
        keep it as the stream's newest pending frame."""
        self.stats.frames_in += 1
        if frame.camera is not None:
            camera = self.latch(frame.stream, frame.camera, frame.frame)
            if state.camera is None or not np.array_equal(camera.K, state.camera.K):
                state.k_hi, state.k_frames = None, 0  # a new K: checked again
            state.camera = camera
        if state.camera is None:
            raise WireError("no_camera", "no camera latched: send camera/<stream> or include camera in kp2d",
                            frame.stream, frame.frame)  # fmt: skip
        known = self.calibrations.get(frame.stream)
        own_t_ns = frame.t_ns  # on the camera's own clock (a calibration walk's time)
        if known is not None and state.camera.rig == known.rig and frame.t_ns > 0:  # its clock on the rig's
            frame = dataclasses.replace(frame, t_ns=known.reference_ns(frame.t_ns))
        persons = self.prepare(frame, state.camera)  # first, so a frame dropped below still gets its errors
        self.check_intrinsics(frame, state, persons)
        rig = state.camera.rig  # a rig's members share one clock: their capture times are one timeline
        if rig is not None and rig in self.streams:
            raise WireError("camera", "camera.rig names a stream: rigs publish on pose3d/<rig>, name them apart",
                            frame.stream, frame.frame)  # fmt: skip
        if rig is not None and (state.camera.R is None or self.calibrator.refining(rig)):
            self.walk_frame(rig, frame.stream, own_t_ns, state.camera.rig_ids, persons)
        if rig is not None and state.camera.R is None:  # a self-calibrating rig's view: its walk, not yet fused
            self.drop(frame, "calibrating")
            return
        clock = state.clock if rig is None else self.rig_clocks.setdefault(rig, SenderClock())
        t_capture, t_sender, unusable = clock.place(frame.t_ns, t_recv, self.clock_cfg)
        if unusable:
            self.reject(WireError("clock", unusable, frame.stream, frame.frame))
        if t_recv - t_capture > self.cfg.latency_budget_ms * 1e6:
            self.drop(frame, "stale")
            return
        pending = Pending(frame, t_recv, t_capture, t_sender, persons)
        if state.last_sender_s is not None and 0 < t_sender * 1e-9 - state.last_sender_s < 5.0:
            gap = t_sender * 1e-9 - state.last_sender_s
            state.interval_s = gap if state.interval_s is None else state.interval_s + 0.1 * (gap - state.interval_s)
        state.last_sender_s = t_sender * 1e-9
        if rig is not None:  # one view of a rig: fused with the rig's other views of the same moment
            if rig not in self.rigs and len(self.rigs) >= self.cfg.max_streams:
                raise WireError("too_many_streams", f"{self.cfg.max_streams} rigs have state", frame.stream,
                                frame.frame)  # fmt: skip
            waiting = Waiting(frame.stream, t_capture, t_recv, pending)
            old, late = self.rigs.setdefault(rig, RigFrames()).add(waiting, time.monotonic(), self.cfg)
            if old is not None:
                self.drop(old.item.frame, "late" if late else "superseded")
            return
        if frame.stream in self.pending:
            self.drop(self.pending[frame.stream].frame, "superseded")
        self.pending[frame.stream] = pending

    def check_intrinsics(self, frame: Kp2dFrame, state: StreamState, persons: list[Person]) -> None:
        """After :data:`K_CHECK_FRAMES` frames with people under one latched K, say once (``intrinsics``)
        when it cannot belong to the keypoints seen (:func:`pads_stream.geometry.camera.intrinsics_doubt`);
        the frames are estimated all the same."""
        if state.k_frames > K_CHECK_FRAMES or not persons:
            return
        seen = np.concatenate([p.kp[p.conf > 0] for p in persons])
        if len(seen):
            hi = seen.max(axis=0)
            state.k_hi = hi if state.k_hi is None else np.maximum(state.k_hi, hi)
        state.k_frames += 1
        if state.k_frames == K_CHECK_FRAMES and state.k_hi is not None:
            doubt = intrinsics_doubt(state.camera.K, state.k_hi[None])
            if doubt is not None:
                self.reject(WireError("intrinsics", doubt, frame.stream, frame.frame))

    def prepare(self, frame: Kp2dFrame, camera: Camera) -> list[Person]:
        """The frame's persons in H36M order, undistorted, with rays; rejects the unusable ones."""
        if not frame.persons:
            return []
        kp = np.stack([p.kp for p in frame.persons])
        conf = np.stack([p.conf for p in frame.persons])
        kp, conf = to_h36m(kp, conf, frame.layout)
        if camera.dist is not None:
            kp = undistort_points(kp, camera.K, camera.dist)
        rays = normalized_rays(kp, camera.K)[..., :2]
        _, root_ok = initial_root(rays, conf)
        out = []
        for k, p in enumerate(frame.persons):
            if not np.any(conf[k] > 0):
                self.reject(WireError("no_joints", "no joint with confidence > 0", frame.stream, frame.frame, p.id))
            elif p.root is None and not root_ok[k]:
                seen = (conf[k, 1:] > 0) & (conf[k, list(H36M_PARENTS[1:])] > 0)
                why = ("every bone seen has no 2D length (all its joints on one pixel?)" if seen.any()
                       else "no bone with both ends seen")  # fmt: skip
                self.reject(WireError("no_root", f"root not sent and nothing to size the person: {why}",
                                      frame.stream, frame.frame, p.id))  # fmt: skip
            elif not np.isfinite(rays[k][conf[k] > 0]).all():
                self.reject(WireError("value", "keypoints undistort to non-finite rays", frame.stream, frame.frame,
                                      p.id))  # fmt: skip
            else:
                out.append(Person(p.id, kp[k], conf[k], rays[k], camera.K, p.root, camera, p.stature_m))
        return out

    def reject(self, err: WireError) -> None:
        """Count a rejection and answer it on ``error``."""
        self.stats.errors[err.kind] += 1
        self.answer(err)

    def drop(self, frame: Kp2dFrame, kind: str) -> None:
        """Count an accepted frame that will not be estimated (``DROP_KINDS``) and answer it on ``error``."""
        self.stats.dropped[kind] += 1
        if kind != "calibrating":  # a rig still calibrating is no sign of an overloaded node
            self.last_drop = time.monotonic()
        self.answer(WireError(kind, DROP_KINDS[kind], frame.stream, frame.frame))

    def answer(self, err: WireError) -> None:
        """Publish ``err`` on ``error``. The answers to accepted frames (drop notices and
        ``estimate_failed``, at most one per frame or person that passed validation) always go out;
        other rejections are rate-limited per stream (the stream's own budget, or the node's for a
        message naming no stream with state), the excess only counted as unsent: one sender's
        garbage never silences another stream's answers."""
        if err.kind not in DROP_KINDS and err.kind != "estimate_failed":
            state = self.streams.get(err.stream) if err.stream is not None else None
            budget = (state and state.error_budget) or self.error_budget
            if not budget.take():
                self.stats.errors_unsent += 1
                return
        self.pub.send_multipart(
            encode_error(ErrorMessage(err.stream, err.frame, err.person, err.kind, str(err.reason)))
        )

    def expire(self, now: float) -> None:
        """Forget idle streams and tracks too old for a warm start."""
        for name in [s for s, st in self.streams.items() if now - st.last_seen > self.cfg.stream_ttl_s]:
            if name not in self.pending:
                del self.streams[name]
                for frames in self.rigs.values():
                    frames.forget(name)
                for motion in self.rig_motion.values():
                    motion.forget(name)
        for rig in [r for r, frames in self.rigs.items() if not frames.last_seen and not frames.waiting]:
            del self.rigs[rig]
            self.rig_tracks.pop(rig, None)
            self.rig_motion.pop(rig, None)
            self.rig_clocks.pop(rig, None)
        now_ns = time.time_ns()
        for st in self.streams.values():
            st.tracks.expire(now_ns, self.cfg)
