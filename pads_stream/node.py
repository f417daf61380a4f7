"""``pads-stream node``: 2D keypoints in over ZeroMQ, posterior sampling per frame, 3D poses out.

Sockets: one SUB (``kp2d/…``, ``camera/…``) and one PUB (``pose3d/…``, ``status``, ``error``),
both owned by :class:`Node`, polled from one thread, closed on the way out. Units: pixels in;
metres out, camera frame (OpenCV axes). Protocol: ``docs/protocol.md``.

Clocks: ``t_ns`` is the sender's capture time, passed through untouched; ``t_recv_ns`` and
``t_pub_ns`` are this host's ``time.time_ns()``. Each stream's clock is followed by
:class:`pads_stream.clock.SenderClock` (an offset that survives steps); a frame's **age** is its
delay since capture on this host's clock, so time spent queued in ZeroMQ counts even when the
clocks differ. Frames whose age exceeds the latency budget are dropped (``stale``), on arrival or
before sampling; every dropped frame is answered on ``error`` with the reason.

Real time: per stream only the newest unprocessed frame is kept (an older one still waiting is
``superseded``); every person of every ready stream goes into one batched sampler call per
start kind. Tracking (warm starts, the depth and One Euro filters, the plausibility gate) is the
socket-free :mod:`pads_stream.tracker`, one :class:`~pads_stream.tracker.StreamTracks` per
stream. Containment: bad input and failed
estimates are answered on ``error`` and counted, per person where possible; nothing one stream
sends can stop the node or another stream. State (streams, cameras, tracks) is bounded and expires.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from .api import PoseModel, load_model
from .budget import StepCost
from .camera import camera_to_world, normalized_rays, project, undistort_points
from .clock import ClockConfig, SenderClock
from .config import from_dict, load_json, to_dict
from .floor import FloorTracker
from .fusion import FusionConfig, RigFrames, RigTracks, ViewPerson, Waiting, fuse_frame
from .layout import to_h36m
from .rootfind import initial_root
from .shutdown import DeferredStop, exit_on_stop_signals
from .skeleton import H36M_PARENTS
from .smoothing import OneEuroConfig
from .sockets import RateLimit, add_curve_argument, inbound
from .stepgraph import package_file
from .tracker import Estimate, Observation, StreamTracks, TrackerConfig, estimate_persons
from .wire import (
    DROP_KINDS,
    ERROR_KINDS,
    Camera,
    CameraUpdate,
    ErrorMessage,
    Kp2dFrame,
    PersonView,
    Pose3d,
    PosePerson,
    RigView,
    Status,
    WireError,
    WorkerLoad,
    decode_inbound,
    encode_error,
    encode_pose3d,
    encode_status,
)
from .worker import RouterLink

DEFAULT_CONFIG = package_file("configs", "node.json")


@dataclass(frozen=True)
class NodeConfig(TrackerConfig, FusionConfig):
    """Node settings (the package's ``configs/node.json`` overrides these defaults): the tracker's
    (:class:`pads_stream.tracker.TrackerConfig`: steps, warm start, filters), the rigs'
    (:class:`pads_stream.fusion.FusionConfig`: grouping and association) and these."""

    inp: str = "tcp://*:5555"  # where rigs publish 2D keypoints
    out: str = "tcp://*:5556"  # where consumers subscribe to 3D poses
    bind_in: bool = True  # bind the input (rigs connect), else connect to it
    bind_out: bool = True  # bind the output (consumers connect), else connect to it
    model: str | None = None  # checkpoint; None = the shipped default
    backend: str = "auto"
    threads: int = 1  # ONNX Runtime intra-op threads (0: its default, one per core); spinning stays off
    latency_budget_ms: float = 100.0  # frames older than this (age, see module docstring) are dropped
    clock_step_s: float = 1.0  # a sender clock offset change beyond this is a step (pads_stream.clock)
    clock_confirm: int = 3  # frames that confirm a stepped clock before it is followed
    poll_ms: int = 5
    status_period_s: float = 1.0  # status messages on the output
    log_period_s: float = 5.0  # a one-line status on stdout (0: never)
    max_streams: int = 256  # streams with state (camera, tracks); beyond it new streams are refused
    stream_ttl_s: float = 60.0  # a stream that sent nothing for this long is forgotten
    max_batch: int = 512  # persons per sampler call
    # steps chosen per batch from the time available (pads_stream.budget): as many as let the batch finish
    # before its streams' next frames are due (and within latency_budget_ms), from `steps` up to steps_max;
    # a warm start gets warm_steps / steps as many. steps_max <= steps: always `steps`
    steps_max: int = 0
    max_drain: int = 2000  # messages read per loop iteration before processing
    max_errors_per_s: float = 2000.0  # error messages published per second; the rest are only counted
    receive_hwm: int = 1000  # ZeroMQ queue bound, messages
    curve_secret_key: str = ""  # CurveZMQ: the node's .key_secret file ("" = no encryption)
    curve_clients: str = ""  # CurveZMQ: folder of authorised client public keys ("" = any client with the node's key)
    curve_server_key: str = ""  # CurveZMQ for the sockets it connects (a cluster worker): their server's public .key
    curve_client_secret: str = ""  # ... and this worker's .key_secret file, for the sockets it connects
    router: str = ""  # a cluster worker: take input from this router (docs/cluster.md) instead of the input SUB
    worker: str = ""  # ... under this name ("" = <host>-<pid>)
    heartbeat_s: float = 0.25  # ... heartbeat interval to and from the router
    liveness: int = 3  # ... heartbeats the router may miss before the worker reconnects
    router_lost_exit_s: float = 0.0  # ... stop when the router has been silent this long (0 = never)
    floor_estimate: bool = True  # without extrinsics, estimate the floor from the people's feet (pads_stream.floor)
    floor_min_confidence: float = 0.3  # ... and publish the world it implies from this confidence on


@dataclass
class StreamState:
    """What the node remembers of a stream."""

    camera: Camera | None = None
    last_seen: float = 0.0  # time.monotonic() of the last message
    clock: SenderClock = field(default_factory=SenderClock)
    tracks: StreamTracks = field(default_factory=StreamTracks)
    floor: FloorTracker = field(default_factory=FloorTracker)  # without extrinsics: the floor its people show
    error_budget: RateLimit | None = None  # this stream's rejections on `error` (None: the node's)
    last_sender_s: float | None = None  # the capture time of its last admitted frame, s on the sender's clock
    interval_s: float | None = None  # its frame interval, s (an exponential average)


@dataclass
class Person:
    """One person of a frame ready for the sampler (H36M order, undistorted pixels, metres)."""

    id: int
    kp: np.ndarray  # (17, 2) px
    conf: np.ndarray  # (17,)
    rays: np.ndarray  # (17, 2) K⁻¹p
    K: np.ndarray  # (3, 3)
    root: np.ndarray | None  # (3,) m or None (to be estimated)
    camera: Camera  # the stream's latched camera (extrinsics, if any, for the floor and world joints)


@dataclass
class Pending:
    """The newest admitted frame of a stream, waiting for the sampler."""

    frame: Kp2dFrame
    t_recv: int
    t_capture: int  # the capture time on this host's clock, ns (pads_stream.clock)
    t_sender: int  # the capture time on the sender's clock, ns (t_ns where usable): the filters' time
    persons: list[Person]


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

    def status(self, backend: str, model_hash: str, streams: int, tracks: int, worker: str | None = None) -> Status:
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
        )  # fmt: skip


class Node:
    """The streaming node: owns its sockets; :meth:`run` until :meth:`stop`, then :meth:`close`."""

    def __init__(self, model: PoseModel, cfg: NodeConfig, context: zmq.Context | None = None):
        self.model, self.cfg = model, cfg
        self.context = context or zmq.Context.instance()
        client = (cfg.curve_server_key, cfg.curve_client_secret) if cfg.curve_server_key else None
        self.link = None  # a cluster worker's link to its router (input), else the input SUB below
        if cfg.router:
            name = cfg.worker or f"{socket.gethostname()}-{os.getpid()}"
            self.link = RouterLink(self.context, cfg.router, name, cfg.heartbeat_s, cfg.liveness, cfg.receive_hwm,
                                   client)  # fmt: skip
            self.sub = self.link.socket
        else:
            self.sub = inbound(self.context, cfg.receive_hwm)
        self.pub = self.context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 1000)
        self.auth = None
        # CURVE roles: a socket that connects with client keys is a client, any other a server (with the
        # node's key); a worker's link configures itself
        own = [(self.pub, cfg.bind_out)] + ([(self.sub, cfg.bind_in)] if self.link is None else [])
        if cfg.curve_secret_key:
            from .security import serve_curve

            servers = [sock for sock, binds in own if binds or client is None]
            self.auth = serve_curve(self.context, servers, cfg.curve_secret_key, cfg.curve_clients)
        if client is not None:
            from .security import curve_client

            for sock in [sock for sock, binds in own if not binds]:
                curve_client(sock, *client)
        if not cfg.router:
            (self.sub.bind if cfg.bind_in else self.sub.connect)(cfg.inp)
        (self.pub.bind if cfg.bind_out else self.pub.connect)(cfg.out)
        self.busy = 0.0  # the last status's
        self.poller = zmq.Poller()
        self.poller.register(self.sub, zmq.POLLIN)
        self.streams: dict[str, StreamState] = {}
        self.pending: dict[str, Pending] = {}
        self.rigs: dict[str, RigFrames[Pending]] = {}  # rig name -> its member frames waiting to be fused
        self.rig_tracks: dict[str, RigTracks] = {}
        self.rig_clocks: dict[str, SenderClock] = {}
        self.rig_frames: dict[str, int] = {}  # rig name -> rig frames published (the rig pose3d's frame)
        self.stats = Stats()
        self.stopping = False
        self.next_status = self.next_log = time.monotonic()
        self.logged_drops = 0  # drops counted at the last log line
        self.step_cost = StepCost()  # seconds per sampler step, learned from the batches run (steps_max)
        self.scaled: dict[int, NodeConfig] = {}  # the config at each step count chosen
        self.last_drop = -1e9  # time.monotonic() of the last drop notice (more steps wait 2 s after one)
        self.error_budget = RateLimit(cfg.max_errors_per_s)
        self.clock_cfg = ClockConfig(cfg.clock_step_s, cfg.clock_confirm)
        model.check_steps(cfg.steps, model.sampler.t_start)  # a bad config fails here, not per frame
        model.check_steps(cfg.warm_steps, cfg.warm_t_start)
        if cfg.rig_warm_t_start > 0:
            model.check_steps(cfg.steps, cfg.rig_warm_t_start)

    @property
    def endpoints(self) -> tuple[str, str]:
        """The bound or connected (input, output) endpoints, with real ports."""
        return (self.sub.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.inp,
                self.pub.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.out)  # fmt: skip

    def stop(self, *_: object) -> None:
        """Ask :meth:`run` to return after the batch in flight (safe from a signal handler)."""
        self.stopping = True

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
        else:
            self.sub.close()
        self.pub.close()
        if self.auth is not None:
            self.auth.stop()

    def run(self) -> None:
        """Poll, process and publish until :meth:`stop`; the batch in flight is finished."""
        while not self.stopping:
            self.spin_once()

    def spin_once(self) -> None:
        """One iteration: wait up to ``poll_ms`` for input, drain it, process, maybe report."""
        if self.poller.poll(self.cfg.poll_ms):
            self.drain()
        started = time.monotonic()
        if self.pending:
            self.process()
        if self.rigs:
            self.process_rigs()
        now = time.monotonic()
        self.stats.busy_s += now - started
        if self.link is not None:
            self.tend_link()
        if now >= self.next_status:
            self.next_status = now + self.cfg.status_period_s
            self.expire(now)
            status = self.stats.status(self.model.backend.name, self.model.model_hash, len(self.streams),
                                       self.track_count(), self.link.name if self.link else None)  # fmt: skip
            self.busy = status.busy
            self.pub.send_multipart(encode_status(status))
            if self.cfg.log_period_s and now >= self.next_log:
                self.next_log = now + self.cfg.log_period_s
                dropped = sum(status.dropped.values())
                say(status_line(status, dropped - self.logged_drops, self.cfg))
                self.logged_drops = dropped

    def extrinsics(self, stream: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(R, t) of ``stream``'s latched camera, or (None, None)."""
        state = self.streams.get(stream)
        camera = state.camera if state is not None else None
        return (camera.R, camera.t) if camera is not None else (None, None)

    def track_count(self) -> int:
        """Remembered persons over all streams."""
        return sum(len(s.tracks.tracks) for s in self.streams.values())

    def tend_link(self) -> None:
        """A cluster worker: heartbeat to the router, reconnect when it went silent, stop when it
        has been silent for ``router_lost_exit_s``."""
        assert self.link is not None

        def load() -> WorkerLoad:
            return WorkerLoad(os.getpid(), len(self.streams), self.track_count(), self.busy, self.stats.frames_in,
                              self.stats.frames_out)  # fmt: skip

        silent = self.link.silent_s
        if self.link.tick(load):
            self.poller.unregister(self.sub)
            self.sub = self.link.socket
            self.poller.register(self.sub, zmq.POLLIN)
        if self.cfg.router_lost_exit_s and silent > self.cfg.router_lost_exit_s:
            say(f"pads-stream node: router {self.cfg.router} silent for {silent:.1f} s; stopping")
            self.stop()

    # -- input ---------------------------------------------------------------------------

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
                    state.camera = msg.camera
                else:
                    self.admit(msg, t_recv, state)
            except WireError as err:
                self.reject(err)

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
            state.camera = frame.camera
        if state.camera is None:
            raise WireError("no_camera", "no camera latched: send camera/<stream> or include camera in kp2d",
                            frame.stream, frame.frame)  # fmt: skip
        persons = self.prepare(frame, state.camera)  # first, so a frame dropped below still gets its errors
        rig = state.camera.rig  # a rig's members share one clock: their capture times are one timeline
        if rig is not None and rig in self.streams:
            raise WireError("camera", "camera.rig names a stream: rigs publish on pose3d/<rig>, name them apart",
                            frame.stream, frame.frame)  # fmt: skip
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
                out.append(Person(p.id, kp[k], conf[k], rays[k], camera.K, p.root, camera))
        return out

    def reject(self, err: WireError) -> None:
        """Count a rejection and answer it on ``error``."""
        self.stats.errors[err.kind] += 1
        self.answer(err)

    def drop(self, frame: Kp2dFrame, kind: str) -> None:
        """Count an accepted frame that will not be estimated (``DROP_KINDS``) and answer it on ``error``."""
        self.stats.dropped[kind] += 1
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
        for rig in [r for r, frames in self.rigs.items() if not frames.last_seen and not frames.waiting]:
            del self.rigs[rig]
            self.rig_tracks.pop(rig, None)
            self.rig_clocks.pop(rig, None)
        now_ns = time.time_ns()
        for st in self.streams.values():
            st.tracks.expire(now_ns, self.cfg)

    # -- estimation ----------------------------------------------------------------------

    def process(self) -> None:
        """Estimate every person of every fresh pending frame in batched calls; publish per stream."""
        now = time.time_ns()
        frames = []
        for pending in self.pending.values():
            if now - pending.t_capture > self.cfg.latency_budget_ms * 1e6:
                self.drop(pending.frame, "stale")
            else:
                frames.append(pending)
        self.pending.clear()
        items = [(f, p) for f in frames for p in f.persons]
        results: dict[int, list] = {id(f): [] for f in frames}
        steps = {id(f): self.cfg.steps for f in frames}
        for lo in range(0, len(items), self.cfg.max_batch):
            batch = items[lo : lo + self.cfg.max_batch]
            n = self.batch_steps(batch, lo + len(batch) < len(items))
            started, inside = time.monotonic(), self.model.sampler_s
            estimates = self.estimate(batch, n)
            self.step_cost.observe(len(batch), n, time.monotonic() - started, self.model.sampler_s - inside)
            self.stats.steps.append(n)
            for f, _ in batch:
                steps[id(f)] = n
            for (f, person), result in zip(batch, estimates, strict=True):
                if result is None:
                    self.reject(WireError("estimate_failed", "non-finite or implausible result (a bone out of the "
                                          "human range, off its 2D rays, ...)", f.frame.stream, f.frame.frame,
                                          person.id))  # fmt: skip
                else:
                    results[id(f)].append((person, result))
        for f in frames:
            self.publish(f, results[id(f)], steps[id(f)])

    def batch_steps(self, batch: list[tuple[Pending, Person]], more: bool) -> int:
        """Sampler steps for ``batch``: ``steps``, or (``steps_max`` > ``steps``) as many as finish
        in 60 % of the time before the first of its streams' next frames is due and within the
        latency budget, by the cost measured so far (:class:`pads_stream.budget.StepCost`);
        ``steps`` when another batch follows in this round or a frame was dropped in the last 2 s."""
        lo, hi = self.cfg.steps, self.cfg.steps_max
        if hi <= lo or more or time.monotonic() - self.last_drop < 2.0:  # a frame was dropped: no spare time
            return lo
        now_ns = time.time_ns()
        budget_s = self.cfg.latency_budget_ms * 1e-3
        for f in {id(f): f for f, _ in batch}.values():  # each frame once, not once per person
            state = self.streams.get(f.frame.stream)
            age_s = (now_ns - f.t_capture) * 1e-9
            budget_s = min(budget_s, self.cfg.latency_budget_ms * 1e-3 - age_s)
            if state is None or state.interval_s is None:
                return lo  # a new stream: its rate is not known yet
            budget_s = min(budget_s, state.interval_s - (now_ns - f.t_recv) * 1e-9)
        return self.step_cost.steps(len(batch), 0.6 * budget_s, lo, hi)

    def estimate(self, batch: list[tuple[Pending, Person]], steps: int | None = None) -> list[Estimate | None]:
        """An :class:`pads_stream.tracker.Estimate` per person of ``batch``, None where it failed: the
        socket-free tracker (:func:`pads_stream.tracker.estimate_persons`) on each stream's tracks, at
        ``steps`` sampler steps (default the config's; a warm start gets warm_steps / steps as many)."""
        items = []
        for f, p in batch:
            obs = Observation(p.id, p.rays, p.conf, p.root, p.camera.R, p.camera.t, f.t_recv, f.t_sender * 1e-9)
            items.append((self.streams[f.frame.stream].tracks, obs))
        cfg = self.cfg
        if steps is not None and steps != cfg.steps:
            warm = max(1, round(steps * cfg.warm_steps / cfg.steps))
            warm = min(warm, self.model.max_steps(cfg.warm_t_start))
            steps = min(steps, self.model.max_steps(self.model.sampler.t_start))
            cfg = self.scaled.setdefault(steps, dataclasses.replace(cfg, steps=steps, warm_steps=warm))
        return estimate_persons(self.model, cfg, items)

    def process_rigs(self) -> None:
        """Fuse every rig frame that is ready (:class:`pads_stream.fusion.RigFrames`) and publish it."""
        now_ns, now = time.time_ns(), time.monotonic()
        for rig, frames in list(self.rigs.items()):
            group = frames.take(now_ns, now, self.cfg)
            if group is None:
                continue
            fresh = []
            for w in group:
                if now_ns - w.t_capture > self.cfg.latency_budget_ms * 1e6:
                    self.drop(w.item.frame, "stale")
                else:
                    fresh.append(w.item)
            if fresh:
                self.fuse(rig, fresh)

    def fuse(self, rig: str, members: list[Pending]) -> None:
        """One rig frame: its member frames' persons associated, lifted together, published as
        ``pose3d/<rig>`` (world joints; camera-frame joints in the first member's camera)."""
        views = [[ViewPerson(p.id, p.kp, p.conf, p.rays, p.K, p.camera.R, p.camera.t) for p in m.persons]
                 for m in members]  # fmt: skip
        by_id = all(p.camera.rig_ids for m in members for p in m.persons)
        tracks = self.rig_tracks.setdefault(rig, RigTracks())
        t_capture = max(m.t_capture for m in members)
        try:
            streams = [m.frame.stream for m in members]
            fused, refused = fuse_frame(self.model, self.cfg.steps, views, self.cfg, tracks, t_capture, by_id, streams)
        except (ValueError, np.linalg.LinAlgError):  # degenerate geometry: refused, never the node's end
            fused, refused = [], [[(v, i)] for v, m in enumerate(members) for i in range(len(m.persons))]
        for group in refused:
            v, i = group[0]
            self.reject(WireError("estimate_failed", "a rig person's fused pose is non-finite or implausible "
                                  f"({len(group)} views)", members[v].frame.stream, members[v].frame.frame,
                                  members[v].persons[i].id))  # fmt: skip
        first = next((m for m in members if m.persons), members[0])  # its camera frame is the output's
        ref = first.persons[0].camera if first.persons else None
        smooth = OneEuroConfig(self.cfg.one_euro_min_cutoff, self.cfg.one_euro_beta)
        t_sender_s = max(m.t_sender for m in members) * 1e-9  # the rig's clock: the filter's time
        persons, used = [], set()
        for person in fused:
            world = tracks.smoothed(person.id, person.world, t_sender_s, smooth) if self.cfg.one_euro else person.world
            cam = world if ref is None else world @ ref.R.T + ref.t
            views_of = tuple(PersonView(members[v].frame.stream, members[v].persons[i].id, e)
                             for v, i, e in person.detections)  # fmt: skip
            used |= {v for v, _, _ in person.detections}
            for v, _, e in person.detections:
                self.stats.residual(rig, members[v].frame.stream, e)
            conf = np.max([members[v].persons[i].conf for v, i, _ in person.detections], axis=0)
            reproj = float(np.mean([e for _, _, e in person.detections]))
            persons.append(PosePerson(person.id, cam, cam[0], cam - cam[0], reproj, conf, world, views_of))
        number = self.rig_frames[rig] = self.rig_frames.get(rig, -1) + 1
        t_recv, t_pub = min(m.t_recv for m in members), time.time_ns()
        rig_views = tuple(RigView(m.frame.stream, m.frame.frame, v in used, *self.extrinsics(m.frame.stream))
                          for v, m in enumerate(members))  # fmt: skip
        self.pub.send_multipart(encode_pose3d(Pose3d(rig, number, first.frame.t_ns, t_recv, t_pub, tuple(persons),
                                                     rig_views, first.frame.stream)))  # fmt: skip
        self.stats.frames_out += 1
        self.stats.persons_out += len(persons)
        self.stats.latency_ms.append((t_pub - t_recv) / 1e6)
        self.stats.age_ms.append((t_pub - min(m.t_capture for m in members)) / 1e6)

    # -- output --------------------------------------------------------------------------

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


def say(line: str) -> None:
    """Print a log line; a closed or full stdout (a parent that went away) never stops the node."""
    try:
        print(line, flush=True)
    except OSError:  # from now on to nowhere, so that the exit's own flush cannot fail either
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


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


def warm_up(model: PoseModel, cfg: NodeConfig) -> None:
    """Small estimates (one camera, a rig of two) so the first real frames do not pay for session creation."""
    rays = np.tile(np.linspace(-0.1, 0.1, 17)[:, None], (1, 1, 2))
    model.lift(rays, np.ones((1, 17)), np.array([[0.0, 0.0, 5.0]]), steps=min(cfg.steps, 2))
    side = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # a camera on the x axis, facing back
    R = np.stack([np.eye(3), side])[:, None]
    t = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])[:, None]
    model.lift_rig(np.stack([rays, rays]), np.ones((2, 1, 17)), R, t, steps=min(cfg.steps, 2))


