"""The node's settings and what it holds between frames: per stream (camera, clock, tracks, floor),
per person ready for the sampler, and each stream's newest waiting frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry.floor import FloorTracker
from .clock import SenderClock
from .fusion import FusionConfig
from .sockets import RateLimit
from .tracker import StreamTracks, TrackerConfig
from .wire import (
    Camera,
    Kp2dFrame,
)


@dataclass(frozen=True)
class NodeConfig(TrackerConfig, FusionConfig):
    """Node settings (the package's ``configs/node.json`` overrides these defaults): the tracker's
    (:class:`pads_stream.stream.tracker.TrackerConfig`: steps, warm start, filters), the rigs'
    (:class:`pads_stream.stream.fusion.FusionConfig`: grouping and association) and these."""

    inp: str = "tcp://*:5555"  # where rigs publish 2D keypoints
    out: str = "tcp://*:5556"  # where consumers subscribe to 3D poses
    bind_in: bool = True  # bind the input (rigs connect), else connect to it
    bind_out: bool = True  # bind the output (consumers connect), else connect to it
    model: str | None = None  # checkpoint; None = the shipped default
    backend: str = "auto"
    threads: int = 1  # ONNX Runtime intra-op threads (0: its default, one per core); spinning stays off
    latency_budget_ms: float = 100.0  # frames older than this (age, see module docstring) are dropped
    clock_step_s: float = 1.0  # a sender clock offset change beyond this is a step (pads_stream.stream.clock)
    clock_confirm: int = 3  # frames that confirm a stepped clock before it is followed
    poll_ms: int = 5
    status_period_s: float = 1.0  # status messages on the output
    log_period_s: float = 5.0  # a one-line status on stdout (0: never)
    max_streams: int = 256  # streams with state (camera, tracks); beyond it new streams are refused
    stream_ttl_s: float = 60.0  # a stream that sent nothing for this long is forgotten
    max_batch: int = 512  # persons per sampler call
    # steps chosen per batch from the time available (pads_stream.api.budget): as many as let the batch finish
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
    rig_autocalibrate_s: float = 8.0  # a rig sent without R, t (no file): calibrated from a walk this long (0: off)
    # ... then calibrated again from a walk this long, its world kept (clock drifts from 20 s on; 0: never)
    rig_refine_s: float = 30.0
    rig_calibration_height_m: float = 0.0  # the calibration walker's stature, m (0: the mean adult's size, ±4 %)
    rig_calibration: str = ""  # rig files (pads-stream calibrate), comma-separated: R, t and clocks of rig members
    floor_estimate: bool = True  # without extrinsics, estimate the floor from the people's feet (geometry.floor)
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
    # the keypoints' largest coordinates (px) and frames seen under the latched camera, until its K is checked
    k_hi: np.ndarray | None = None
    k_frames: int = 0


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
    stature_m: float | None = None  # the person's standing height, m, as sent (sizes an estimated root)


@dataclass
class Pending:
    """The newest admitted frame of a stream, waiting for the sampler."""

    frame: Kp2dFrame
    t_recv: int
    t_capture: int  # the capture time on this host's clock, ns (pads_stream.stream.clock)
    t_sender: int  # the capture time on the sender's clock, ns (t_ns where usable): the filters' time
    persons: list[Person]