def main(argv: list[str] | None = None) -> None:
    exit_on_stop_signals()  # while it imports: stop = exit 0 (the CLI sets it even earlier); then DeferredStop
    parser = argparse.ArgumentParser(prog="pads-stream node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="node config JSON (default: %(default)s)")
    parser.add_argument("--in", dest="inp", help="bind the input here (default tcp://*:5555)")
    parser.add_argument("--out", help="bind the output here (default tcp://*:5556)")
    parser.add_argument("--in-connect", help="connect the input to this endpoint instead of binding")
    parser.add_argument("--out-connect", help="connect the output to this endpoint instead of binding")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--backend", choices=("auto", "torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--steps", type=int, help="cold-start sampler steps (default from the config: 10)")
    cluster = parser.add_argument_group("as a cluster's worker (docs/cluster.md)")
    cluster.add_argument("--router", help="take input from this cluster router endpoint (with --out-connect to its "
                         "collect endpoint)")  # fmt: skip
    cluster.add_argument("--worker", help="this worker's name (default <host>-<pid>)")
    cluster.add_argument("--heartbeat", type=float, help="seconds between heartbeats (default from the config: 0.25)")
    cluster.add_argument("--liveness", type=int, help="heartbeats the router may miss before a reconnect (default 3)")
    cluster.add_argument("--router-lost-exit", type=float, help="stop when the router is silent this long, s")
    add_curve_argument(cluster)
    args = parser.parse_args(argv)
    values = to_dict(load_json(NodeConfig, args.config))
    for key, value in (("router", args.router), ("worker", args.worker), ("heartbeat_s", args.heartbeat),
                       ("liveness", args.liveness), ("router_lost_exit_s", args.router_lost_exit)):  # fmt: skip
        if value is not None:
            values[key] = value
    if args.curve:
        values.update(curve_server_key=args.curve[0], curve_client_secret=args.curve[1])
    for key, value in (("inp", args.inp), ("out", args.out), ("model", args.model), ("backend", args.backend),
                       ("steps", args.steps)):  # fmt: skip
        if value is not None:
            values[key] = value
    if args.in_connect:
        values.update(inp=args.in_connect, bind_in=False)
    if args.out_connect:
        values.update(out=args.out_connect, bind_out=False)
    cfg = from_dict(NodeConfig, values, "node config")
    stop = DeferredStop()  # a stop while the model loads ends the node after the load, never inside it
    model = load_model(cfg.model, backend=cfg.backend, threads=cfg.threads)
    warm_up(model, cfg)
    if stop.requested:
        return
    node = Node(model, cfg)
    signal.signal(signal.SIGINT, node.stop)
    signal.signal(signal.SIGTERM, node.stop)
    if stop.requested:  # between the check above and the handlers
        node.stop()
    inp, out = node.endpoints
    say(f"pads-stream node: in {inp}, out {out}, backend {model.backend.name}, model {model.model_hash}")
    try:
        node.run()
    finally:
        node.close()
    say(f"pads-stream node: stopped after {node.stats.frames_out} frames")
